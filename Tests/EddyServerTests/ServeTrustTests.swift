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
