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

    @Test func newPluginRefusesBadNamesExistingDirectoriesAndAWrongSDK() throws {
        let dir = ScratchDirectory()
        let bad = try Eddy.run(["new-plugin", "../escape", "--path", dir.path])
        #expect(bad.status != 0 && bad.stderr.contains("expected a letter, then letters, digits"), "\(bad.stderr)")
        let first = try Eddy.run(["new-plugin", "twice", "--path", dir.path])
        #expect(first.status == 0, "\(first.stderr)")
        let again = try Eddy.run(["new-plugin", "twice", "--path", dir.path])
        #expect(again.status != 0 && again.stderr.contains("already exists"), "\(again.stderr)")
        for clash in ["eddy", "eddy-testing", "testing", "foundation"] {
            let r = try Eddy.run(["new-plugin", clash, "--path", dir.path])
            #expect(r.status != 0 && r.stderr.contains("clashes with a module"), "\(clash): \(r.stderr)")
        }
        let missing = try Eddy.run(["plugins", "--plugin-dir", dir.path + "/no-such-directory"])
        #expect(missing.status == 1 && missing.stderr.contains("does not exist"), "\(missing.stderr)")
        let sdk = try Eddy.run(["new-plugin", "other", "--path", dir.path, "--sdk", dir.path])
        #expect(sdk.status != 0 && sdk.stderr.contains("not the Eddy plugin-sdk package"), "\(sdk.stderr)")
        // The generated package points at the SDK of the checkout that built eddy.
        let manifest = try String(contentsOfFile: dir.path + "/twice/Package.swift", encoding: .utf8)
        #expect(manifest.contains("plugin-sdk") && manifest.contains("type: .dynamic"))
    }
}
