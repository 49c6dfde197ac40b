import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A client socket to a test server, held open without a word or fed a request in pieces.
final class ClientSocket {
    let fd: Int32

    /// - Parameter address: an IPv4 address of this machine (another than loopback makes the
    ///   connection come from that address).
    init(port: Int, address: String = "127.0.0.1") throws {
        // `self.fd` is set last: once every stored property is set, a throwing init runs deinit, which
        // closed the descriptor a second time — by then possibly another thread's (a pipe or a socket
        // libdispatch watches, whose registration then outlives its bookkeeping).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EddyTestError("socket failed: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(address)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw EddyTestError("connect failed: \(reason)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    func send(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Whether the server closed this connection (end of stream or reset) within `timeout` seconds
    /// without sending anything.
    func closedByServer(within timeout: Double) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return false }
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno == ECONNRESET)
    }

    /// One reply's status and body, read until its Content-Length is in.
    func reply(timeout: Double = 20) -> (status: Int, body: String) {
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += chunk[0..<n]
            let text = String(decoding: data, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n"),
                let line = text[..<end.lowerBound].split(separator: "\r\n").first(where: {
                    $0.lowercased().hasPrefix("content-length:")
                }),
                let length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)),
                text.utf8.count - text[..<end.upperBound].utf8.count >= length
            {
                break
            }
        }
        let text = String(decoding: data, as: UTF8.self)
        let status = text.hasPrefix("HTTP/1.1 ") ? Int(text.dropFirst(9).prefix(3)) ?? 0 : 0
        return (status, text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? "")
    }
}

/// `eddy serve` keeps its connections below the descriptor limit: a flood of idle connections
/// neither stalls nor spins it, and a connection with a request unanswered is never the one closed.
@Suite(.serialized) struct ServeConnectionLimitTests {
    static let prlimit = "/usr/bin/prlimit"

    /// The value of `key=N` in a server's log.
    static func logged(_ key: String, in log: String) -> Int? {
        guard let r = log.range(of: key + "=") else { return nil }
        return Int(log[r.upperBound...].prefix { $0.isNumber })
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: prlimit), "needs prlimit"))
    func idleConnectionsPastTheDescriptorLimitNeitherStallNorSpinTheServer() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 200)
        // 256 descriptors, soft and hard: 400 idle connections used to exhaust them, every accept then
        // failed with EMFILE at once and the server spun while /health timed out.
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [work.path],
            arguments: ["--workers", "1", "--max-concurrent", "1"], launcher: [Self.prlimit, "--nofile=256"])
        let cap = try #require(Self.logged("max_connections", in: server.logText), "\(server.logText)")
        #expect(cap > 0 && cap < 256, "\(server.logText)")
        var idle: [ClientSocket] = []
        for _ in 0..<400 { idle.append(try ClientSocket(port: server.port)) }
        let (status, health) = try server.request("GET", "/health")
        #expect(status == 200, "\(health)")
        #expect((health["connections"] as? Int ?? .max) <= cap, "\(health)")
        let (evaluated, result) = try server.eval(csv, select: "count(*)")
        #expect(evaluated == 200 && "\(result)".contains("200"), "\(result)")
        // The server is not spinning: CPU over two seconds, with every connection still held.
        let pid = server.process.processIdentifier
        let before = cpuTicks(pid)
        sleep(2)
        let used = cpuTicks(pid) - before
        #expect(used < 50, "the server used \(used) ticks of CPU in 2 s while idle connections were held")
        // The connections past the cap were closed by the server (the longest idle first), not left hanging.
        let closed = idle.filter { $0.closedByServer(within: 0) }.count
        #expect(closed >= 400 - cap, "\(closed) of 400 idle connections closed, cap \(cap)")
        let (_, metrics) = try server.request("GET", "/metrics")
        let text = metrics["text"] as? String ?? ""
        #expect(
            !text.contains("eddy_connections_reclaimed_total 0") && text.contains("eddy_connections_reclaimed_total"),
            "\(text)")
        #expect(server.process.isRunning)
    }

    @Test func aConnectionWithARequestUnansweredIsNeverClosedToMakeRoom() throws {
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [], arguments: ["--max-connections", "4"])
        #expect(server.logText.contains("max_connections=4"))
        let token = try #require(server.token)
        let head =
            "POST /eval?select=count(*) HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(token)\r\n"
            + "Content-Type: text/csv\r\nContent-Length: 12\r\n\r\na\n"
        // Three requests whose bodies are still coming: busy.
        let busy = try (0..<3).map { _ in try ClientSocket(port: server.port) }
        for b in busy { b.send(head) }
        usleep(500_000)
        // Idle connections come and go in the one slot left: each new one closes the one before.
        let idle = try (0..<20).map { _ in try ClientSocket(port: server.port) }
        usleep(500_000)
        // (Two event loops accept them, so which one is last in is not always the last connected.)
        let open = idle.filter { !$0.closedByServer(within: 0.2) }
        #expect(open.count == 1, "\(20 - open.count) of 20 idle connections closed, 19 expected")
        let survivor = try #require(open.first)
        // A fourth request makes every connection busy: a new connection is closed at once.
        survivor.send(head)
        usleep(500_000)
        let late = try ClientSocket(port: server.port)
        #expect(late.closedByServer(within: 5), "a connection past the cap with all busy stays open")
        // Every busy request is answered in full.
        for b in busy + [survivor] {
            b.send("1\n2\n3\n4\n5\n")
            let r = b.reply()
            #expect(r.status == 200 && r.body.contains("\"count(*)\": 5"), "\(r)")
        }
        let (_, metrics) = try server.request("GET", "/metrics")
        let text = metrics["text"] as? String ?? ""
        #expect(text.contains("eddy_connections_refused_total 1"), "\(text)")
    }

    /// Bytes that keep coming after a connection's answer (the rest of a body the server refused
    /// with 401) do not make the connection busy: it is still the one closed for a new client.
    @Test func aClientThatGoesOnSendingAfterItsAnswerHoldsNoSlot() throws {
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [], arguments: ["--max-connections", "1"])
        let junk = try ClientSocket(port: server.port)
        junk.send(
            "POST /eval HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\na\n")
        let refused = junk.reply(timeout: 10)
        #expect(refused.status == 401, "\(refused)")
        junk.send(String(repeating: "1\n", count: 1000))
        usleep(100_000)
        let (status, health) = try server.request("GET", "/health")
        #expect(status == 200, "\(health)")
        #expect(junk.closedByServer(within: 5))
    }

    /// This machine's first IPv4 address that is not loopback, if any.
    static let outsideAddress: String? = {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var next = list
        while let entry = next {
            defer { next = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var host = [CChar](repeating: 0, count: 64)
            guard
                getnameinfo(sa, socklen_t(MemoryLayout<sockaddr_in>.size), &host, 64, nil, 0, NI_NUMERICHOST) == 0
            else { continue }
            let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !text.hasPrefix("127.") { return text }
        }
        return nil
    }()

    @Test(.enabled(if: outsideAddress != nil, "needs an IPv4 address besides loopback"))
    func aClientOffLoopbackHasACapOfItsOwn() throws {
        let outside = try #require(Self.outsideAddress)
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [],
            arguments: [
                "--hostname", "0.0.0.0", "--allowed-host", outside, "--max-connections", "50",
                "--max-connections-per-client", "3",
            ])
        #expect(server.logText.contains("max_connections_per_client=3"), "\(server.logText)")
        // Ten from the outside address: it keeps three, the longest idle go.
        let remote = try (0..<10).map { _ in try ClientSocket(port: server.port, address: outside) }
        usleep(500_000)
        let remoteOpen = remote.filter { !$0.closedByServer(within: 0.2) }.count
        #expect(remoteOpen == 3, "\(remoteOpen) of 10 connections from \(outside) still open, 3 expected")
        // Loopback is only under the total: ten more stay open.
        let local = try (0..<10).map { _ in try ClientSocket(port: server.port) }
        usleep(500_000)
        #expect(local.filter { $0.closedByServer(within: 0.2) }.isEmpty)
        let (status, health) = try server.request("GET", "/health")
        #expect(status == 200 && health["connections"] as? Int == 14, "\(health)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: prlimit), "needs prlimit"))
    func aCapTheDescriptorLimitCannotHoldIsRefusedAtStart() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.prlimit)
        p.arguments = [
            "--nofile=256", Eddy.binary, "serve", "--port", "0", "--workers", "1", "--max-concurrent", "1",
            "--plugin-dir", ScratchDirectory().path, "--max-connections", "5000",
        ]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 2, "\(text)")
        #expect(
            text.contains("--max-connections 5000 is more than the descriptor limit 256 (ulimit -n) allows")
                && text.contains("so at most 112"), "\(text)")
        let bad = try Eddy.run(["serve", "--max-connections", "0"])
        #expect(bad.status == 64 && bad.stderr.contains("--max-connections must be 1 or more"), "\(bad.stderr)")
    }
}
