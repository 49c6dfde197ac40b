import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A plugin whose file is in the plugin directory but whose build is quarantined (a server found it
/// crashing a worker) is named as quarantined, with the cause, by every command that skips it.
@Suite struct QuarantineMessageTests {
    /// An `.eddy` file written with the delta plugin, and a private-copy directory where that build
    /// is quarantined, as `eddy serve` records it (`quarantine.tsv`: hash, time, plugin, cause).
    final class Setup {
        let scratch = ScratchDirectory()
        let plugins = ScratchDirectory()
        let state = ScratchDirectory()
        let csv: String
        let file: String
        var environment: [String: String] { ["EDDY_SHADOW_DIR": state.path + "/copies"] }
        static let cause = "crashed with signal 11 (SIGSEGV) in kernel 'delta sum' of plugin delta@1.0.0"

        init() throws {
            chmod(state.path, 0o700)
            csv = tripsCSV(scratch, rows: 2000)
            try plugins.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
            file = scratch.path + "/trips.eddy"
            let c = try Eddy.run(
                ["convert", csv, file, "--plugin-dir", plugins.path, "--chunk-rows", "500"], environment: environment)
            #expect(c.status == 0, "\(c.stderr)")
            let hash = try sha256(plugins.path + "/delta.so")
            let record = "\(hash)\t1764979200\tdelta@1.0.0\t\(Self.cause)\n"
            let path = state.path + "/copies/quarantine.tsv"
            #expect(FileManager.default.createFile(atPath: path, contents: Data(record.utf8)))
            chmod(path, 0o600)
        }
    }

    @Test func aFileNeedingAQuarantinedBuildSaysItIsQuarantinedAndWhy() throws {
        let s = try Setup()
        let r = try Eddy.run(
            ["eval", s.file, "--plugin-dir", s.plugins.path, "--select", "count(*)"], environment: s.environment)
        #expect(r.status == 1 && r.stdout.isEmpty)
        #expect(
            r.stderr.contains("\(s.file): needs encoding ext.delta, written by plugin delta 1.0.0")
                && r.stderr.contains("quarantined since 2025-12-06T00:00:00Z: \(Setup.cause)")
                && r.stderr.contains("drop a fixed build"), "\(r.stderr)")
        #expect(!r.stderr.contains("add that plugin"), "\(r.stderr)")
    }

    @Test func evalWarnsOfAQuarantinedPluginItLeavesOut() throws {
        let s = try Setup()
        let r = try Eddy.run(
            ["eval", s.csv, "--plugin-dir", s.plugins.path, "--select", "count(fare)", "--format", "csv"],
            environment: s.environment)
        #expect(r.status == 0 && r.stdout == "count(fare)\n2000\n", "\(r.stdout) \(r.stderr)")
        #expect(
            r.stderr.contains("eddy: warning: plugin delta@1.0.0 in \(s.plugins.path)/delta.so not loaded: quarantined")
                && r.stderr.contains(Setup.cause), "\(r.stderr)")
    }

    @Test func inspectNamesTheQuarantine() throws {
        let s = try Setup()
        let text = try Eddy.run(["inspect", s.file, "--plugin-dir", s.plugins.path], environment: s.environment)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(
            text.stdout.contains("NOT LOADED: its build is quarantined since 2025-12-06T00:00:00Z: \(Setup.cause)"),
            "\(text.stdout)")
        let json = try Eddy.run(
            ["inspect", s.file, "--json", "--plugin-dir", s.plugins.path], environment: s.environment)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let needed = object?["plugins_needed"] as? [[String: Any]] ?? []
        let q = needed.first?["quarantined"] as? [String: Any]
        #expect(q?["cause"] as? String == Setup.cause && q?["since"] as? String == "2025-12-06T00:00:00Z", "\(needed)")
    }

    @Test func eddyServeSaysTheFilesPluginBuildIsQuarantined() throws {
        let s = try Setup()
        let server = try Server(
            pluginDir: s.plugins.path, arguments: ["--workers", "1"], environment: s.environment)
        try server.waitForPlugin("delta.so") { $0?["status"] as? String == "quarantined" }
        let (code, body) = try server.request("POST", "/eval", json: ["path": s.file, "select": "count(*)"])
        let error = body["error"] as? String ?? ""
        #expect(code >= 400 && code < 500, "\(body)")
        #expect(
            error.contains("needs encoding ext.delta, written by plugin delta 1.0.0")
                && error.contains("quarantined since 2025-12-06T00:00:00Z: \(Setup.cause)")
                && !error.contains("add that plugin"), "\(error)")
    }
}
