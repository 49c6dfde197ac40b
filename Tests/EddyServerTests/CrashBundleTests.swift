import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 24's crash bundles: when a worker crashes, `eddy serve` keeps what it takes to run the request
/// again — owner-only, bounded, never the bearer token — and `eddy replay BUNDLE` runs it again in a
/// process of its own and says whether the crash reproduces.
@Suite(.serialized) struct CrashBundleTests {
    final class Setup {
        let plugins = ScratchDirectory()
        let fixed = ScratchDirectory()
        let state = ScratchDirectory()
        let work = ScratchDirectory()
        let eddy: String
        var bundles: String { state.path + "/bundles" }
        var environment: [String: String] {
            ["EDDY_SHADOW_DIR": state.path + "/copies", "EDDY_BUNDLE_DIR": bundles]
        }

        init() throws {
            chmod(state.path, 0o700)
            (_, eddy) = try DecimalFixture.files(in: work)
            try plugins.copy(try DecimalFixture.crashingPlugin(), as: "decimal.so")
            try fixed.copy(try DecimalFixture.plugin(), as: "decimal.so")
        }

        /// As in LastGoodBuildTests: the crashing build must reach serving; confinement is beside the point.
        static let serveArguments = ["--workers", "1", "--verify", "off", "--no-confine"]

        func bundleNames() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: bundles)) ?? []).sorted()
        }
    }

    static func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : 0
    }

    @Test func aCrashLeavesABundleThatReplaysTheCrash() throws {
        let s = try Setup()
        let server = try Server(
            pluginDir: s.plugins.path, rescan: "0.3", dataDirs: [s.work.path],
            arguments: Setup.serveArguments, environment: s.environment)
        try server.waitForPlugin("decimal.so", timeout: 30) { $0?["version"] as? String == "0.2.0" }
        let (code, body) = try server.request(
            "POST", "/eval", json: ["path": s.eddy, "select": "sum(x)", "where": "x > 1"])
        #expect(code == 500, "\(body)")
        let names = s.bundleNames()
        try #require(names.count == 1, "\(names); log:\n\(server.logText)")
        let bundle = s.bundles + "/" + names[0]
        // The log is read from the server's stderr as it comes: under a loaded CI machine (this test took
        // 242 s there) the line could still be on its way when the bundle was already on disk.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !server.logText.contains("crash bundle written") { usleep(50_000) }
        #expect(server.logText.contains("crash bundle written") && server.logText.contains(names[0]))
        #expect(Self.mode(s.bundles) == 0o700 && Self.mode(bundle) == 0o700)
        #expect(Self.mode(bundle + "/bundle.json") == 0o600)
        let text = try String(contentsOfFile: bundle + "/bundle.json", encoding: .utf8)
        let record = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(record["kind"] as? String == "crash", "\(record)")
        #expect((record["crash_line"] as? String ?? "").contains("sum decimal digits"), "\(record)")
        let request = record["request"] as? [String: Any] ?? [:]
        #expect(request["select"] as? String == "sum(x)" && request["where"] as? String == "x > 1", "\(request)")
        let input = record["input"] as? [String: Any] ?? [:]
        #expect((input["sha256"] as? String)?.count == 64 && input["path"] as? String != nil, "\(input)")
        let plugins = record["plugins"] as? [[String: Any]] ?? []
        let hash = try sha256(s.plugins.path + "/decimal.so")
        #expect(plugins.first?["sha256"] as? String == hash, "\(plugins)")
        let token = try #require(server.token)
        #expect(!text.contains(token))
        server.stop()

        // The build in the bundle crashes again, in a process of its own; a fixed build does not.
        let replayed = try Eddy.run(["replay", bundle, "--plugin-dir", s.plugins.path], environment: s.environment)
        #expect(replayed.status == 0, "\(replayed.stdout)\(replayed.stderr)")
        #expect(replayed.stdout.contains("reproduced: the evaluation crashed with signal"), "\(replayed.stdout)")
        #expect(replayed.stdout.contains("the same build is \(s.plugins.path)/decimal.so"), "\(replayed.stdout)")
        let fixed = try Eddy.run(["replay", bundle, "--plugin-dir", s.fixed.path], environment: s.environment)
        #expect(fixed.status == 1, "\(fixed.stdout)\(fixed.stderr)")
        #expect(fixed.stdout.contains("did not reproduce: the evaluation exited with status 0"), "\(fixed.stdout)")
        // In this process, for a debugger: the crash stops eddy replay itself.
        let inProcess = try Eddy.run(
            ["replay", bundle, "--plugin-dir", s.plugins.path, "--in-process"], environment: s.environment)
        #expect(inProcess.stdout.contains("replaying in this process"), "\(inProcess.stdout)")
        #expect(inProcess.status != 0 && inProcess.status != 1, "\(inProcess.status) \(inProcess.stdout)")
    }

    @Test func anUploadedBodyIsKeptInTheBundle() throws {
        let s = try Setup()
        let server = try Server(
            pluginDir: s.plugins.path, rescan: "0.3", dataDirs: [s.work.path],
            arguments: Setup.serveArguments, environment: s.environment)
        try server.waitForPlugin("decimal.so", timeout: 30) { $0?["version"] as? String == "0.2.0" }
        let upload = try Data(contentsOf: URL(fileURLWithPath: s.eddy))
        let (code, body) = try server.request(
            "POST", "/eval?select=sum(x)", body: upload, contentType: "application/octet-stream")
        #expect(code == 500, "\(body)")
        let names = s.bundleNames()
        try #require(names.count == 1, "\(names); log:\n\(server.logText)")
        let kept = try Data(contentsOf: URL(fileURLWithPath: s.bundles + "/" + names[0] + "/input"))
        #expect(kept == upload)
        #expect(Self.mode(s.bundles + "/" + names[0] + "/input") == 0o600)
        server.stop()
        let replayed = try Eddy.run(
            ["replay", s.bundles + "/" + names[0], "--plugin-dir", s.plugins.path], environment: s.environment)
        #expect(replayed.status == 0 && replayed.stdout.contains("reproduced"), "\(replayed.stdout)\(replayed.stderr)")
    }

    /// A hand-written bundle whose plugin name climbs out of replay's scratch directory is refused, naming
    /// the field, before anything is copied; the private copy it names exists, so only the check stops it.
    @Test func aBundlesValuesStayValuesWhenReplayed() throws {
        // A hostile bundle.json: an input named like an option, an expression starting with `-`.
        let bundle = ScratchDirectory()
        let state = ScratchDirectory()
        let json = """
            {"format": "eddy-crash-bundle/1", "kind": "crash", "request": {"select": "-1", "where": "-x < 0"},
             "input": {"path": "--no-confine"}, "plugins": []}
            """
        try Data(json.utf8).write(to: URL(fileURLWithPath: bundle.path + "/bundle.json"))
        let r = try Eddy.run(["replay", bundle.path], environment: ["EDDY_SHADOW_DIR": state.path + "/copies"])
        // The input is read as a file name (there is none), not taken as --no-confine; the line that says
        // what is replayed can be pasted into a shell.
        #expect(r.stdout.contains("'--where=-x < 0'") && r.stdout.contains("-- --no-confine"), "\(r.stdout)")
        #expect(r.status != 64, "\(r.status) \(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("--no-confine") && !r.stderr.contains("Unknown option"), "\(r.stderr)")
    }

    @Test func aBundleWhosePluginNameIsAPathIsRefused() throws {
        let state = ScratchDirectory()
        let tmp = ScratchDirectory()
        let bundle = ScratchDirectory()
        let copies = state.path + "/copies"
        try FileManager.default.createDirectory(atPath: copies, withIntermediateDirectories: true)
        let copy = copies + "/x-0123.so"
        try Data("not a plugin".utf8).write(to: URL(fileURLWithPath: copy))
        let hash = try sha256(copy)
        let input = bundle.path + "/trips.csv"
        try Data("x\n1\n".utf8).write(to: URL(fileURLWithPath: input))
        let json = """
            {"format": "eddy-crash-bundle/1", "kind": "crash", "request": {"select": "count(*)"},
             "input": {"path": "\(input)"},
             "plugins": [{"name": "../../escaped", "version": "1.0.0", "sha256": "\(hash)", "copy": "x-0123.so"}]}
            """
        try Data(json.utf8).write(to: URL(fileURLWithPath: bundle.path + "/bundle.json"))
        let r = try Eddy.run(
            ["replay", bundle.path], environment: ["EDDY_SHADOW_DIR": copies, "TMPDIR": tmp.path])
        #expect(r.status == 2, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("plugins[0].name: expected letters, digits"), "\(r.stderr)")
        #expect(r.stderr.contains("'../../escaped'"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.path + "/escaped.so"))
        #expect(!FileManager.default.fileExists(atPath: state.path + "/escaped.so"))
    }
}
