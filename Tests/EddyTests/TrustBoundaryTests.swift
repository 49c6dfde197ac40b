import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// The fault table of the trust boundary: each case drives the real `eddy` binary or a real
// `eddy serve`, and checks the status, the message, that the process that should live is alive, and
// that no secret bytes leak into a response.

/// A data directory with the trips file, and a secret outside it reachable by a symlink.
final class DataFixture {
    let root = ScratchDirectory()
    let data: String
    let secret: String
    let csv: String

    init() {
        data = root.path + "/data"
        try? FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        secret = root.write("secret.txt", "name,value\n\(secretMarker),1\n")
        let work = ScratchDirectory()
        let source = tripsCSV(work, rows: 300)
        csv = data + "/trips.csv"
        try? FileManager.default.copyItem(atPath: source, toPath: csv)
        try? FileManager.default.createSymbolicLink(atPath: data + "/link.csv", withDestinationPath: secret)
    }
}

@Suite(.serialized) struct ServeTrustTests {
    static func json(_ object: [String: Any]) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: object)) ?? Data(), as: UTF8.self)
    }

    @Test(arguments: [
        ("/etc/shadow", 403, "not inside a --data-dir"),
        ("/proc/self/environ", 403, "not inside a --data-dir"),
        ("link.csv", 403, "resolves to a file outside"),
        ("../secret.txt", 403, "not inside a --data-dir"),
        ("nosuch.csv", 404, "no such file"),
    ])
    func pathsOutsideTheDataDirectoriesAreRefused(path: String, status: Int, message: String) throws {
        let fixture = DataFixture()
        let plugins = ScratchDirectory()
        let server = try Server(pluginDir: plugins.path, dataDirs: [fixture.data])
        let r = try RawHTTP.post(port: server.port, body: Self.json(["path": path]))
        #expect(r.status == status, "\(r)")
        #expect(r.body.contains(message), "\(r.body)")
        #expect(!r.body.contains(secretMarker))
        // The file given in the query string is refused the same way.
        let q = try RawHTTP.post(
            port: server.port,
            path: "/eval?path="
                + (fixture.secret.addingPercentEncoding(
                    withAllowedCharacters: .alphanumerics) ?? ""),
            headers: ["Content-Type": "text/plain"], body: "")
        #expect(q.status == 403 && !q.body.contains(secretMarker), "\(q)")
        let ok = try RawHTTP.post(port: server.port, body: Self.json(["path": "trips.csv", "select": "count(*)"]))
        #expect(ok.status == 200 && ok.body.contains("300"), "\(ok)")
        #expect(server.process.isRunning)
    }

    @Test func withoutADataDirectoryOnlyUploadsAreEvaluated() throws {
        let fixture = DataFixture()
        let plugins = ScratchDirectory()
        let server = try Server(pluginDir: plugins.path, dataDirs: [])
        let r = try RawHTTP.post(port: server.port, body: Self.json(["path": fixture.csv]))
        #expect(r.status == 403 && r.body.contains("--data-dir"), "\(r)")
        let up = try RawHTTP.post(
            port: server.port, path: "/eval?select=count(*)", headers: ["Content-Type": "text/csv"],
            body: "a,b\n1,2\n3,4\n")
        #expect(up.status == 200 && up.body.contains("\"count(*)\": 2"), "\(up)")
    }

    @Test(arguments: [
        (["Host": "evil.example:80"], 421, "not served here"),
        (["Host": "127.0.0.1.evil.example"], 421, "not served here"),
        (["Origin": "http://evil.example"], 403, "origin"),
        (["Origin": "null"], 403, "origin"),
        // Loopback on another port is another site (a page on localhost:9 must not reach this server).
        (["Origin": "http://localhost:9"], 403, "origin"),
        (["Sec-Fetch-Site": "cross-site"], 403, "cross-site"),
    ])
    func foreignHostsAndOriginsAreRefused(headers: [String: String], status: Int, message: String) throws {
        let fixture = DataFixture()
        let plugins = ScratchDirectory()
        let server = try Server(pluginDir: plugins.path, dataDirs: [fixture.data])
        let r = try RawHTTP.post(port: server.port, headers: headers, body: Self.json(["path": "trips.csv"]))
        #expect(r.status == status && r.body.contains(message), "\(r)")
        // The same request from the machine itself passes.
        let ok = try RawHTTP.post(
            port: server.port,
            headers: [
                "Host": "localhost:\(server.port)",
                "Origin": "http://localhost:\(server.port)",
            ],
            body: Self.json(["path": "trips.csv", "select": "count(*)"]))
        #expect(ok.status == 200, "\(ok)")
    }

    @Test func aBearerTokenIsRequiredWhenConfigured() throws {
        let fixture = DataFixture()
        let plugins = ScratchDirectory()
        let tokenFile = fixture.root.write("token", "s3cret-token-0123456789\n")
        chmod(tokenFile, 0o600)
        let server = try Server(
            pluginDir: plugins.path, dataDirs: [fixture.data], arguments: ["--token-file", tokenFile])
        let body = Self.json(["path": "trips.csv", "select": "count(*)"])
        #expect(try RawHTTP.post(port: server.port, body: body, authorized: false).status == 401)
        #expect(
            try RawHTTP.post(port: server.port, headers: ["Authorization": "Bearer wrong-token-0123456789"], body: body)
                .status == 401)
        #expect(
            try RawHTTP.post(
                port: server.port, headers: ["Authorization": "Bearer s3cret-token-0123456789"], body: body
            )
            .status == 200)
        let health = try RawHTTP.exchange(
            port: server.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        #expect(health.status == 200)
    }

    @Test func aNonLoopbackAddressNeedsAToken() throws {
        let r = try Eddy.run(["serve", "--hostname", "0.0.0.0", "--port", "0", "--no-token"])
        #expect(r.status == 2 && r.stderr.contains("--no-token is for loopback only"), "\(r.stderr)")
        let dir = ScratchDirectory()
        let loose = dir.write("token", "s3cret-token-0123456789")
        chmod(loose, 0o644)
        let r2 = try Eddy.run(["serve", "--hostname", "0.0.0.0", "--port", "0", "--token-file", loose])
        #expect(r2.status == 2 && r2.stderr.contains("readable by others"), "\(r2.stderr)")
    }

    @Test(arguments: [
        (#"{"path": "trips.csv", "wehre": "fare > 1"}"#, "unknown field 'wehre'"),
        (#"{"path": "trips.csv", "where": ["fare > 1"]}"#, "field 'where' must be a string, got an array"),
        (#"{"path": "trips.csv", "trace": "yes"}"#, "field 'trace' must be true or false"),
        (#"{"path": 7}"#, "field 'path' must be a string, got a number"),
        (#"[1, 2]"#, "not a JSON object"),
        (#"{"path": "trips.csv", "format": "xml"}"#, "unknown format 'xml'"),
        (#"{"path": "trips.csv", "input_format": "orc"}"#, "unknown input_format 'orc'"),
        (#"{"path": "trips.csv", "path": "../secret.txt"}"#, "field 'path' is given twice"),
    ])
    func malformedRequestsAre400NamingTheField(body: String, message: String) throws {
        let fixture = DataFixture()
        let plugins = ScratchDirectory()
        let server = try Server(pluginDir: plugins.path, dataDirs: [fixture.data])
        let r = try RawHTTP.post(port: server.port, body: body)
        #expect(r.status == 400 && r.body.contains(message), "\(r)")
        let q = try RawHTTP.post(
            port: server.port, path: "/eval?selct=a", headers: ["Content-Type": "text/csv"], body: "a\n1\n")
        #expect(q.status == 400 && q.body.contains("unknown query parameter 'selct'"), "\(q)")
    }

    @Test func ambiguousRequestsAreRefused() throws {
        let fixture = DataFixture()
        let plugins = ScratchDirectory()
        let server = try Server(pluginDir: plugins.path, dataDirs: [fixture.data])
        let csv = ["Content-Type": "text/csv"]
        let twice = try RawHTTP.post(port: server.port, path: "/eval?where=a>0&where=a<0", headers: csv, body: "a\n1\n")
        #expect(twice.status == 400 && twice.body.contains("query parameter 'where' is given twice"), "\(twice)")
        let both = try RawHTTP.post(port: server.port, path: "/eval?path=../secret.txt", headers: csv, body: "a\n1\n")
        #expect(both.status == 400 && both.body.contains("not both"), "\(both)")
        let overlap = try RawHTTP.post(
            port: server.port, path: "/eval?select=a", body: #"{"path": "trips.csv", "select": "b"}"#)
        #expect(overlap.status == 400 && overlap.body.contains("both the query string and the body"), "\(overlap)")
        let noHost = try RawHTTP.exchange(
            port: server.port,
            "POST /eval HTTP/1.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        #expect(noHost.status == 400 && noHost.body.contains("Host header is required"), "\(noHost)")
        let twoHosts = try RawHTTP.exchange(
            port: server.port,
            "POST /eval HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n"
                + "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        #expect(twoHosts.status == 400 && twoHosts.body.contains("more than one Host"), "\(twoHosts)")
        #expect(!(twice.body + both.body + overlap.body).contains(secretMarker))
    }

    @Test func uploadsLiveInAPrivateDirectoryAndAreRemoved() throws {
        let plugins = ScratchDirectory()
        let tmp = ScratchDirectory()
        let server = try Server(pluginDir: plugins.path, dataDirs: [], environment: ["TMPDIR": tmp.path])
        let dirs = try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter {
            $0.hasPrefix("eddy-uploads-")
        }
        #expect(dirs.count == 1)
        let uploads = tmp.path + "/" + (dirs.first ?? "")
        var st = stat()
        #expect(stat(uploads, &st) == 0 && st.st_mode & 0o777 == 0o700)
        let up = try RawHTTP.post(
            port: server.port, path: "/eval", headers: ["Content-Type": "text/csv"], body: "a,b\n1,2\n3\n")
        #expect(up.status == 400 && up.body.contains("upload:3:2"), "\(up)")  // named "upload", not by its path
        #expect(!up.body.contains(uploads))
        #expect(try FileManager.default.contentsOfDirectory(atPath: uploads).isEmpty)
        server.stop()
        #expect(!FileManager.default.fileExists(atPath: uploads))
    }

    @Test func bodySizeAndTimeLimits() throws {
        let plugins = ScratchDirectory()
        let server = try Server(
            pluginDir: plugins.path, dataDirs: [],
            arguments: ["--max-body-bytes", "1000", "--body-timeout", "1", "--idle-timeout", "5"])
        let big = try RawHTTP.post(
            port: server.port, headers: ["Content-Type": "text/csv"],
            body: "a\n" + String(repeating: "1\n", count: 1000))
        #expect(big.status == 413 && big.body.contains("--max-body-bytes"), "\(big)")
        let half = try RawHTTP.exchange(
            port: server.port,
            "POST /eval HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\n"
                + "Content-Length: 100\r\n\r\na\n1\n")
        #expect(half.status == 408 && half.body.contains("--body-timeout"), "\(half)")
        let chunked = try RawHTTP.exchange(
            port: server.port,
            "POST /eval HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n4\r\na,b\n\r\n")
        #expect(chunked.status == 408, "\(chunked)")
        #expect(server.process.isRunning)
    }

    @Test func aHalfSentRequestHeadIsClosedAfterTheIdleTimeout() throws {
        let plugins = ScratchDirectory()
        let server = try Server(
            pluginDir: plugins.path, dataDirs: [], arguments: ["--idle-timeout", "1", "--body-timeout", "0.5"])
        let started = Date()
        let r = try RawHTTP.exchange(port: server.port, "POST /eval HTTP/1.1\r\nHost: local", timeout: 20)
        #expect(r.status == 0)
        #expect(
            Date().timeIntervalSince(started) < 15, "the connection was closed by the server, not the client's timeout")
        #expect(server.process.isRunning)
    }

    @Test func deadlinesBusyServersAndLargeResultsAreRefusedClearly() throws {
        let fixture = DataFixture()
        var text = "a,b\n"
        for i in 0..<300_000 { text += "\(i),\(i % 7)\n" }
        _ = ScratchDirectory.write(at: fixture.data + "/big.csv", text)
        let plugins = ScratchDirectory()
        let server = try Server(
            pluginDir: plugins.path, dataDirs: [fixture.data],
            arguments: ["--eval-timeout", "0.2", "--max-concurrent", "1", "--max-queue", "0"])
        // Slow in any build: a 2,000-term chain over 300k rows.
        let chain = (0..<2_000).map { "a = \($0 * 61)" }.joined(separator: " or ")
        let slow = Self.json(["path": "big.csv", "where": chain, "select": "count(*)"])
        final class Box: @unchecked Sendable { var value: (status: Int, body: String)? }  // written once, read after
        let first = Box()
        let port = server.port
        let t = Thread { first.value = try? RawHTTP.post(port: port, body: slow) }
        t.start()
        // Wait until it holds the only evaluation slot.
        for _ in 0..<200 {
            let (_, health) = try server.request("GET", "/health")
            if health["in_flight"] as? Int == 1 { break }
            usleep(10_000)
        }
        let busy = try RawHTTP.post(port: server.port, body: Self.json(["path": "trips.csv", "select": "count(*)"]))
        #expect(busy.status == 503 && busy.body.contains("--max-concurrent"), "\(busy)")
        while first.value == nil { usleep(50_000) }
        #expect(
            first.value?.status == 504 && first.value?.body.contains("--eval-timeout") == true,
            "\(String(describing: first.value))")
        #expect(server.process.isRunning)

        let small = try Server(
            pluginDir: plugins.path, dataDirs: [fixture.data], arguments: ["--max-result-bytes", "2000"])
        let fine = try RawHTTP.post(port: small.port, body: Self.json(["path": "trips.csv", "select": "count(*)"]))
        #expect(fine.status == 200, "\(fine)")
        let large = try RawHTTP.post(port: small.port, body: Self.json(["path": "trips.csv"]))
        #expect(large.status == 413 && large.body.contains("--max-result-bytes"), "\(large)")
        // A FIFO or a device under a data directory would block a thread: only regular files are read by path.
        mkfifo(fixture.data + "/pipe.csv", 0o600)
        let fifo = try RawHTTP.post(port: small.port, body: Self.json(["path": "pipe.csv"]))
        #expect(fifo.status == 403 && fifo.body.contains("not a regular file"), "\(fifo)")
    }

    @Test func anEvaluationStopsWhenItsClientGoesAway() throws {
        let fixture = DataFixture()
        var text = "a,b\n"
        for i in 0..<400_000 { text += "\(i),\(i % 7)\n" }
        _ = ScratchDirectory.write(at: fixture.data + "/big.csv", text)
        let plugins = ScratchDirectory()
        let server = try Server(pluginDir: plugins.path, dataDirs: [fixture.data])
        let body = #"{"path":"big.csv","select":"a"}"#
        _ = try? RawHTTP.exchange(
            port: server.port,
            "POST /eval HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n" + body, timeout: 0.3)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && !server.logText.contains("evaluation cancelled") { usleep(50_000) }
        #expect(server.logText.contains("evaluation cancelled: the client closed the connection"), "\(server.logText)")
        #expect(server.process.isRunning)
    }

    @Test(arguments: ["10,000 parentheses", "a superscript digit", "minus minus i64 min", "5,000 nots"])
    func hostileExpressionsGet400AndTheServerLives(name: String) throws {
        let (expression, message) = try #require(HostileExpressions.table[name])
        let fixture = DataFixture()
        let plugins = ScratchDirectory()
        let server = try Server(pluginDir: plugins.path, dataDirs: [fixture.data])
        let r = try RawHTTP.post(port: server.port, body: Self.json(["path": "trips.csv", "where": expression]))
        #expect(r.status == 400 && r.body.contains(message), "\(r.status) \(r.body.prefix(300))")
        let long = (0..<5_000).map { "fare > \($0)" }.joined(separator: " and ")
        let tooLong = try RawHTTP.post(port: server.port, body: Self.json(["path": "trips.csv", "where": long]))
        #expect(tooLong.status == 400 && tooLong.body.contains("too long"), "\(tooLong.body.prefix(300))")
        #expect(server.process.isRunning)
        let ok = try RawHTTP.post(port: server.port, body: Self.json(["path": "trips.csv", "select": "count(*)"]))
        #expect(ok.status == 200)
    }

    @Test func aContractErrorOverHTTPBlamesThePluginWhoseKernelReturnedIt() throws {
        let fixture = DataFixture()
        let plugins = try ScratchDirectory().plugins()
        try plugins.copy(PluginFiles.built("EddyFixtureWrongLength"), as: "wrong-length.so")
        // Unverified, so that the kernel reaches serving (verification at load would refuse it).
        let server = try Server(pluginDir: plugins.path, dataDirs: [fixture.data], arguments: ["--verify", "off"])
        try server.waitForPlugin("wrong-length.so") { $0?["status"] as? String == "loaded" }
        // Storage compression (what the server chose by itself while a plugin had kernels on the engine's
        // encodings): the tree it builds for this column is one where the fixture's kernel is reached.
        let (status, body) = try server.eval(
            fixture.csv, where: "city = 'Lyon'", select: "count(*)", compression: "storage")
        #expect(status == 500, "\(body)")
        #expect((body["owner"] as? String)?.contains("wrong-length") == true, "\(body)")
    }
}

@Suite struct PluginTrustTests {
    func report(_ dir: String, _ extra: [String] = [], environment: [String: String] = [:]) throws
        -> (Eddy.Result, [String: [String: Any]])
    {
        let r = try Eddy.run(["plugins", "--plugin-dir", dir, "--json"] + extra, environment: environment)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let files = object?["files"] as? [[String: Any]] ?? []
        return (
            r,
            Dictionary(
                files.map { (URL(fileURLWithPath: $0["file"] as? String ?? "").lastPathComponent, $0) },
                uniquingKeysWith: { a, _ in a })
        )
    }

    @Test(arguments: [
        (HostileFixtures.Mode.exit, "without reporting success"),
        (HostileFixtures.Mode.loop, "hung while loading, registering or verifying"),
        (HostileFixtures.Mode.crash, "crashed in the probe process (killed by signal 11"),
        (HostileFixtures.Mode.destructor, "crashed in the probe process at exit, after registering (in a destructor"),
    ])
    func theProbeRefusesPluginsThatExitHangOrCrash(mode: HostileFixtures.Mode, reason: String) throws {
        let dir = ScratchDirectory()
        try dir.copy(try HostileFixtures.build(mode), as: "hostile.so")
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let (r, rows) = try report(dir.path, ["--probe-timeout", "2"])
        #expect(rows["hostile.so"]?["status"] as? String == "rejected")
        #expect(
            (rows["hostile.so"]?["reason"] as? String)?.contains(reason) == true,
            "\(rows["hostile.so"] ?? [:]) \(r.stderr)")
        #expect(rows["delta.so"]?["status"] as? String == "loaded")
        // The host goes on to evaluate, with the good plugin.
        let work = ScratchDirectory()
        let e = try Eddy.run([
            "eval", tripsCSV(work, rows: 50), "--plugin-dir", dir.path, "--probe-timeout", "2",
            "--select", "count(*)", "--format", "csv",
        ])
        #expect(e.status == 0 && e.stdout == "count(*)\n50\n", "\(e.stderr)")
        #expect(e.stderr.contains("hostile.so rejected"))
    }

    @Test func aPassedProbeIsKeptForTheSameBytesBuildAndProbeCommand() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try dir.copy(try HostileFixtures.build(.crash), as: "crash.so")
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o700)
        let env = ["EDDY_SHADOW_DIR": shadow.path]
        func probe(_ extra: [String] = []) throws -> (delta: String, crash: String, rows: [String: [String: Any]]) {
            let (_, rows) = try report(dir.path, ["--probe-timeout", "5"] + extra, environment: env)
            #expect(rows["delta.so"]?["status"] as? String == "loaded", "\(rows)")
            #expect(rows["crash.so"]?["status"] as? String == "rejected", "\(rows)")
            return (
                rows["delta.so"]?["probe"] as? String ?? "", rows["crash.so"]?["probe"] as? String ?? "", rows
            )
        }
        var r = try probe()
        #expect(r.delta == "ran" && r.crash == "ran", "\(r.rows)")
        // The next host (a new process, the same build) does not start a child for the same bytes;
        // a plugin that failed its probe is probed, and refused, every time.
        r = try probe()
        #expect(r.delta == "passed earlier" && r.crash == "ran", "\(r.rows)")
        #expect((r.rows["crash.so"]?["reason"] as? String)?.contains("crashed in the probe process") == true)
        // Another probe command (here its timeout) is another verdict.
        r = try probe(["--probe-timeout", "7"])
        #expect(r.delta == "ran", "\(r.rows)")
        // Other bytes are probed.
        try dir.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: "delta.so")
        r = try probe()
        #expect(r.delta == "ran", "\(r.rows)")
        // A verdict file that is not a regular file of this user is not read.
        let verdicts = shadow.path + "/probed.tsv"
        let kept = try String(contentsOfFile: verdicts, encoding: .utf8)
        unlink(verdicts)
        let other = ScratchDirectory()
        let elsewhere = other.path + "/verdicts.tsv"
        try kept.write(toFile: elsewhere, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: verdicts, withDestinationPath: elsewhere)
        r = try probe()
        #expect(r.delta == "ran", "\(r.rows)")
        // Another library search path is another verdict (a plugin's own dependencies resolve through it).
        unlink(verdicts)
        _ = try probe()
        let (_, moved) = try report(
            dir.path, ["--probe-timeout", "5"], environment: env.merging(["LD_LIBRARY_PATH": other.path]) { $1 })
        #expect(moved["delta.so"]?["probe"] as? String == "ran", "\(moved)")
        // A FIFO in the verdict file's place is neither read nor written (it would wait for a reader).
        unlink(verdicts)
        #expect(mkfifo(verdicts, 0o600) == 0)
        let started = Date()
        r = try probe()
        #expect(r.delta == "ran" && Date().timeIntervalSince(started) < 20, "\(r.rows)")
        unlink(verdicts)
        // Without the probe (the crashing plugin would take this host down: not here).
        unlink(dir.path + "/crash.so")
        let (_, off) = try report(dir.path, ["--no-probe"], environment: env)
        #expect(off["delta.so"]?["probe"] as? String == "off", "\(off)")
    }

    @Test func registrationInTheHostIsBoundedWithoutTheProbe() throws {
        let dir = ScratchDirectory()
        try dir.copy(try HostileFixtures.build(.loop), as: "loop.so")
        let (_, rows) = try report(dir.path, ["--no-probe", "--probe-timeout", "1"])
        #expect(
            (rows["loop.so"]?["reason"] as? String)?.contains("hung while registering in the host") == true, "\(rows)")
    }

    @Test func aProbeChildDoesNotOutliveItsHost() throws {
        let dir = ScratchDirectory()
        try dir.copy(try HostileFixtures.build(.loop), as: "loop.so")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Eddy.binary)
        p.environment = Eddy.childEnvironment
        p.arguments = ["plugins", "--plugin-dir", dir.path, "--probe-timeout", "120"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        func probes() -> [Int32] {
            let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return all.compactMap(Int32.init).filter { pid in
                let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                return cmd.contains("probe-plugin") && cmd.contains("--parent\u{0}\(p.processIdentifier)")
            }
        }
        var children: [Int32] = []
        for _ in 0..<100 where children.isEmpty {
            usleep(50_000)
            children = probes()
        }
        #expect(!children.isEmpty)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        for _ in 0..<100 where !probes().isEmpty { usleep(50_000) }
        #expect(probes().isEmpty, "the probe child kept running after its host was killed")
    }

    @Test func aServerWithAHangingPluginKeepsServingAndStops() throws {
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path, dataDirs: [], arguments: ["--probe-timeout", "1"])
        try dir.copy(try HostileFixtures.build(.loop), as: "loop.so")
        try server.waitForPlugin("loop.so") { ($0?["reason"] as? String)?.contains("hung") == true }
        let (status, _) = try server.request("GET", "/health")
        #expect(status == 200)
        let started = Date()
        server.stop()
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func insecureDirectoriesAndFilesAreRefusedUnlessAllowed() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        chmod(dir.path, 0o777)
        var (_, rows) = try report(dir.path)
        #expect(
            (rows["delta.so"]?["reason"] as? String)?.contains("is writable by others (mode 0777)") == true, "\(rows)")
        (_, rows) = try report(dir.path, ["--allow-insecure-dir"])
        #expect(rows["delta.so"]?["status"] as? String == "loaded")
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("warning") == true)
        chmod(dir.path, 0o755)
        chmod(dir.path + "/delta.so", 0o666)
        (_, rows) = try report(dir.path)
        #expect(
            (rows["delta.so"]?["reason"] as? String)?.contains("plugin file is writable by others") == true, "\(rows)")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give a file to another user"))
    func aPluginFileOwnedByAnotherUserIsRefused() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        chown(dir.path + "/delta.so", 65534, 65534)
        let (_, rows) = try report(dir.path)
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("owned by uid 65534") == true, "\(rows)")
    }

    @Test func symbolicLinksAreFollowedOnlyInsideTheDirectory() throws {
        let dir = ScratchDirectory()
        let elsewhere = ScratchDirectory()
        try elsewhere.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try FileManager.default.createDirectory(atPath: dir.path + "/versions", withIntermediateDirectories: true)
        try dir.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: "versions/packed-1.so")
        try FileManager.default.createSymbolicLink(
            atPath: dir.path + "/outside.so", withDestinationPath: elsewhere.path + "/delta.so")
        try FileManager.default.createSymbolicLink(
            atPath: dir.path + "/packed.so", withDestinationPath: "versions/packed-1.so")
        let (_, rows) = try report(dir.path)
        #expect(rows["outside.so"]?["status"] as? String == "rejected")
        #expect((rows["outside.so"]?["reason"] as? String)?.contains("outside the plugin directory") == true, "\(rows)")
        #expect((rows["outside.so"]?["link_target"] as? String)?.hasSuffix("/delta.so") == true)
        #expect(rows["packed.so"]?["status"] as? String == "loaded", "\(rows)")
        #expect((rows["packed.so"]?["link_target"] as? String)?.hasSuffix("versions/packed-1.so") == true)
        let text = try Eddy.run(["plugins", "--plugin-dir", dir.path])
        #expect(text.stdout.contains("packed.so -> "))
    }

    @Test func fileNamesWithControlCharactersCannotForgeReportLines() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "evil\nforged  loaded  fake  9.9.9.so")
        let r = try Eddy.run(["plugins", "--plugin-dir", dir.path])
        #expect(r.stdout.contains("evil\\nforged"))
        #expect(!r.stdout.split(separator: "\n").contains { $0.hasPrefix("forged") }, "\(r.stdout)")
        let e = try Eddy.run(["eval", dir.path + "/no\nsuch.csv"])
        #expect(e.stderr.contains("no\\nsuch.csv") && !e.stderr.contains("no\nsuch"), "\(e.stderr)")
    }

    @Test func aHugeSparsePluginFileIsRefusedBeforeItIsRead() throws {
        let dir = ScratchDirectory()
        let path = dir.path + "/huge.so"
        let fd = open(path, O_CREAT | O_WRONLY, 0o644)
        _ = "\u{7F}ELF".withCString { write(fd, $0, 4) }
        ftruncate(fd, 4 << 30)
        close(fd)
        let notELF = dir.write("big-text.so", String(repeating: "x", count: 1000))
        truncate(notELF, 200 << 20)  // under the size cap: refused after reading its first bytes
        let (r, rows) = try report(dir.path)
        #expect(r.status == 1)  // files were refused; the host survived and reported them
        #expect((rows["huge.so"]?["reason"] as? String)?.contains("file size check failed") == true, "\(rows)")
        #expect((rows["big-text.so"]?["reason"] as? String)?.contains("not an ELF file") == true, "\(rows)")
        let work = ScratchDirectory()
        let memory = try Eddy.run([
            "eval", tripsCSV(work, rows: 10), "--plugin-dir", dir.path,
            "--report-memory", "--select", "count(*)",
        ])
        let kib =
            Int(memory.stderr.components(separatedBy: "peak resident memory: ").last?.split(separator: " ").first ?? "")
            ?? 0
        #expect(kib > 0 && kib < 150_000, "a big file was read into memory: \(kib) KiB \(memory.stderr)")
    }

    enum Craft: String, CaseIterable, Sendable {
        case phoffNearIntMax, shoffAllOnes, phnum65535, ptLoadOffsetNearIntMax

        var check: String {
            switch self {
            case .ptLoadOffsetNearIntMax: "loadable segment 0 check failed"
            case .shoffAllOnes: "dynamic segment check failed"  // section headers are never read
            default: "program headers check failed"
            }
        }

        func apply(_ h: inout [UInt8]) {
            switch self {
            case .phoffNearIntMax:
                PluginTrustTests.put(&h, 32, UInt64(Int.max))
                PluginTrustTests.put16(&h, 56, 65535)
            case .shoffAllOnes: PluginTrustTests.put(&h, 40, UInt64.max)
            case .phnum65535: PluginTrustTests.put16(&h, 56, 65535)
            case .ptLoadOffsetNearIntMax:
                PluginTrustTests.put16(&h, 56, 1)
                h += [UInt8](repeating: 0, count: 56)
                PluginTrustTests.put(&h, 64, 1)
                PluginTrustTests.put(&h, 72, UInt64(Int.max) - 7)
                PluginTrustTests.put(&h, 96, 1 << 62)
            }
        }
    }

    @Test(arguments: Craft.allCases)
    func craftedELFHeadersAreRefusedNamingTheCheck(craft: Craft) throws {
        var h = [UInt8](repeating: 0, count: 64)
        h[0...3] = [0x7F, 0x45, 0x4C, 0x46]
        h[4] = 2
        h[5] = 1
        h[6] = 1
        Self.put16(&h, 16, 3)
        Self.put16(&h, 18, 62)
        Self.put(&h, 32, 64)
        Self.put16(&h, 54, 56)
        craft.apply(&h)
        let dir = ScratchDirectory()
        FileManager.default.createFile(atPath: dir.path + "/crafted.so", contents: Data(h))
        let (r, rows) = try report(dir.path)
        #expect(r.status == 1, "\(craft): \(r.stderr)")
        #expect((rows["crafted.so"]?["reason"] as? String)?.contains(craft.check) == true, "\(craft): \(rows)")
    }

    static func put(_ h: inout [UInt8], _ at: Int, _ v: UInt64) {
        for k in 0..<8 { h[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
    }

    static func put16(_ h: inout [UInt8], _ at: Int, _ v: UInt16) {
        h[at] = UInt8(v & 0xFF)
        h[at + 1] = UInt8(v >> 8)
    }

    @Test func swappingThePrivateCopyDirectoryAfterTheChecksPlantsNothing() throws {
        // The host keeps a descriptor of the directory it verified and loads through it: a directory
        // put in its place afterwards (by whoever can write the parent) is never read.
        let parent = ScratchDirectory()
        chmod(parent.path, 0o777)
        let shadow = parent.path + "/shadow"
        let plugins = ScratchDirectory()
        let marker = parent.path + "/PLANTED"
        let server = try Server(
            pluginDir: plugins.path, dataDirs: [], arguments: ["--no-probe", "--workers", "0"],
            environment: ["EDDY_SHADOW_DIR": shadow, "EDDY_TEST_MARKER": marker])
        try FileManager.default.moveItem(atPath: shadow, toPath: shadow + ".verified")
        try FileManager.default.createDirectory(atPath: shadow, withIntermediateDirectories: false)
        let good = try HostileFixtures.build(.good)
        let digest = try sha256Prefix(good)
        try FileManager.default.copyItem(
            atPath: try HostileFixtures.build(.plant), toPath: shadow + "/good-\(digest).so")
        try plugins.copy(good, as: "good.so")
        try server.waitForPlugin("good.so") { $0?["status"] as? String == "loaded" }
        #expect(!FileManager.default.fileExists(atPath: marker), "planted code ran")
        #expect(FileManager.default.fileExists(atPath: shadow + ".verified/good-\(digest).so"))
    }

    @Test func symbolTablesWithEndlessNamesAreCheckedInLinearTime() throws {
        // 20,000 symbols whose names all run into a 4 MB string table without a NUL: reading every
        // name to its end would take minutes.
        var b = [UInt8](repeating: 0, count: 64 + 2 * 56 + 6 * 16 + 20_000 * 24 + 16 + 4_000_000)
        func put(_ at: Int, _ v: UInt64, _ width: Int) {
            for k in 0..<width { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        }
        let phoff = 64, dyn = 64 + 2 * 56, sym = dyn + 6 * 16, hash = sym + 20_000 * 24, str = hash + 16
        b[0...6] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1]
        put(16, 3, 2); put(18, 62, 2); put(20, 1, 4); put(32, UInt64(phoff), 8); put(52, 64, 2); put(54, 56, 2);
        put(56, 2, 2)
        put(phoff, 1, 4); put(phoff + 32, UInt64(b.count), 8); put(phoff + 40, UInt64(b.count), 8)
        put(phoff + 56, 2, 4); put(phoff + 56 + 8, UInt64(dyn), 8); put(phoff + 56 + 16, UInt64(dyn), 8);
        put(phoff + 56 + 32, 96, 8)
        for (k, (tag, value)) in [(5, str), (6, sym), (10, 4_000_000), (4, hash), (1, 0), (0, 0)].enumerated() {
            put(dyn + k * 16, UInt64(tag), 8)
            put(dyn + k * 16 + 8, UInt64(value), 8)
        }
        for s in 0..<20_000 { b[sym + s * 24 + 4] = 0x12; put(sym + s * 24 + 6, 1, 2) }
        put(hash, 1, 4); put(hash + 4, 20_000, 4)
        for k in str..<b.count { b[k] = UInt8(ascii: "A") }
        let dir = ScratchDirectory()
        FileManager.default.createFile(atPath: dir.path + "/names.so", contents: Data(b))
        let (r, rows) = try report(dir.path)
        #expect(r.status == 0)
        #expect(rows["names.so"]?["status"] as? String == "skipped", "\(rows)")
    }

    @Test func aPrivateCopyDirectoryOthersCanWriteIsRefused() throws {
        let dir = try ScratchDirectory().plugins()
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o777)
        let (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("private copy directory") == true, "\(rows)")
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("mode 0777, expected 0700") == true, "\(rows)")
        // A link in its place is refused too.
        let link = ScratchDirectory().path + "-link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: shadow.path)
        defer { unlink(link) }
        let (_, rows2) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": link])
        #expect(
            (rows2["delta.so"]?["reason"] as? String)?.contains("symbolic link or not a directory") == true, "\(rows2)")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give a directory to another user"))
    func aPrivateCopyDirectoryOwnedByAnotherUserIsRefused() throws {
        let dir = try ScratchDirectory().plugins()
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o700)
        chown(shadow.path, 65534, 65534)
        let (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("owned by uid 65534") == true, "\(rows)")
    }

    @Test func aPlantedPrivateCopyIsNeverLoaded() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o700)
        // First load: learn the private copy's name.
        var (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect(rows["delta.so"]?["status"] as? String == "loaded")
        let copies = try FileManager.default.contentsOfDirectory(atPath: shadow.path).filter { $0.hasSuffix(".so") }
        #expect(copies.count == 1)
        let copy = shadow.path + "/" + (copies.first ?? "")
        // Plant another plugin of the same size under that name, and a victim behind a link.
        var planted = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyFixtureThrowing")))
        let real = try Data(contentsOf: URL(fileURLWithPath: copy))
        planted =
            planted.count >= real.count ? planted.prefix(real.count) : planted + Data(count: real.count - planted.count)
        try planted.write(to: URL(fileURLWithPath: copy))
        (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect(rows["delta.so"]?["status"] as? String == "loaded", "\(rows)")
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: copy)) == real,
            "the planted bytes were replaced by the checked ones")
        let victims = ScratchDirectory()
        let victim = victims.write("victim.txt", "untouched")
        try FileManager.default.removeItem(atPath: copy)
        try FileManager.default.createSymbolicLink(atPath: copy, withDestinationPath: victim)
        (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect(rows["delta.so"]?["status"] as? String == "loaded", "\(rows)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched")
        var st = stat()
        // Readable by a worker that became --worker-user (only its owner may write it or its directory).
        #expect(lstat(copy, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && st.st_mode & 0o777 == 0o644)
    }
}

@Suite struct InputTrustTests {
    @Test(arguments: HostileExpressions.table.keys.sorted())
    func hostileExpressionsAreErrorsWithCarets(name: String) throws {
        let (expression, message) = try #require(HostileExpressions.table[name])
        let work = ScratchDirectory()
        let r = try Eddy.run(["eval", tripsCSV(work, rows: 20), "--where", expression, "--select", "count(*)"])
        #expect(r.status == 2, "\(r.stderr.prefix(400))")
        #expect(r.stderr.contains(message) && r.stderr.contains("^"), "\(r.stderr.prefix(400))")
        #expect(r.stderr.count < 2_000, "a long expression is shown as a window")
    }

    @Test(arguments: [("and", 5_000), ("or", 3_000)])
    func longAndOrChainsEvaluate(op: String, terms: Int) throws {
        let work = ScratchDirectory()
        let expression = (0..<terms).map { op == "and" ? "fare >= 0" : "trip_id = \(100_000 + $0 * 2)" }
            .joined(separator: " \(op) ")
        let r = try Eddy.run([
            "eval", tripsCSV(work, rows: 3000), "--where", expression, "--select", "count(*)",
            "--format", "csv",
        ])
        #expect(r.status == 0, "\(r.stderr.prefix(300))")
        #expect(r.stdout == "count(*)\n\(op == "and" ? 3000 : 1500)\n")
    }

    @Test func valuesThatStartWithAMinusAreExpressions() throws {
        let work = ScratchDirectory()
        let r = try Eddy.run([
            "eval", tripsCSV(work, rows: 100), "--where", "-fare < -20", "--select", "-fare",
            "--format", "csv",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("-fare\n-2"), "\(r.stdout.prefix(100))")
    }

    @Test(arguments: [
        ("/", "is a directory"),
        ("/dev/zero", "is a character device"),
        ("/dev/null", "is a character device"),
    ])
    func onlyRegularFilesAndPipesAreRead(path: String, message: String) throws {
        let r = try Eddy.run(["eval", path, "--input-format", "jsonl"])
        #expect(r.status == 1 && r.stderr.contains(message), "\(r.stderr)")
    }

    @Test func aPipeIsReadButAnEndlessLineIsRefused() throws {
        let dir = ScratchDirectory()
        let fifo = dir.path + "/in.jsonl"
        mkfifo(fifo, 0o600)
        signal(SIGPIPE, SIG_IGN)  // the reader stops early on purpose
        let writer = Thread {
            let fd = open(fifo, O_WRONLY)
            let line = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
            for _ in 0..<8 { _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
            close(fd)
        }
        writer.start()
        let r = try Eddy.run(["eval", fifo, "--max-record-bytes", "1000000"])
        #expect(r.status == 1 && r.stderr.contains("line is longer than 1000000 bytes"), "\(r.stderr)")
        let csv = dir.write("long.csv", "a\n" + String(repeating: "y", count: 3_000_000) + "\n")
        let c = try Eddy.run(["eval", csv, "--max-record-bytes", "1000000"])
        #expect(c.status == 1 && c.stderr.contains("record is longer than 1000000 bytes"), "\(c.stderr)")
    }

    @Test func integersPastI64AreErrorsUnlessReadAsF64() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("big.csv", "a,b\n9223372036854775807,1\n9223372036854775808,2\n")
        let r = try Eddy.run(["eval", csv, "--where", "a = 9223372036854775807"])
        #expect(
            r.status == 1
                && r.stderr.contains("big.csv:3:1: column 'a': '9223372036854775808' is out of range for i64"),
            "\(r.stderr)")
        #expect(r.stderr.contains("--schema a:f64"))
        let f = try Eddy.run(["eval", csv, "--schema", "a:f64", "--select", "count(*)", "--format", "csv"])
        #expect(f.status == 0 && f.stdout == "count(*)\n2\n", "\(f.stderr)")
        let jsonl = dir.write("big.jsonl", "{\"a\": 1}\n{\"a\": 99999999999999999999}\n")
        let j = try Eddy.run(["eval", jsonl])
        #expect(
            j.status == 1 && j.stderr.contains("big.jsonl:2:1") && j.stderr.contains("out of range for i64"),
            "\(j.stderr)")
    }

    @Test func floatsPastF64AreErrors() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("inf.csv", "a\n1.5\n1e400\n")
        let r = try Eddy.run(["eval", csv])
        #expect(
            r.status == 1 && r.stderr.contains("inf.csv:3:1: column 'a': '1e400' is out of range for f64"),
            "\(r.stderr)")
        let jsonl = dir.write("inf.jsonl", "{\"a\": -1e999}\n")
        let j = try Eddy.run(["eval", jsonl])
        #expect(j.status == 1 && j.stderr.contains("out of range for f64"), "\(j.stderr)")
        // inf spelled out stays infinity.
        let named = dir.write("named.csv", "a\ninf\n-inf\n")
        #expect(try Eddy.run(["eval", named, "--format", "csv"]).stdout == "a\ninf\n-inf\n")
    }

    @Test func aNULByteNeverEndsANumberEarly() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("nul.csv", "a,b\n1\u{0}abc,2\n2,3\n")
        let r = try Eddy.run(["eval", csv, "--schema", "a:f64"])
        #expect(r.status == 1 && r.stderr.contains("is not a number (the type given by --schema)"), "\(r.stderr)")
        let inferred = try Eddy.run(["eval", csv, "--where", "a = '2'", "--select", "count(*)", "--format", "csv"])
        #expect(inferred.status == 0 && inferred.stdout == "count(*)\n1\n", "text, not 1.0: \(inferred.stderr)")
    }

    @Test func aByteOrderMarkIsNotPartOfTheFirstName() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("bom.csv", "\u{FEFF}a,b\n1,2\n")
        #expect(try Eddy.run(["eval", csv, "--select", "a", "--format", "csv"]).stdout == "a\n1\n")
        let jsonl = dir.write("bom.jsonl", "\u{FEFF}{\"a\": 1}\n")
        #expect(try Eddy.run(["eval", jsonl, "--format", "csv"]).stdout == "a\n1\n")
    }

    @Test func csvHeadersAreUnescapedLikeFields() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("h.csv", "\"we\"\"ird\",\"a,b\"\n1,2\n")
        let r = try Eddy.run(["eval", csv, "--format", "csv"])
        #expect(r.status == 0 && r.stdout == "\"we\"\"ird\",\"a,b\"\n1,2\n", "\(r.stdout) \(r.stderr)")
    }

    @Test func wideHeadersAreLinearAndBounded() throws {
        let dir = ScratchDirectory()
        let n = 50_000
        let header = (0..<n).map { "c\($0)" }.joined(separator: ",")
        let row = (0..<n).map { String($0 % 10) }.joined(separator: ",")
        let csv = dir.write("wide.csv", header + "\n" + row + "\n")
        let r = try Eddy.run(["eval", csv, "--select", "count(*), sum(c49999)", "--format", "csv"])
        #expect(r.status == 0 && r.stdout == "count(*),sum(c49999)\n1,9\n", "\(r.stderr.prefix(300))")
        let tooWide = dir.write("too-wide.csv", (0..<100_001).map { "c\($0)" }.joined(separator: ",") + "\n")
        let w = try Eddy.run(["eval", tooWide])
        #expect(w.status == 1 && w.stderr.contains("more than the limit of 100000"), "\(w.stderr.prefix(300))")
    }
}

/// The first 16 hex digits of a file's SHA-256 (how private copies are named).
func sha256Prefix(_ path: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["sha256sum", path]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return String(text.prefix(16))
}
