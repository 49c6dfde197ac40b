import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A raw HTTP/1.1 exchange over a socket: headers exactly as given (Host, Origin …), and requests
/// left half-sent on purpose. The bearer token of the test server on `port` (``ServerTokens``) is
/// sent after the request line unless the request carries its own Authorization or `authorized`
/// is false.
package enum RawHTTP {
    /// Sends `request` and reads until the server closes or `timeout` passes.
    /// Returns the status (0 when the server closed without answering) and the body.
    package static func exchange(port: Int, _ request: String, timeout: Double = 10, authorized: Bool = true) throws
        -> (
            status: Int, body: String
        )
    {
        var request = request
        if authorized, let token = ServerTokens.token(port: port), !request.lowercased().contains("\r\nauthorization:"),
            let lineEnd = request.range(of: "\r\n")
        {
            request.insert(contentsOf: "Authorization: Bearer \(token)\r\n", at: lineEnd.upperBound)
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EddyTestError("socket failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw EddyTestError("connect failed") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var bytes = Array(request.utf8)
        _ = bytes.withUnsafeMutableBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += chunk[0..<n]
            // One response is enough (the connection may stay open).
            let text = String(decoding: response, as: UTF8.self)
            if let headEnd = text.range(of: "\r\n\r\n"),
                let lengthLine = text[..<headEnd.lowerBound].split(separator: "\r\n").first(where: {
                    $0.lowercased().hasPrefix("content-length:")
                }),
                let length = Int(lengthLine.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)),
                text.utf8.count - text[..<headEnd.upperBound].utf8.count >= length
            {
                break
            }
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = text.hasPrefix("HTTP/1.1 ") ? Int(text.dropFirst(9).prefix(3)) ?? 0 : 0
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, body)
    }

    package static func post(
        port: Int, path: String = "/eval", headers: [String: String] = [:], body: String, authorized: Bool = true
    ) throws -> (status: Int, body: String) {
        var h = ["Host": "127.0.0.1:\(port)", "Content-Type": "application/json", "Connection": "close"]
        for (k, v) in headers { h[k] = v }
        let head = h.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\r\n" }.joined()
        return try exchange(
            port: port, "POST \(path) HTTP/1.1\r\n\(head)Content-Length: \(body.utf8.count)\r\n\r\n\(body)",
            authorized: authorized)
    }
}
