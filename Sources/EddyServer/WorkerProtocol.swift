import CEddyHost
import EddyIO
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The framed protocol between `eddy serve` (the supervisor) and its `eddy worker` processes, over a
/// Unix stream socket: every message is a 4-byte little-endian length and that many bytes.
///
/// Request: a ``WorkerRequest`` in its binary encoding; an evaluation's file travels with its first
/// byte as an open descriptor (SCM_RIGHTS), never as a path to open again. Reply: a ``WorkerReply``: the
/// request's `id` (8 bytes), a 2-byte HTTP status, what a shadow check needs when the request asked for
/// it, then the response body (JSON) as it goes to the client — all little-endian.
struct WorkerRequest: Sendable {
    enum Operation: UInt8, Sendable { case eval, kernels }
    /// The evaluation's part in a shadow check (see ShadowCheck.swift).
    enum Check: UInt8, Sendable {
        /// An ordinary evaluation.
        case none
        /// A sampled request: the reply also says which plugin builds' code took part, and the result's digest.
        case report
        /// The check itself: evaluated without any kernel or compressor hook (decode-then-compute); the
        /// reply carries the result's digest.
        case reference
        /// A difference's confirmation: evaluated with the engine's built-in kernels and rules only (no
        /// plugin kernel, rule or hook); the reply carries the result's digest. Built-in kernels may round
        /// differently from decode-then-compute (a float sum over runs multiplies): a difference they
        /// share with the answer is not the plugin's.
        case confirm
        /// A bisection step: evaluated with the built-in kernels and rules and those of one plugin of the
        /// set (``WorkerRequest/alone``: its kernels, rules and compressor hooks; the others' off), so that
        /// a difference is charged only to a plugin that makes it on its own.
        case alone
    }
    /// A verified private copy of a plugin the worker must have loaded (and nothing else).
    struct Plugin: Sendable, Equatable {
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
    /// The supervisor's snapshot generation for this plugin set: replies carry it, so that every answer
    /// of one server (and its /health) counts plugin changes the same way, whichever worker ran it
    /// and however that worker came by its plugins.
    var generation = 0
    var check = Check.none
    /// The plugin whose code alone takes part, by name (with ``Check/alone``; empty otherwise).
    var alone = ""
    /// Set when decoded from a request whose job's file came as a descriptor with the frame.
    private(set) var expectsFile = false

    // A small binary encoding (length-prefixed fields): on every request, JSON (Codable or
    // JSONSerialization) costs a measurable share of a small request's time.
    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u64(id)
        w.u8(op.rawValue)
        w.u64(UInt64(plugins.count))
        for p in plugins {
            w.string(p.name); w.string(p.version); w.string(p.copy); w.string(p.hash)
        }
        w.u64(UInt64(max(0, generation)))
        w.u8(check.rawValue)
        if check == .alone { w.string(alone) }
        if let job {
            w.u8(1)
            w.string(job.path); w.string(job.inputFormat); w.string(job.format)
            w.optional(job.where); w.optional(job.select)
            w.u8(job.trace ? 1 : 0); w.u8(job.uploaded ? 1 : 0)
            for v in [
                job.maxResultBytes, job.expressionMaxLength, job.expressionMaxDepth, job.expressionMaxTerms,
                job.threads,
            ] {
                w.u64(UInt64(max(0, v)))
            }
            w.string(job.compression)
            w.u8(job.file != nil ? 1 : 0)
        } else {
            w.u8(0)
        }
        return w.bytes
    }

    init(
        id: UInt64, op: Operation, plugins: [Plugin], job: EvalRequest.Job?, generation: Int = 0, check: Check = .none,
        alone: String = ""
    ) {
        self.id = id
        self.op = op
        self.plugins = plugins
        self.job = job
        self.generation = generation
        self.check = check
        self.alone = alone
    }

    /// - Throws: ``ByteReader/Malformed`` for bytes that are not a request.
    init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        id = try r.u64()
        guard let op = Operation(rawValue: try r.u8()) else { throw ByteReader.Malformed() }
        self.op = op
        let count = try r.u64()
        guard count <= 100_000 else { throw ByteReader.Malformed() }
        plugins = try (0..<Int(count)).map { _ in
            Plugin(name: try r.string(), version: try r.string(), copy: try r.string(), hash: try r.string())
        }
        generation = Int(clamping: try r.u64())
        guard let check = Check(rawValue: try r.u8()) else { throw ByteReader.Malformed() }
        self.check = check
        if check == .alone { alone = try r.string() }
        if try r.u8() == 1 {
            let path = try r.string(), inputFormat = try r.string(), format = try r.string()
            let whereText = try r.optional(), select = try r.optional()
            let trace = try r.u8() == 1, uploaded = try r.u8() == 1
            let limits = try (0..<5).map { _ in Int(clamping: try r.u64()) }
            let compression = try r.string()
            expectsFile = try r.u8() == 1
            job = EvalRequest.Job(
                path: path, inputFormat: inputFormat, format: format, where: whereText, select: select,
                trace: trace, uploaded: uploaded, maxResultBytes: limits[0],
                expressionMaxLength: limits[1], expressionMaxDepth: limits[2], expressionMaxTerms: limits[3],
                threads: limits[4], compression: compression)
        } else {
            job = nil
        }
    }
}

/// A worker's reply: `id` (8 bytes), `status` (2 bytes), a byte saying whether ``evidence`` follows (and
/// then its fields), then the body. Read with checked parsing: the bytes come from a process that ran
/// plugin code.
struct WorkerReply {
    var id: UInt64
    var status: Int
    var evidence: ShadowEvidence?
    var body: [UInt8]

    /// At most this many plugin builds are named in one reply (a plugin set is far smaller).
    static let maxOwners = 256
    /// The longest `name@version` accepted.
    static let maxOwnerBytes = 1_024

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u64(id)
        w.u8(UInt8(truncatingIfNeeded: status))
        w.u8(UInt8(truncatingIfNeeded: status >> 8))
        if let evidence {
            w.u8(1)
            w.u64(UInt64(evidence.owners.count))
            for owner in evidence.owners { w.string(owner) }
            let d = evidence.digest
            for v in [d.lines, d.bytes, d.sumA, d.sumB] { w.u64(v) }
        } else {
            w.u8(0)
        }
        w.bytes += body
        return w.bytes
    }

    init(id: UInt64, status: Int, evidence: ShadowEvidence?, body: [UInt8]) {
        self.id = id
        self.status = status
        self.evidence = evidence
        self.body = body
    }

    /// - Throws: ``ByteReader/Malformed`` for bytes that are not a reply.
    init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        id = try r.u64()
        status = Int(try r.u8()) | Int(try r.u8()) << 8
        switch try r.u8() {
        case 0:
            evidence = nil
        case 1:
            let count = try r.u64()
            guard count <= UInt64(Self.maxOwners) else { throw ByteReader.Malformed() }
            let owners = try (0..<Int(count)).map { _ in try r.string(maxBytes: Self.maxOwnerBytes) }
            let lines = try r.u64(), bytes = try r.u64(), a = try r.u64(), b = try r.u64()
            evidence = ShadowEvidence(
                owners: owners, digest: ResultDigest(lines: lines, bytes: bytes, sumA: a, sumB: b))
        default:
            throw ByteReader.Malformed()
        }
        body = Array(bytes[r.at...])
    }
}

struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u64(UInt64(utf8.count))
        bytes += utf8
    }
    mutating func optional(_ s: String?) {
        if let s {
            u8(1)
            string(s)
        } else {
            u8(0)
        }
    }
}

struct ByteReader {
    struct Malformed: Error {}
    let bytes: [UInt8]
    var at = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u8() throws -> UInt8 {
        guard at < bytes.count else { throw Malformed() }
        defer { at += 1 }
        return bytes[at]
    }

    mutating func u64() throws -> UInt64 {
        guard bytes.count - at >= 8 else { throw Malformed() }
        defer { at += 8 }
        return (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
    }

    mutating func string() throws -> String {
        let n = try u64()
        guard n <= UInt64(bytes.count - at) else { throw Malformed() }
        defer { at += Int(n) }
        return String(decoding: bytes[at..<(at + Int(n))], as: UTF8.self)
    }

    mutating func optional() throws -> String? { try u8() == 1 ? try string() : nil }

    /// A string of at most `maxBytes` bytes.
    mutating func string(maxBytes: Int) throws -> String {
        let start = at
        let n = try u64()
        guard n <= UInt64(maxBytes) else {
            at = start
            throw Malformed()
        }
        at = start
        return try string()
    }
}

enum Frames {
    /// Largest message accepted (a result is bounded by --max-result-bytes well below this).
    static let maxBytes = 1 << 30

    struct Closed: Error {}

    /// Writes one frame; `descriptor` (when not negative) goes with its first byte as SCM_RIGHTS. On a
    /// non-blocking socket (the supervisor's: an event loop reads it) a full buffer is waited for, at
    /// most ``writeWaitSeconds`` in all.
    static func write(_ fd: Int32, _ payload: [UInt8], descriptor: Int32 = -1) throws {
        let n = UInt32(payload.count)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(4 + payload.count)
        bytes += [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)]
        bytes += payload
        var done = 0
        var waited = 0
        while done < bytes.count {
            let w = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                if done == 0 && descriptor >= 0 {
                    return eddy_send_with_descriptor(fd, base, raw.count, descriptor)
                }
                return send(fd, base + done, raw.count - done, Int32(MSG_NOSIGNAL))
            }
            if w < 0 && errno == EINTR { continue }
            if w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                var writable = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                guard waited < writeWaitSeconds * 10 else { throw Closed() }
                waited += 1
                _ = poll(&writable, 1, 100)
                continue
            }
            guard w > 0 else { throw Closed() }
            done += w
        }
    }

    /// How long a write waits for room in the socket: a worker reads a request whole as soon as it
    /// comes (it has answered the last one), so a full buffer for this long is a worker that stopped.
    static let writeWaitSeconds = 30

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

    /// Reads one frame and the descriptor that came with its first byte, if any (owned by the caller).
    ///
    /// The supervisor sends a request in one `sendmsg` and no other until it has the reply, so a request
    /// arrives whole in the first `recvmsg` (reading the first byte, the rest of the length and the
    /// payload apart took three calls per request); a larger one is read on until complete. Bytes past
    /// the frame are out of protocol: the read fails, and the worker ends.
    static func readWithDescriptor(_ fd: Int32) throws -> (frame: [UInt8], descriptor: OpenedFile?) {
        let capacity = 1 << 16
        var first = [UInt8](unsafeUninitializedCapacity: capacity) { _, count in count = capacity }
        var received: Int32 = -1
        var n = 0
        repeat {
            n = first.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return eddy_receive_with_descriptor(fd, base, raw.count, &received)
            }
        } while n < 0 && errno == EINTR
        let descriptor = received >= 0 ? OpenedFile(received) : nil
        guard n > 0 else { throw Closed() }
        first.removeLast(capacity - n)
        if n < 4 { first += try readExactly(fd, 4 - n) }
        let count = Int(first[0]) | Int(first[1]) << 8 | Int(first[2]) << 16 | Int(first[3]) << 24
        guard count <= maxBytes, first.count - 4 <= count else { throw Closed() }
        first.removeFirst(4)
        if first.count < count { first += try readExactly(fd, count - first.count) }
        return (first, descriptor)
    }

    static func read(_ fd: Int32) throws -> [UInt8] {
        let h = try readExactly(fd, 4)
        let n = Int(h[0]) | Int(h[1]) << 8 | Int(h[2]) << 16 | Int(h[3]) << 24
        guard n <= maxBytes else { throw Closed() }
        return try readExactly(fd, n)
    }
}

extension WorkerProcess {
    /// The plugin set this worker process last made loaded, whole (see ``sync(_:host:)``): a request
    /// naming the same set — every request until the set changes — finds it loaded without a look at
    /// the host.
    static let synced = SyncedPluginSet()
}

/// A plugin set a worker made loaded; nil while a change is under way or after one failed.
final class SyncedPluginSet: Sendable {
    private let current = Mutex<[WorkerRequest.Plugin]?>(nil)

    func holds(_ plugins: [WorkerRequest.Plugin]) -> Bool { current.withLock { $0 == plugins } }
    func set(_ plugins: [WorkerRequest.Plugin]?) { current.withLock { $0 = plugins } }
}
