#if canImport(Glibc)
    import Glibc
#endif

/// Carries a child's standard error into this process's (a worker's into the server's log) line by
/// line, each line prefixed with the child (`[worker 4242] `) and escaped (control characters, bytes
/// that are not UTF-8), so that plugin code in a worker cannot write a line that reads as the
/// server's own — a forged "plugin promoted" or a cleared screen. Lines are cut at 4 KiB; after
/// 16 MiB from one child the rest is dropped, said once. A detached thread per child reads until
/// the child (and anything holding its pipe) is gone.
enum StandardErrorRelay {
    static let maxLine = 4096
    static let maxBytes = 16 << 20

    final class Job: @unchecked Sendable {
        let fd: Int32
        let prefix: [UInt8]
        init(fd: Int32, prefix: String) {
            self.fd = fd
            self.prefix = Array(prefix.utf8)
        }
    }

    /// Starts relaying `fd` (the read end of the child's standard error; taken over and closed at its
    /// end). False when no thread could be started (then `fd` is closed and the child's output lost).
    @discardableResult
    static func start(fd: Int32, prefix: String) -> Bool {
        let job = Job(fd: fd, prefix: prefix)
        guard DetachedThread.start(stackSize: 256 << 10, { StandardErrorRelay.run(job) }) else {
            close(fd)
            return false
        }
        return true
    }

    static func run(_ job: Job) {
        defer { close(job.fd) }
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        var line: [UInt8] = []
        var total = 0
        var cut = false
        while true {
            let n = chunk.withUnsafeMutableBytes { read(job.fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            total += n
            if total > maxBytes {
                if total - n <= maxBytes { emit(job.prefix, Array("(further output of this process dropped)".utf8)) }
                continue
            }
            for k in 0..<n {
                let byte = chunk[k]
                if byte == UInt8(ascii: "\n") {
                    emit(job.prefix, line, cut: cut)
                    line.removeAll(keepingCapacity: true)
                    cut = false
                } else if line.count < maxLine {
                    line.append(byte)
                } else {
                    cut = true
                }
            }
        }
        if !line.isEmpty { emit(job.prefix, line, cut: cut) }
    }

    /// Writes one prefixed, escaped line to standard error with one write (whole lines do not interleave
    /// with other writers' below the pipe's atomic size).
    static func emit(_ prefix: [UInt8], _ line: [UInt8], cut: Bool = false) {
        var out = prefix
        out.reserveCapacity(prefix.count + line.count + 16)
        let text = String(decoding: line, as: UTF8.self)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x5C: out += Array("\\\\".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0..<0x20, 0x7F, 0x80..<0xA0, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                out += Array("\\u{\(String(scalar.value, radix: 16))}".utf8)
            default: out += Array(String(scalar).utf8)
            }
        }
        if cut { out += Array(" …(line cut)".utf8) }
        out.append(UInt8(ascii: "\n"))
        var done = 0
        while done < out.count {
            let w = out.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return write(STDERR_FILENO, base + done, raw.count - done)
            }
            if w < 0 && errno == EINTR { continue }
            guard w > 0 else { return }
            done += w
        }
    }
}
