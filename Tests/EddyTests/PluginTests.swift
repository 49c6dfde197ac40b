import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Plugin files built by this package (next to the `eddy` binary) and by the fixture packages.
enum PluginFiles {
    static var buildDirectory: String { URL(fileURLWithPath: Eddy.binary).deletingLastPathComponent().path }
    static func built(_ product: String) -> String { buildDirectory + "/lib\(product).so" }

    /// Builds a fixture package with its own `swift build`, as a third party would; returns the .so path.
    static func buildPackage(_ name: String, product: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/\(name)").path
        func build() throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["swift", "build", "--package-path", root]
            let err = Pipe()
            p.standardOutput = err
            p.standardError = err
            try p.run()
            let output = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: output, as: UTF8.self))
        }
        var (status, output) = try build()
        if status != 0 {
            // A source file of the SDK was moved, added or split since the fixture's last build: SwiftPM's
            // incremental build of a package by path does not always pick that up ("missing inputs", or
            // types of a new file not found); a fresh one does.
            try? FileManager.default.removeItem(atPath: root + "/.build")
            (status, output) = try build()
        }
        guard status == 0 else { throw EddyTestError("building \(name) failed:\n" + output) }
        return root + "/.build/debug/lib\(product).so"
    }

    /// The out-of-tree and static-SDK fixtures, built once per test run and one after the other:
    /// both compile the SDK's sources, and two `swift build`s at once on two cores race for time and
    /// memory with the test run itself.
    static let fixtures = (
        outOfTree: Result { try buildPackage("OutOfTreePlugin", product: "SparseSum") },
        staticSDK: Result { try buildPackage("StaticSDKPlugin", product: "StaticSDKPlugin") },
        scaffold: Result { try buildScaffold() }
    )
    static var scaffold: Result<Scaffold, any Error> { fixtures.scaffold }

    /// What `eddy new-plugin run-count` made, and what its own `swift test` printed.
    struct Scaffold {
        let library: String
        let testOutput: String
        let created: String
        /// The generated package's directory.
        let root: String
    }

    /// The newcomer's path: `eddy new-plugin`, `swift test`, `swift build`, in a fresh package (its
    /// build cache is kept between test runs under .build/scaffold-test/cache).
    static func buildScaffold() throws -> Scaffold {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/scaffold-test").path
        try? FileManager.default.removeItem(atPath: root + "/run-count")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let created = try Eddy.run(["new-plugin", "run-count", "--path", root])
        guard created.status == 0 else { throw EddyTestError("eddy new-plugin failed: \(created.stderr)") }
        func swift(_ arguments: [String]) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments =
                ["swift"] + arguments + ["--package-path", root + "/run-count", "--scratch-path", root + "/cache"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw EddyTestError("swift \(arguments.joined(separator: " ")) failed:\n" + text)
            }
            return text
        }
        let tested: String
        do {
            tested = try swift(["test"])
        } catch let e as EddyTestError where e.description.contains("because of missing inputs") {
            try? FileManager.default.removeItem(atPath: root + "/cache")  // an SDK file moved since the last run
            tested = try swift(["test"])
        }
        _ = try swift(["build"])
        return Scaffold(
            library: root + "/cache/debug/libRunCount.so", testOutput: tested, created: created.stdout,
            root: root + "/run-count")
    }
    static var outOfTree: Result<String, any Error> { fixtures.outOfTree }
    static var staticSDK: Result<String, any Error> { fixtures.staticSDK }
}

struct EddyTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension ScratchDirectory {
    func copy(_ source: String, as name: String) throws {
        let dest = path + "/" + name
        try? FileManager.default.removeItem(atPath: dest)
        try FileManager.default.copyItem(atPath: source, toPath: dest)
    }

    func plugins() throws -> ScratchDirectory {
        let d = ScratchDirectory()
        try d.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try d.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: "packed.so")
        return d
    }
}

/// Rows of `eddy plugins --json`, by file name.
func pluginReport(_ dir: String) throws -> [String: [String: Any]] {
    let r = try Eddy.run(["plugins", "--plugin-dir", dir, "--json"])
    let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
    let files = object?["files"] as? [[String: Any]] ?? []
    // The exit status says whether a file was refused; the JSON is printed either way.
    let refused = files.contains { ["rejected", "quarantined"].contains($0["status"] as? String ?? "") }
    #expect(r.status == (refused ? 1 : 0), "\(r.stderr)")
    return Dictionary(
        uniqueKeysWithValues: files.map { (URL(fileURLWithPath: $0["file"] as! String).lastPathComponent, $0) })
}

func tripsCSV(_ dir: ScratchDirectory, rows: Int = 3000) -> String {
    var text = "trip_id,city,fare,extra\n"
    let cities = ["Lyon", "Paris", "Nice", "Lille", "Brest"]
    for i in 0..<rows {
        text += "\(100_000 + i),\(cities[(i * 7 + i / 3) % 5]),\(Double(i % 97) / 4),\(i % 50 == 0 ? i : 0)\n"
    }
    return dir.write("trips.csv", text)
}

@Suite struct PluginTests {
    @Test func everyBadPluginIsRefusedWithItsReasonAndTheOthersLoad() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta-again.so")
        try dir.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: "packed.so")
        try dir.copy(PluginFiles.built("EddyFixtureThrowing"), as: "throwing.so")
        try dir.copy(PluginFiles.built("EddyFixtureWrongABI"), as: "wrong-abi.so")
        try dir.copy(PluginFiles.built("Eddy"), as: "not-a-plugin.so")
        try dir.copy(PluginFiles.staticSDK.get(), as: "static-sdk.so")
        _ = dir.write("readme.so", "this is not a library\n")
        _ = dir.write(".hidden.so", "ignored")
        _ = dir.write("notes.txt", "ignored")
        let full = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyPluginPackedDictCompare")))
        FileManager.default.createFile(atPath: dir.path + "/truncated.so", contents: full.prefix(20_000))

        let report = try pluginReport(dir.path)
        func status(_ f: String) -> String { report[f]?["status"] as? String ?? "missing" }
        func reason(_ f: String) -> String { report[f]?["reason"] as? String ?? "" }
        #expect(report.count == 9)  // hidden and non-.so files are not considered
        #expect(status("delta-again.so") == "loaded" || status("delta.so") == "loaded")
        #expect([status("delta.so"), status("delta-again.so")].sorted() == ["loaded", "skipped"])
        #expect((reason("delta.so") + reason("delta-again.so")).contains("already loaded; loaded once"))
        #expect(status("packed.so") == "loaded")
        #expect(status("throwing.so") == "rejected")
        #expect(reason("throwing.so").contains("registration failed: configuration file missing"))
        #expect(status("wrong-abi.so") == "rejected")
        #expect(
            reason("wrong-abi.so").contains(
                "plugin built against Eddy SDK ABI 99, this host loads plugin ABI 2: rebuild it against Eddy SDK 1.0.0")
        )
        #expect(status("not-a-plugin.so") == "skipped" && reason("not-a-plugin.so").contains("not an Eddy plugin"))
        #expect(
            status("static-sdk.so") == "rejected" && reason("static-sdk.so").contains("its own copy of the Eddy SDK"))
        #expect(status("readme.so") == "rejected" && reason("readme.so").contains("not an ELF file"))
        #expect(status("truncated.so") == "rejected" && reason("truncated.so").contains("truncated"))

        // The host still evaluates, with the good plugins' kernels and none of the throwing one's.
        let csv = tripsCSV(dir)
        // Encoded as a file stores it (codes bit-packed), so that the packed-dict plugin's kernel meets its input.
        let r = try Eddy.run([
            "eval", csv, "--plugin-dir", dir.path, "--where", "city = 'Lyon'", "--select", "count(*)",
            "--explain", "--compression", "storage",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("600"))
        #expect(r.stderr.contains("[plugin packed-dict-compare@1.0.0]"))
        #expect(r.stderr.contains("warning: plugin \(dir.path)/throwing.so rejected"))
        let kernels = try Eddy.run(["kernels", "--plugin-dir", dir.path])
        #expect(!kernels.stdout.contains("never registered"))
        #expect(kernels.stdout.contains("compare on bit-packed dictionary codes  [plugin packed-dict-compare@1.0.0]"))
    }

    @Test func aPluginFileWhoseNameIsNotUTF8IsRefusedForThatReason() throws {
        let d = ScratchDirectory()
        try d.copy(PluginFiles.built("EddyPluginDelta"), as: "good.so")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: d.path + "/good.so"))
        // "a\xff.so": no String names it, so it is made through the C call with its raw bytes.
        var name = Array((d.path + "/a").utf8).map { CChar(bitPattern: $0) }
        name += [CChar(bitPattern: 0xFF)] + Array(".so".utf8).map { CChar(bitPattern: $0) } + [0]
        let fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        try #require(fd >= 0)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let r = try Eddy.run(["plugins", "--plugin-dir", d.path])
        #expect(r.status == 1, "\(r.stdout)")
        #expect(r.stdout.contains("its file name is not valid UTF-8"), "\(r.stdout)")
        #expect(r.stdout.contains("1 loaded, 0 skipped, 1 rejected"), "\(r.stdout)")
    }

    @Test func pluginKernelsRunBeforeBuiltinsAndGiveTheSameResults() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work)
        let plugins = try work.plugins()
        let query = [
            "--where", "city = 'Nice' or trip_id < 100050", "--select", "trip_id, city, fare", "--format", "csv",
        ]
        // Encoded as a file stores it (codes bit-packed, which the packed-dict kernel reads; the delta hook,
        // made for storage, encodes trip_id), the plugins' kernels fire and agree with the built-ins.
        let with = try Eddy.run(
            ["eval", csv, "--plugin-dir", plugins.path, "--explain", "--compression", "storage"] + query)
        let without = try Eddy.run(["eval", csv, "--plugin-dir", work.path + "/none"] + query)
        #expect(with.status == 0 && without.status == 0, "\(with.stderr)\(without.stderr)")
        #expect(with.stdout == without.stdout)
        #expect(with.stdout.split(separator: "\n").count > 600)
        #expect(
            with.stderr.contains(
                "execute-parent eddy.compare compare on bit-packed dictionary codes [plugin packed-dict-compare@1.0.0]")
        )
        #expect(with.stderr.contains("compare by binary search over sorted deltas [plugin delta@1.0.0]"))
        // The delta plugin's encoding was chosen by its compressor hook and round-trips.
        #expect(with.stderr.contains("ext.delta(i64?, len=3000) base=100000"))
        let all = try Eddy.run(["eval", csv, "--plugin-dir", plugins.path, "--format", "csv"])
        let plain = try Eddy.run(["eval", csv, "--format", "csv", "--plugin-dir", work.path + "/none"])
        #expect(all.stdout == plain.stdout)
    }

    /// Issue 22: a plugin is used when it pays, never by default. With `--compression auto` (the default)
    /// the plugins' kernels do not change how a CSV batch is encoded (no bit-packed codes for the
    /// packed-dict kernel), a storage hook (delta's) is never asked for a column read once, a column the
    /// query only computes with stays as parsed, and the answer is the same as without plugins.
    @Test func loadedPluginsDoNotChangeHowACSVFileIsEncoded() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work)
        let plugins = try work.plugins()
        let query = [
            "--where", "city = 'Nice' or trip_id < 100050", "--select", "trip_id, city, fare", "--format", "csv",
        ]
        let auto = try Eddy.run(["eval", csv, "--plugin-dir", plugins.path, "--explain"] + query)
        let none = try Eddy.run(["eval", csv, "--plugin-dir", work.path + "/none", "--explain"] + query)
        let queryEncoded = try Eddy.run(
            ["eval", csv, "--plugin-dir", plugins.path, "--explain", "--compression", "query"] + query)
        #expect(auto.status == 0 && none.status == 0 && queryEncoded.status == 0, "\(auto.stderr)\(none.stderr)")
        #expect(auto.stdout == none.stdout && queryEncoded.stdout == none.stdout)
        for run in [auto, queryEncoded] {
            #expect(!run.stderr.contains("ext.delta"), "\(run.stderr)")
            #expect(!run.stderr.contains("eddy.bitpacked"), "\(run.stderr)")
            #expect(!run.stderr.contains("[plugin "), "\(run.stderr)")
        }
        // The filtered text column is a dictionary; fare, only output, stays plain: the same trees as without plugins.
        #expect(auto.stderr.contains("city:\n  eddy.dict("), "\(auto.stderr)")
        #expect(auto.stderr.contains("fare:\n  eddy.primitive(f64"), "\(auto.stderr)")
        func trees(_ text: String) -> Substring {
            text.split(separator: "== plan (first batch)").first?.split(separator: "\n== input columns").last ?? ""
        }
        #expect(trees(auto.stderr) == trees(none.stderr), "\(auto.stderr)\n\(none.stderr)")
    }

    @Test func aKernelReturningTheWrongLengthIsAnErrorNamingThePlugin() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 100)
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyFixtureWrongLength"), as: "wrong-length.so")
        // Verification at load (the default) may refuse it — its inputs rarely reach the kernel, which
        // constant folding usually answers first — or, if it loads, the executor's contract check stops
        // the query: either way no answer from it reaches the user.
        let verified = try Eddy.run(["eval", csv, "--plugin-dir", dir.path, "--where", "fare > 3", "--format", "csv"])
        if verified.status == 0 {
            #expect(verified.stderr.contains("wrong-length.so rejected: refused by verification"), "\(verified.stderr)")
        } else {
            #expect(
                verified.stderr.contains("kernel 'short compare' of plugin wrong-length@0.1.0"), "\(verified.stderr)")
            #expect(verified.stdout.isEmpty)
        }
        // Unverified, the executor's own contract check stops it at the query.
        let r = try Eddy.run([
            "eval", csv, "--plugin-dir", dir.path, "--where", "fare > 3", "--format", "csv", "--verify", "off",
        ])
        #expect(r.status == 1)
        #expect(
            r.stderr.contains("kernel 'short compare' of plugin wrong-length@0.1.0 returned length 99"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test func anOutOfTreePluginBuiltAgainstTheSDKByPathLoadsAndRuns() throws {
        let so = try PluginFiles.outOfTree.get()
        let dir = ScratchDirectory()
        try dir.copy(so, as: "sparse-sum.so")
        let work = ScratchDirectory()
        let csv = tripsCSV(work)
        let r = try Eddy.run([
            "eval", csv, "--plugin-dir", dir.path, "--select", "sum(extra), count(extra)", "--explain", "--compression",
            "storage",
            "--format", "csv",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let expected = stride(from: 0, to: 3000, by: 50).reduce(0, +)
        #expect(r.stdout == "sum(extra),count(extra)\n\(expected),3000\n")
        #expect(r.stderr.contains("sum of fill and patches [plugin sparse-sum@1.0.0]"), "\(r.stderr)")
        #expect(try pluginReport(dir.path)["sparse-sum.so"]?["status"] as? String == "loaded")
    }

    @Test func overwritingADroppedPluginDuringEvaluationDoesNotCrashTheHost() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 150_000)
        let dir = try work.plugins()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Eddy.binary)
        p.environment = Eddy.childEnvironment
        p.arguments = [
            "eval", csv, "--plugin-dir", dir.path, "--where", "city = 'Lyon'", "--select", "count(*), sum(fare)",
            "--format", "csv", "--batch-rows", "5000",
        ]
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // While it runs: overwrite the loaded file in place (same inode, as `cp` does) with other bytes.
        usleep(300_000)
        let other = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyFixtureThrowing")))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.path + "/packed.so"))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: other)
        try handle.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(String(decoding: e, as: UTF8.self))")
        #expect(String(decoding: o, as: UTF8.self).hasPrefix("count(*),sum(fare)\n30000,"))
    }
}

@Suite struct CrashProbeTests {
    @Test func aPluginThatCrashesWhileLoadingIsRefusedAndTheHostCarriesOn() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyFixtureCrashing"), as: "crashing.so")
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let report = try pluginReport(dir.path)
        #expect(report["crashing.so"]?["status"] as? String == "rejected")
        #expect(
            (report["crashing.so"]?["reason"] as? String)?.contains("crashed in the probe process (killed by signal 11")
                == true,
            "\(report["crashing.so"] ?? [:])")
        #expect(report["delta.so"]?["status"] as? String == "loaded")
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 200)
        let r = try Eddy.run(["eval", csv, "--plugin-dir", dir.path, "--select", "count(*)", "--format", "csv"])
        #expect(r.status == 0 && r.stdout == "count(*)\n200\n", "\(r.stderr)")
    }

    @Test func aRunningServerSurvivesACrashingPluginDroppedIntoItsDirectory() throws {
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path)
        try dir.copy(PluginFiles.built("EddyFixtureCrashing"), as: "crashing.so")
        try server.waitForPlugin("crashing.so") {
            ($0?["reason"] as? String)?.contains("crashed in the probe process") == true
        }
        let (status, health) = try server.request("GET", "/health")
        #expect(status == 200 && health["status"] as? String == "ok")
        #expect(server.process.isRunning)
    }
}
