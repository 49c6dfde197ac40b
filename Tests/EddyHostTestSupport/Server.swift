import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A real `eddy serve` process on a free loopback port.
///
/// The server makes its own bearer token (as it does for every user): the helper reads the file its
/// log names (`token_file=PATH`) and sends `Authorization: Bearer TOKEN` with every request, in
/// ``request(_:_:json:body:contentType:authorized:)`` and in ``RawHTTP`` (which looks the token up by
/// port in ``ServerTokens``). With `--no-token` among the arguments there is no token to send.
package final class Server: @unchecked Sendable {
    // Mutable state is guarded by `lock`; the process handle is set once in init.
    package let process = Process()
    package let pluginDir: String
    private let lock = NSLock()
    private var log = ""
    package private(set) var port = 0
    /// The bearer token the server made (nil with `--no-token`), and the file it keeps it in.
    package private(set) var token: String?
    package private(set) var tokenFile: String?

    /// - Parameters:
    ///   - dataDirs: what requests may read by path (the tests' scratch files live in the temporary directory).
    ///   - launcher: a program that runs `eddy` in its own process (`prlimit --nofile=256`, say), or none.
    package init(
        pluginDir: String, rescan: String = "0.5", dataDirs: [String] = [NSTemporaryDirectory()],
        arguments: [String] = [], environment: [String: String] = [:], launcher: [String] = []
    ) throws {
        self.pluginDir = pluginDir
        process.executableURL = URL(fileURLWithPath: launcher.first ?? Eddy.binary)
        process.environment = Eddy.childEnvironment.merging(environment) { _, new in new }
        process.arguments =
            (launcher.isEmpty ? [] : launcher.dropFirst() + [Eddy.binary])
            + ["serve", "--port", "0", "--plugin-dir", pluginDir, "--rescan", rescan]
            + dataDirs.flatMap { ["--data-dir", $0] } + arguments
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        // Read on a thread of its own with blocking reads, never through `readabilityHandler`: on Linux
        // that is a libdispatch read source, and when the server exits (EPOLLHUP on this pipe) the
        // dispatch manager thread and the source's own teardown race over the source's muxnote, a use
        // after free (swift-corelibs-libdispatch#949, swift-corelibs-foundation#3276). That is the likely
        // end of the `swift test` process that died in CI of SIGSEGV in _dispatch_event_loop_drain.
        let reader = err.fileHandleForReading
        let drain = Thread { [weak self] in
            var chunk = [UInt8](repeating: 0, count: 16 << 10)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(reader.fileDescriptor, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }  // end of file: the server and whatever inherited the pipe are gone
                // Still read when the helper is gone, so that a server never blocks on a full pipe.
                guard let self else { continue }
                self.lock.lock()
                self.log += String(decoding: chunk[0..<n], as: UTF8.self)
                self.lock.unlock()
            }
        }
        drain.start()
        try process.run()
        for _ in 0..<200 {
            let text = logText
            // "… listening on HOST:PORT" (127.0.0.1, or the --hostname given).
            if let r = text.range(of: "and listening on "),
                let colon = text[r.upperBound...].prefix(while: { $0 != "\n" }).lastIndex(of: ":")
            {
                let digits = text[text.index(after: colon)...].prefix { $0.isNumber }
                port = Int(digits) ?? 0
                // The server's own line (what it serves with: auth, connection caps) follows Hummingbird's.
                if port > 0 && text.contains("eddy serve listening") {
                    if !arguments.contains("--no-token") {
                        guard let file = Self.tokenFile(inLog: text) else {
                            throw EddyTestError("no token_file in the server's log:\n\(text)")
                        }
                        tokenFile = file
                        token = try String(contentsOfFile: file, encoding: .utf8)
                            .trimmingCharacters(in: .whitespacesAndNewlines)
                    }
                    ServerTokens.set(token, port: port)
                    return
                }
            }
            usleep(50_000)
        }
        throw EddyTestError("server did not start:\n\(logText)")
    }

    package var logText: String {
        lock.lock()
        defer { lock.unlock() }
        return log
    }

    deinit { stop() }

    package func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if port > 0 { ServerTokens.set(nil, port: port) }
    }

    /// The path of `token_file=PATH` in a server's log (paths in tests have no spaces).
    package static func tokenFile(inLog text: String) -> String? {
        guard let r = text.range(of: "token_file=") else { return nil }
        return String(text[r.upperBound...].prefix { !$0.isWhitespace })
    }

    /// `Authorization: Bearer TOKEN` for this server (empty with `--no-token`).
    package var authorization: [String: String] { token.map { ["Authorization": "Bearer " + $0] } ?? [:] }

    /// Sends a request and returns the status and the body's bytes (for a typed decoding).
    /// - Parameter authorized: send the server's bearer token (false: send none).
    package func requestBytes(
        _ method: String, _ path: String, json: [String: Any]? = nil, body: Data? = nil,
        contentType: String? = nil, authorized: Bool = true
    ) throws -> (Int, Data) {
        var req = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")))
        req.httpMethod = method
        req.timeoutInterval = 120
        if authorized, let token { req.setValue("Bearer " + token, forHTTPHeaderField: "Authorization") }
        if let json {
            req.httpBody = try JSONSerialization.data(withJSONObject: json)
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        } else if let body {
            req.httpBody = body
            req.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (Int, Data)?
        nonisolated(unsafe) var failure: (any Error)?
        URLSession.shared.dataTask(with: req) { data, response, error in
            if let error { failure = error }
            result = ((response as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data())
            done.signal()
        }.resume()
        done.wait()
        if let failure { throw failure }
        return try #require(result)
    }

    /// Sends a request and returns the status and the JSON body (or the raw text under "text").
    /// - Parameter authorized: send the server's bearer token (false: send none).
    package func request(
        _ method: String, _ path: String, json: [String: Any]? = nil, body: Data? = nil,
        contentType: String? = nil, authorized: Bool = true
    ) throws -> (Int, [String: Any]) {
        let (status, data) = try requestBytes(
            method, path, json: json, body: body, contentType: contentType, authorized: authorized)
        let object =
            (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            ?? ["text": String(decoding: data, as: UTF8.self)]
        return (status, object)
    }

    package func eval(
        _ csv: String, where predicate: String? = nil, select: String? = nil, trace: Bool = false,
        compression: String? = nil
    ) throws -> (Int, [String: Any]) {
        var body: [String: Any] = ["path": csv, "trace": trace]
        if let predicate { body["where"] = predicate }
        if let select { body["select"] = select }
        if let compression { body["compression"] = compression }
        return try request("POST", "/eval", json: body)
    }

    /// Polls `/plugins` until `condition` holds for the named file's row (nil row: absent).
    package func waitForPlugin(_ file: String, timeout: Double = 10, _ condition: ([String: Any]?) -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let (_, report) = try request("GET", "/plugins")
            let rows = report["files"] as? [[String: Any]] ?? []
            if condition(rows.first { ($0["file"] as? String)?.hasSuffix("/" + file) == true }) { return }
            usleep(20_000)
        }
        throw EddyTestError("timed out waiting for \(file) in /plugins; log:\n\(logText)")
    }
}

/// The bearer token of each running test server, by port: ``RawHTTP`` sends it unless told not to.
package enum ServerTokens {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var tokens: [Int: String] = [:]  // guarded by `lock`

    package static func set(_ token: String?, port: Int) {
        lock.lock()
        defer { lock.unlock() }
        tokens[port] = token
    }

    package static func token(port: Int) -> String? {
        lock.lock()
        defer { lock.unlock() }
        return tokens[port]
    }
}

package func traceOwners(_ response: [String: Any]) -> Set<String> {
    Set((response["trace"] as? [[String: Any]] ?? []).compactMap { $0["owner"] as? String })
}
