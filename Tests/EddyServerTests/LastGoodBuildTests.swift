import EddyHost
import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 24's last good build: a build that answered requests without a fault is kept, and when a
/// newer build of the same plugin crashes a worker and is quarantined, the server serves the old one
/// again within the next request — the `.eddy` files written with its encoding stay readable — says so
/// in `/plugins`, `/metrics`, its log and `eddy plugins`, and keeps doing so after a restart.
@Suite(.serialized) struct LastGoodBuildTests {
    final class Setup {
        let plugins = ScratchDirectory()
        let state = ScratchDirectory()
        let work = ScratchDirectory()
        let csv: String
        let eddy: String
        var environment: [String: String] { ["EDDY_SHADOW_DIR": state.path + "/copies"] }

        init() throws {
            chmod(state.path, 0o700)
            // prices.eddy: its column x stored in the decimal plugin's encoding, written by version 0.1.0.
            (csv, eddy) = try DecimalFixture.files(in: work)
            try plugins.copy(try DecimalFixture.plugin(), as: "decimal.so")
        }

        /// Verification at load off, so that the crashing build reaches serving; unconfined, because what
        /// is tested (which build serves) does not depend on confinement, and as root in this tree a
        /// confined server refused to write its private copies (08:50 UTC, working tree of 58b2489).
        func server() throws -> Server {
            try Server(
                pluginDir: plugins.path, rescan: "0.3", dataDirs: [work.path],
                arguments: ["--workers", "1", "--verify", "off", "--no-confine"],
                environment: environment)
        }

        /// The row of decimal.so in `/plugins`.
        static func row(_ server: Server) throws -> [String: Any]? {
            let (_, report) = try server.request("GET", "/plugins")
            let rows = report["files"] as? [[String: Any]] ?? []
            return rows.first { ($0["file"] as? String)?.hasSuffix("/decimal.so") == true }
        }

        static func metric(_ server: Server, _ name: String) throws -> Double? {
            let (_, body) = try server.request("GET", "/metrics")
            for line in (body["text"] as? String ?? "").split(separator: "\n") where line.hasPrefix(name + " ") {
                return Double(line.dropFirst(name.count + 1))
            }
            return nil
        }
    }

    static let query = "sum(x), min(x), count(*)"

    /// The first row of a JSON answer, as sorted `key=value` text (comparable with `==`).
    static func firstRow(_ body: [String: Any]) -> String {
        let row = (body["result"] as? [[String: Any]])?.first ?? [:]
        return row.keys.sorted().map { "\($0)=\(row[$0] ?? "")" }.joined(separator: ",")
    }

    @Test func aCrashingNewBuildFallsBackToTheLastGoodBuildWhichStillReadsTheFile() throws {
        let s = try Setup()
        var server = try s.server()
        try server.waitForPlugin("decimal.so", timeout: 30) {
            $0?["status"] as? String == "loaded" && $0?["version"] as? String == "0.1.0"
        }
        // What 0.1.0 answers over the file it wrote (its sum adds digits / 10^e: not the CSV's rounding).
        let (baseCode, base) = try server.request("POST", "/eval", json: ["path": s.eddy, "select": Self.query])
        let expected = base["result"] as? [[String: Any]] ?? []
        #expect(baseCode == 200 && !expected.isEmpty, "\(base)")
        // Version 0.1.0 answers: it becomes the plugin's last good build.
        for _ in 1..<LastGoodBuilds.cleanRequests {
            let (code, body) = try server.request("POST", "/eval", json: ["path": s.eddy, "select": Self.query])
            #expect(code == 200, "\(body)")
            #expect((body["fingerprint"] as? String)?.hasPrefix("decimal@0.1.0#") == true, "\(body)")
            #expect(
                Self.firstRow(body) == Self.firstRow(base), "\(body) vs \(expected)")
        }
        let records = try String(contentsOfFile: s.state.path + "/copies/lastgood.tsv", encoding: .utf8)
        #expect(records.contains("\tdecimal\t0.1.0\t"), "\(records)")

        // Version 0.2.0, whose sum kernel traps, replaces it and crashes the worker on the first sum.
        try s.plugins.copy(try DecimalFixture.crashingPlugin(), as: "decimal.so")
        try server.waitForPlugin("decimal.so", timeout: 30) { $0?["version"] as? String == "0.2.0" }
        let (crashCode, crash) = try server.request("POST", "/eval", json: ["path": s.eddy, "select": Self.query])
        #expect(crashCode == 500, "\(crash)")
        #expect((crash["error"] as? String ?? "").contains("decimal@0.2.0"), "\(crash)")

        // The very next request reads the file through 0.1.0.
        let (code, body) = try server.request("POST", "/eval", json: ["path": s.eddy, "select": Self.query])
        #expect(code == 200, "\(body)")
        #expect((body["fingerprint"] as? String)?.hasPrefix("decimal@0.1.0#") == true, "\(body)")
        #expect(
            Self.firstRow(body) == Self.firstRow(base), "\(body)")
        try server.waitForPlugin("decimal.so") {
            ($0?["reason"] as? String ?? "").hasPrefix("serving 0.1.0 (last good")
        }
        let row = try Setup.row(server)
        #expect(row?["status"] as? String == "quarantined", "\(String(describing: row))")
        #expect(
            (row?["reason"] as? String ?? "").contains("; 0.2.0 quarantined since ")
                && (row?["reason"] as? String ?? "").contains("sum decimal digits"), "\(String(describing: row))")
        #expect(try Setup.metric(server, "eddy_last_good_fallbacks_total") == 1)
        #expect(server.logText.contains("plugin falls back to its last good build"), "\(server.logText)")

        // A restart finds 0.2.0 quarantined and serves 0.1.0 from its kept copy.
        server.stop()
        server = try s.server()
        try server.waitForPlugin("decimal.so", timeout: 30) {
            ($0?["reason"] as? String ?? "").hasPrefix("serving 0.1.0 (last good")
        }
        let (again, answer) = try server.request("POST", "/eval", json: ["path": s.eddy, "select": Self.query])
        #expect(again == 200 && (answer["fingerprint"] as? String)?.hasPrefix("decimal@0.1.0#") == true, "\(answer)")
        #expect(try Setup.metric(server, "eddy_last_good_fallbacks_total") == 1)
        server.stop()

        // So do the one-shot commands, through the same records.
        let listed = try Eddy.run(["plugins", "--plugin-dir", s.plugins.path], environment: s.environment)
        #expect(listed.stdout.contains("serving 0.1.0 (last good"), "\(listed.stdout)")
        #expect(listed.stdout.contains("0.2.0 quarantined since"), "\(listed.stdout)")
        let evaluated = try Eddy.run(
            ["eval", s.eddy, "--plugin-dir", s.plugins.path, "--select", "count(*)", "--format", "csv"],
            environment: s.environment)
        #expect(evaluated.status == 0 && evaluated.stdout.hasSuffix("\n"), "\(evaluated.stderr)")

        // The quarantined build in another plugin directory of the same user (a test tree, another
        // deployment): the good build recorded from the first directory's file is not its to fall
        // back to (hostile review: a build never in this directory was loaded).
        let other = ScratchDirectory()
        try other.copy(try DecimalFixture.crashingPlugin(), as: "decimal.so")
        let elsewhere = try Eddy.run(["plugins", "--plugin-dir", other.path], environment: s.environment)
        #expect(elsewhere.stdout.contains("quarantined"), "\(elsewhere.stdout)")
        #expect(!elsewhere.stdout.contains("serving 0.1.0"), "\(elsewhere.stdout)")
    }

    /// A last good build whose private copy is gone (removed by hand, or by another server sharing the
    /// copy directory) cannot serve: the built-ins do, and the log says why rather than nothing.
    @Test func aLastGoodBuildWhoseCopyIsGoneIsSaidNotSilentlyReplaced() throws {
        let s = try Setup()
        let server = try s.server()
        defer { server.stop() }
        try server.waitForPlugin("decimal.so", timeout: 30) { $0?["version"] as? String == "0.1.0" }
        for _ in 0..<LastGoodBuilds.cleanRequests {
            let (code, body) = try server.request("POST", "/eval", json: ["path": s.eddy, "select": Self.query])
            #expect(code == 200, "\(body)")
        }
        let records = try String(contentsOfFile: s.state.path + "/copies/lastgood.tsv", encoding: .utf8)
        let line = try #require(records.split(separator: "\n").first { $0.contains("\tdecimal\t0.1.0\t") })
        let copy = try #require(line.split(separator: "\t").first { $0.hasSuffix(".so") })
        #expect(unlink(s.state.path + "/copies/" + copy) == 0)
        try s.plugins.copy(try DecimalFixture.crashingPlugin(), as: "decimal.so")
        try server.waitForPlugin("decimal.so", timeout: 30) { $0?["version"] as? String == "0.2.0" }
        let (crashCode, crash) = try server.request("POST", "/eval", json: ["path": s.eddy, "select": Self.query])
        #expect(crashCode == 500, "\(crash)")
        let (code, body) = try server.request("POST", "/eval", json: ["path": s.csv, "select": "count(*)"])
        #expect(code == 200 && (body["fingerprint"] as? String) == "builtin only", "\(body)")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !server.logText.contains("last good build cannot serve") { usleep(50_000) }
        #expect(
            server.logText.contains("plugin's last good build cannot serve")
                && server.logText.contains("its private copy is gone"), "\(server.logText)")
        #expect(try Setup.metric(server, "eddy_last_good_fallbacks_total") ?? 0 == 0)
    }

    /// A plugin whose first build is quarantined has no last good build to fall back to: the built-ins
    /// take over, as before, and a file that needs the plugin is named as unreadable.
    @Test func withoutALastGoodBuildTheBuiltInsTakeOver() throws {
        let s = try Setup()
        try s.plugins.copy(try DecimalFixture.crashingPlugin(), as: "decimal.so")
        let server = try s.server()
        try server.waitForPlugin("decimal.so", timeout: 30) { $0?["version"] as? String == "0.2.0" }
        let (crashCode, _) = try server.request("POST", "/eval", json: ["path": s.eddy, "select": Self.query])
        #expect(crashCode == 500)
        let (code, body) = try server.request("POST", "/eval", json: ["path": s.eddy, "select": Self.query])
        #expect(code >= 400 && code < 500, "\(body)")
        #expect((body["error"] as? String ?? "").contains("which is not loaded"), "\(body)")
        #expect(try Setup.metric(server, "eddy_last_good_fallbacks_total") == 0)
        // The watcher reloads the file after the quarantine: its row turns quarantined, with no last good build.
        try server.waitForPlugin("decimal.so") { $0?["status"] as? String == "quarantined" }
        let row = try Setup.row(server)
        #expect((row?["reason"] as? String ?? "").hasPrefix("quarantined since"), "\(String(describing: row))")
    }
}
