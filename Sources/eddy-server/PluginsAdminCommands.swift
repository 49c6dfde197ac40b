import ArgumentParser
import EddyCommands
@_spi(Host) import EddyHost
import EddyIO
import EddyServer
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where a running `eddy serve` is, and the bearer token it wants.
struct ServerAddressOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The server: HOST:PORT (a loopback address unless it serves others).", valueName: "host:port"))
    var server = "127.0.0.1:8080"

    @Option(
        help: ArgumentHelp(
            "The file holding the server's bearer token (its log names it: token_file=…); default $EDDY_TOKEN_FILE.",
            valueName: "file"))
    var tokenFile: String?

    @Flag(help: "Print the server's answer as JSON.")
    var json = false

    func client() throws -> ServerClient {
        let file = tokenFile ?? ProcessInfo.processInfo.environment["EDDY_TOKEN_FILE"]
        let token = try file.map { try ServerOptions.readToken($0) }
        return try ServerClient(address: server, token: token)
    }

    /// Sends `POST path`, prints the answer (its `summary`, else the JSON), and fails unless it is 200.
    func post(_ path: String) throws {
        let (status, body) = try request("POST", path)
        if json {
            print(body)
        } else if status == 200 {
            // A promotion's or a rollback's summary, or a canary policy's note.
            let summary = (try? JSONDecoder().decode(CanaryDecisionReply.self, from: Data(body.utf8)))?.summary
            let note = (try? JSONDecoder().decode(CanaryPolicyReply.self, from: Data(body.utf8)))?.note
            print(escapedForDisplay(summary ?? note ?? body))
        }
        try check(status, body)
    }

    /// Sends `METHOD path`: the status and the body, or exit 1 with the reason when there is no answer.
    func request(_ method: String, _ path: String) throws -> (status: Int, body: String) {
        do {
            let c = try client()
            return method == "GET" ? try c.get(path) : try c.post(path)
        } catch let e as ServerClient.Failure {
            Stderr.write("eddy: \(e.description)\n")
            throw ExitCode(1)
        }
    }

    /// Fails (exit 1, the server's error on standard error) unless `status` is 200.
    func check(_ status: Int, _ body: String) throws {
        guard status == 200 else {
            if !json {
                let reply = try? JSONDecoder().decode(ErrorReply.self, from: Data(body.utf8))
                Stderr.write(
                    "eddy: the server answered \(status): "
                        + escapedForDisplay(reply?.error ?? String(body.prefix(500))) + "\n")
            }
            throw ExitCode(1)
        }
    }
}

/// A plugin name as a manifest may give it (so that it is safe in a URL path as it is).
func checkedPluginName(_ name: String) throws -> String {
    guard PluginHost.isValidPluginName(name) else {
        throw ValidationError("plugin name: \(PluginHost.pluginNameRule), found '\(escapedForDisplay(name))'")
    }
    return name
}

struct PluginsStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running server's plugin set: each file's state, the builds in canary and quarantined.",
        discussion: "Sends GET /plugins with the bearer token; --json prints its answer as it is.")

    @OptionGroup var address: ServerAddressOptions

    func run() throws {
        let (status, body) = try address.request("GET", "/plugins")
        if address.json {
            print(body)
            return try address.check(status, body)
        }
        try address.check(status, body)
        let report: PluginsReply
        do {
            report = try JSONDecoder().decode(PluginsReply.self, from: Data(body.utf8))
        } catch {
            Stderr.write(
                "eddy: the server's answer is not a plugin report: \(escapedForDisplay(String(body.prefix(500))))\n")
            throw ExitCode(1)
        }
        let text = escapedForDisplay
        print("server \(text(address.server)): plugin directory \(text(report.directory))")
        for row in report.files {
            print(
                "  \(text(PluginHost.baseName(row.file)))  \(text(row.status))  \(text(row.plugin)) \(text(row.version))"
                    + (row.reason.isEmpty ? "" : "  \(text(row.reason))"))
        }
        if !report.canaries.isEmpty { print("canaries (oldest first):") }
        for run in report.canaries { print("  \(text(run.summary))") }
        if !report.quarantined.isEmpty { print("quarantined:") }
        for q in report.quarantined { print("  \(text(q.plugin)) since \(text(q.time)): \(text(q.cause))") }
    }
}

struct PluginsPromoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Make a running server's build of plugin NAME in canary its serving build now.",
        discussion:
            "Sends POST /plugins/NAME/promote with the bearer token. Exits 1 when the plugin has no build in canary.")

    @Argument(help: "The plugin's name (as its manifest gives it).")
    var name: String

    @OptionGroup var address: ServerAddressOptions

    func validate() throws { _ = try checkedPluginName(name) }

    func run() throws { try address.post("/plugins/\(name)/promote") }
}

struct PluginsRollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract:
            "Roll back a running server's build of plugin NAME in canary: it is quarantined, the serving build stays.",
        discussion:
            "Sends POST /plugins/NAME/rollback with the bearer token. Exits 1 when the plugin has no build in canary.")

    @Argument(help: "The plugin's name (as its manifest gives it).")
    var name: String

    @OptionGroup var address: ServerAddressOptions

    func validate() throws { _ = try checkedPluginName(name) }

    func run() throws { try address.post("/plugins/\(name)/rollback") }
}

struct PluginsCanaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "canary",
        abstract: "Set how a running server rolls out the next builds of plugin NAME (overrides --canary for it).",
        discussion: "Sends POST /plugins/NAME/canary?fraction=F&requests=N with the bearer token. --fraction 0 turns "
            + "canaries off for the plugin: its next build replaces the serving one at once.")

    @Argument(help: "The plugin's name (as its manifest gives it).")
    var name: String

    @Option(help: ArgumentHelp("Share (0 to 1) of requests a new build serves first.", valueName: "fraction"))
    var fraction: Double

    @Option(
        help: ArgumentHelp(
            "Clean canary requests before promotion (default: the server's --canary-requests).", valueName: "n"))
    var requests: Int?

    @OptionGroup var address: ServerAddressOptions

    func validate() throws {
        _ = try checkedPluginName(name)
        guard fraction >= 0, fraction <= 1 else { throw ValidationError("--fraction must be from 0 to 1") }
        if let requests, requests < 1 { throw ValidationError("--requests must be 1 or more") }
    }

    func run() throws {
        try address.post(
            "/plugins/\(name)/canary?fraction=\(fraction)"
                + (requests.map { "&requests=\($0)" } ?? ""))
    }
}

/// A minimal HTTP/1.1 client for the admin requests: one `POST` with no body (or `GET`) per connection, the answer
/// read until the server closes (at most ``maxAnswerBytes``), within ``timeoutSeconds`` per read or write.
struct ServerClient {
    var host: String
    var port: String
    var token: String?
    static let maxAnswerBytes = 1 << 20
    static let timeoutSeconds = 30

    /// - Throws: a ValidationError for an address that is not `HOST:PORT` or `[V6]:PORT`.
    init(address: String, token: String?) throws {
        var rest = Substring(address)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":") else {
            throw ValidationError("--server: expected HOST:PORT, found '\(escapedForDisplay(address))'")
        }
        var h = rest[..<colon]
        let p = rest[rest.index(after: colon)...]
        if h.hasPrefix("[") && h.hasSuffix("]") { h = h.dropFirst().dropLast() }
        guard !h.isEmpty, let number = Int(p), (1...65_535).contains(number) else {
            throw ValidationError("--server: expected HOST:PORT, found '\(escapedForDisplay(address))'")
        }
        host = String(h)
        port = String(number)
        self.token = token
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    func post(_ path: String) throws -> (status: Int, body: String) { try exchange("POST", path) }

    func get(_ path: String) throws -> (status: Int, body: String) { try exchange("GET", path) }

    private func exchange(_ method: String, _ path: String) throws -> (status: Int, body: String) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let found = getaddrinfo(host, port, &hints, &list)
        guard found == 0, let first = list else {
            throw Failure(
                description: "cannot resolve \(escapedForDisplay(host)): \(String(cString: gai_strerror(found)))")
        }
        defer { freeaddrinfo(list) }
        var fd: Int32 = -1
        var lastError: Int32 = 0
        var at: UnsafeMutablePointer<addrinfo>? = first
        while let a = at, fd < 0 {
            let s = socket(
                a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), a.pointee.ai_protocol)
            if s >= 0 {
                var limit = timeval(tv_sec: Self.timeoutSeconds, tv_usec: 0)
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
                if connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 {
                    fd = s
                } else {
                    lastError = errno
                    close(s)
                }
            }
            at = a.pointee.ai_next
        }
        guard fd >= 0 else {
            throw Failure(
                description:
                    "cannot connect to \(escapedForDisplay(host)):\(port): \(String(cString: strerror(lastError)))")
        }
        defer { close(fd) }
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let head =
            "\(method) \(path) HTTP/1.1\r\nHost: \(authority)\r\n" + (method == "POST" ? "Content-Length: 0\r\n" : "")
            + "Connection: close\r\n"
            + (token.map { "Authorization: Bearer \($0)\r\n" } ?? "") + "\r\n"
        var bytes = Array(head.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return send(fd, base + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "sending the request: \(String(cString: strerror(errno)))") }
            sent += n
        }
        bytes = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count <= Self.maxAnswerBytes {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Failure(description: "reading the answer: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        guard bytes.count <= Self.maxAnswerBytes else {
            throw Failure(description: "the answer is larger than \(Self.maxAnswerBytes) bytes")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { throw Failure(description: "the answer has no HTTP head") }
        let status = text[..<end.lowerBound].split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
        guard let status else { throw Failure(description: "the answer has no HTTP status") }
        return (status, String(text[end.upperBound...]))
    }
}
