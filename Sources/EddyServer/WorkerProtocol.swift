#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The framed protocol between `eddy serve` (the supervisor) and its `eddy worker` processes, over a
/// Unix stream socket: every message is a 4-byte little-endian length and that many bytes.
///
/// Request: JSON ``WorkerRequest``. Reply: the request's `id` (8 bytes), a 2-byte HTTP status, then
/// the response body (JSON) as it goes to the client — all little-endian.
struct WorkerRequest: Codable, Sendable {
    enum Operation: String, Codable, Sendable { case eval, kernels }
    /// A verified private copy of a plugin the worker must have loaded (and nothing else).
    struct Plugin: Codable, Sendable, Equatable {
        var name: String
        var version: String
        var copy: String
        var hash: String
    }
    /// Echoed by the reply: a reply to anything else is a protocol violation.
    var id: UInt64
    var op: Operation
    var plugins: [Plugin]
    var job: EvalRequest.Job?
}

enum Frames {
    /// Largest message accepted (a result is bounded by --max-result-bytes well below this).
    static let maxBytes = 1 << 30

    struct Closed: Error {}

    static func write(_ fd: Int32, _ payload: [UInt8]) throws {
        let n = UInt32(payload.count)
        var bytes = [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)] + payload
        var done = 0
        while done < bytes.count {
            let w = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return send(fd, base + done, raw.count - done, Int32(MSG_NOSIGNAL))
            }
            if w < 0 && errno == EINTR { continue }
            guard w > 0 else { throw Closed() }
            done += w
        }
    }

    /// Reads exactly `count` bytes; throws ``Closed`` at end of stream.
    static func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let r = out.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return recv(fd, base + done, raw.count - done, 0)
            }
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { throw Closed() }
            done += r
        }
        return out
    }

    /// Reads one frame in pieces as they arrive, so that the supervisor never blocks on a worker
    /// that sent half a frame, and never takes more than `limit` bytes. Bytes past the frame are
    /// reported: the worker sends exactly one reply per request.
    struct Reader {
        enum Step { case more, done([UInt8]), closed, tooLarge, trailing }
        let limit: Int
        private var buffer: [UInt8] = []
        private var chunk = [UInt8](repeating: 0, count: 1 << 16)
        private var expected = -1

        init(limit: Int) { self.limit = limit }

        /// Receives what is there (call when the socket is readable).
        mutating func receive(from fd: Int32) -> Step {
            let n = chunk.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return recv(fd, base, raw.count, Int32(MSG_DONTWAIT))
            }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { return .more }
            guard n > 0 else { return .closed }
            buffer += chunk[0..<n]
            if expected < 0 {
                guard buffer.count >= 4 else { return .more }
                expected = Int(buffer[0]) | Int(buffer[1]) << 8 | Int(buffer[2]) << 16 | Int(buffer[3]) << 24
                guard expected <= limit else { return .tooLarge }
            }
            if buffer.count > 4 + expected { return .trailing }
            return buffer.count == 4 + expected ? .done(Array(buffer[4...])) : .more
        }
    }

    static func read(_ fd: Int32) throws -> [UInt8] {
        let h = try readExactly(fd, 4)
        let n = Int(h[0]) | Int(h[1]) << 8 | Int(h[2]) << 16 | Int(h[3]) << 24
        guard n <= maxBytes else { throw Closed() }
        return try readExactly(fd, n)
    }
}
