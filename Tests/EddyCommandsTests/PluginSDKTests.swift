import EddyHostTestSupport
import Foundation
import Testing

/// The SDK as a plugin author meets it: `eddy new-plugin`, the conformance kit, a live server.
@Suite struct PluginSDKTests {
    @Test func aScaffoldedPluginPassesItsKitAndRunsInALiveServer() throws {
        let scaffold = try PluginFiles.scaffold.get()
        #expect(scaffold.created.contains("Sources/RunCount/RunCount.swift"), "\(scaffold.created)")
        // Its template is a kernel the engine does not have, and its README says so.
        let readme = try String(contentsOfFile: scaffold.root + "/README.md", encoding: .utf8)
        #expect(readme.contains("`eddy.agg.sum ← eddy.sparse` | `sum of fill and patches`"), "\(readme)")
        #expect(readme.contains("The engine has no kernel of its own for this key"), "\(readme)")
        // Its `swift test` ran the conformance kit on the key it registers, and passed.
        #expect(scaffold.testOutput.contains("eddy.agg.sum|eddy.sparse:"), "\(scaffold.testOutput)")
        #expect(scaffold.testOutput.contains("PASSED"), "\(scaffold.testOutput)")

        let plugins = ScratchDirectory()
        let server = try Server(pluginDir: plugins.path, rescan: "0.2")
        defer { server.stop() }
        try plugins.copy(scaffold.library, as: "run-count.so")
        try server.waitForPlugin("run-count.so") { $0?["status"] as? String == "loaded" }
        let work = ScratchDirectory()
        // A column that is 0 in 199 rows of 200: the engine stores it sparse, which the template sums.
        let csv = work.write(
            "sparse.csv",
            "id,extra\n" + (0..<20_000).map { "\($0),\($0 % 200 == 7 ? $0 : 0)" }.joined(separator: "\n") + "\n")
        // Storage compression (a query that only sums a CSV column leaves it as parsed), as a file would be written.
        let (status, body) = try server.eval(
            csv, select: "sum(extra), count(*)", trace: true, compression: "storage")
        #expect(status == 200, "\(body)")
        #expect("\(body)".contains("990700"), "\(body)")  // 7 + 207 + … + 19807
        #expect("\(body)".contains("sum of fill and patches"), "\(body)")
    }

    @Test func newPluginWritesTheTemplateDirectoryWithItsPlaceholdersReplaced() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let template = repo.appendingPathComponent("Plugins/Template").path
        let sdk = repo.appendingPathComponent("plugin-sdk").resolvingSymlinksInPath().path
        // The files of Plugins/Template, as .ci/plugin-template takes them (its build products aside).
        func files(_ root: String) throws -> [String: String] {
            var found: [String: String] = [:]
            let walk = try #require(FileManager.default.enumerator(atPath: root))
            while let relative = walk.nextObject() as? String {
                if [".build", ".swiftpm"].contains(relative) { walk.skipDescendants() }
                var isDirectory: ObjCBool = false
                guard relative != "Package.resolved",
                    FileManager.default.fileExists(
                        atPath: root + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue
                else { continue }
                found[relative] = try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
            }
            return found
        }
        let dir = ScratchDirectory()
        // Named as the template is, the package is the template's files but for the SDK's path.
        let same = try Eddy.run(["new-plugin", "plugin-template", "--path", dir.path, "--sdk", sdk])
        #expect(same.status == 0, "\(same.stderr)")
        let expected = try files(template).mapValues { $0.replacingOccurrences(of: "../../plugin-sdk", with: sdk) }
        let written = try files(dir.path + "/plugin-template")
        #expect(written.keys.sorted() == expected.keys.sorted())
        for (path, text) in expected { #expect(written[path] == text, "\(path)") }
        // Named otherwise, no placeholder is left in a path or a file.
        let other = try Eddy.run(["new-plugin", "my_sum-kernel", "--path", dir.path, "--sdk", sdk])
        #expect(other.status == 0, "\(other.stderr)")
        let renamed = try files(dir.path + "/my_sum-kernel")
        #expect(renamed["Sources/MySumKernelEntry/Entry.swift"]?.contains("pluginEntry(MySumKernel.self") == true)
        for (path, text) in renamed {
            for placeholder in ["PluginTemplate", "plugin-template", "../../plugin-sdk"] {
                #expect(!path.contains(placeholder) && !text.contains(placeholder), "\(path): \(placeholder)")
            }
        }
    }

    @Test func newPluginRefusesBadNamesExistingDirectoriesAndAWrongSDK() throws {
        let dir = ScratchDirectory()
        let bad = try Eddy.run(["new-plugin", "../escape", "--path", dir.path])
        #expect(bad.status != 0 && bad.stderr.contains("expected a letter, then letters, digits"), "\(bad.stderr)")
        let first = try Eddy.run(["new-plugin", "twice", "--path", dir.path])
        #expect(first.status == 0, "\(first.stderr)")
        let again = try Eddy.run(["new-plugin", "twice", "--path", dir.path])
        #expect(again.status != 0 && again.stderr.contains("already exists"), "\(again.stderr)")
        for clash in ["eddy", "eddy-testing", "testing", "foundation", "eddy-test-support", "eddy-s-d-k"] {
            let r = try Eddy.run(["new-plugin", clash, "--path", dir.path])
            #expect(r.status != 0 && r.stderr.contains("clashes with a module"), "\(clash): \(r.stderr)")
        }
        let sdkName = try Eddy.run(["new-plugin", "plugin-sdk", "--path", dir.path])
        #expect(sdkName.status != 0 && sdkName.stderr.contains("name of the SDK's package"), "\(sdkName.stderr)")
        let missing = try Eddy.run(["plugins", "--plugin-dir", dir.path + "/no-such-directory"])
        #expect(missing.status == 1 && missing.stderr.contains("does not exist"), "\(missing.stderr)")
        // A missing --path is created; a failure is this command's error, without the top-level usage.
        let nested = try Eddy.run(["new-plugin", "deep", "--path", dir.path + "/a/b"])
        let made = FileManager.default.fileExists(atPath: dir.path + "/a/b/deep/Package.swift")
        #expect(nested.status == 0 && made, "\(nested.stderr)")
        #expect(again.stderr.hasPrefix("eddy: error: ") && !again.stderr.contains("Usage: eddy <subcommand>"))
        let sdk = try Eddy.run(["new-plugin", "other", "--path", dir.path, "--sdk", dir.path])
        #expect(sdk.status != 0 && sdk.stderr.contains("not the Eddy plugin-sdk package"), "\(sdk.stderr)")
        // The generated package points at the SDK of the checkout that built eddy.
        let manifest = try String(contentsOfFile: dir.path + "/twice/Package.swift", encoding: .utf8)
        #expect(manifest.contains("plugin-sdk") && manifest.contains("type: .dynamic"))
    }
}
