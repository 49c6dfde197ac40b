#if canImport(Glibc)
    import Glibc
#endif

/// The processors online (at least 1): the default number of threads and workers.
public func availableCores() -> Int { onlineCores }

/// Read once: glibc's `sysconf(_SC_NPROCESSORS_ONLN)` opens and parses /sys/devices/system/cpu/online
/// on every call, which a server asking per request paid for twice (two syscalls and a file).
private let onlineCores = Swift.max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

/// Bounds on what one input may make a reader hold, so that a hostile file (one endless line,
/// `/dev/zero`, a million-column header) is refused with a message instead of eating memory.
public struct ReadLimits: Sendable {
    /// Bytes in one CSV record or JSON Lines line.
    public var maxRecordBytes: Int
    /// Columns in a header or distinct keys in JSON Lines.
    public var maxColumns: Int

    public init(maxRecordBytes: Int = 64 << 20, maxColumns: Int = 100_000) {
        self.maxRecordBytes = maxRecordBytes
        self.maxColumns = maxColumns
    }
}

/// A descriptor this process owns, closed when the last reference to it goes: a file opened once and
/// read through (`eddy serve` opens a request's file when it checks the path, and reads only that).
package final class OpenedFile: Sendable {
    package let descriptor: Int32

    package init(_ descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }
}

/// Opens an input file for reading, with its size for progress reports.
enum InputFile {
    /// Opens `path` if it is a regular file or a FIFO (a pipe): a directory or a device is named as such.
    /// - Parameter descriptor: a file already open (by `eddy serve`, which must not open a checked path
    ///   a second time): a duplicate of it is read from the start instead, and `path` only names it.
    /// - Throws: ``IOError`` naming the file and the system's reason.
    static func open(_ path: String, descriptor: Int32? = nil) throws -> (file: UnsafeMutablePointer<FILE>, size: Int) {
        if let descriptor { return try open(descriptor: descriptor, path: path) }
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw IOError(file: path, line: 0, column: 0, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        try checkKind(st, path)
        guard let f = fopen(path, "rb") else {
            throw IOError(file: path, line: 0, column: 0, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        // What was opened, not what the path named a moment before.
        guard fstat(fileno(f), &st) == 0 else {
            fclose(f)
            throw IOError(file: path, line: 0, column: 0, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        do {
            try checkKind(st, path)
        } catch {
            fclose(f)
            throw error
        }
        return (f, (st.st_mode & S_IFMT) == S_IFREG ? Int(st.st_size) : 0)
    }

    private static func open(descriptor: Int32, path: String) throws -> (file: UnsafeMutablePointer<FILE>, size: Int) {
        func fail(_ reason: Int32) -> IOError {
            IOError(file: path, line: 0, column: 0, message: "cannot open: \(String(cString: strerror(reason)))")
        }
        // A duplicate shares the file offset with the original: read from the start whatever read it before.
        let own = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        guard own >= 0 else { throw fail(errno) }
        var st = stat()
        guard fstat(own, &st) == 0 else {
            let reason = errno
            close(own)
            throw fail(reason)
        }
        do {
            try checkKind(st, path)
        } catch {
            close(own)
            throw error
        }
        if (st.st_mode & S_IFMT) == S_IFREG { lseek(own, 0, SEEK_SET) }
        guard let f = fdopen(own, "rb") else {
            let reason = errno
            close(own)
            throw fail(reason)
        }
        return (f, (st.st_mode & S_IFMT) == S_IFREG ? Int(st.st_size) : 0)
    }

    /// Appends the next bytes of `file` to `buffer` and returns how many came (0 at the end). Reads
    /// grow with the buffer (at least 1 MiB), so that a record or line spanning many reads is
    /// rescanned a few times, not once per megabyte.
    static func append(from file: UnsafeMutablePointer<FILE>, to buffer: inout [UInt8]) -> Int {
        let chunk = Swift.max(1 << 20, buffer.count)
        let old = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: chunk))
        let n = buffer.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return fread(base + old, 1, chunk, file)
        }
        buffer.removeLast(chunk - Swift.max(n, 0))
        return Swift.max(n, 0)
    }

    private static func checkKind(_ st: stat, _ path: String) throws {
        let kind = st.st_mode & S_IFMT
        guard kind != S_IFREG && kind != S_IFIFO else { return }
        let what =
            switch kind {
            case S_IFDIR: "a directory"
            case S_IFCHR: "a character device"
            case S_IFBLK: "a block device"
            case S_IFSOCK: "a socket"
            default: "not a regular file"
            }
        throw IOError(file: path, line: 0, column: 0, message: "is \(what); expected a regular file or a pipe")
    }
}

/// Text that came from outside shown on one line and cut short: ``escapedForDisplay(_:)`` of its first
/// `limit` Unicode scalars, then an ellipsis when there were more. Cut by scalars, not characters: one
/// character can carry any number of combining marks.
public func shortForDisplay(_ text: String, limit: Int) -> String {
    let scalars = text.unicodeScalars
    guard let cut = scalars.index(scalars.startIndex, offsetBy: limit, limitedBy: scalars.endIndex),
        cut != scalars.endIndex
    else { return escapedForDisplay(text) }
    return escapedForDisplay(String(scalars[..<cut])) + "…"
}

/// Text that came from outside (a file name, a field) shown on one line: control characters escaped
/// (`\n`, `\u{1b}`), so that a name with a newline cannot forge a line of a report or a log.
public func escapedForDisplay(_ text: String) -> String {
    // Printable ASCII needs no escape (and no Unicode property lookups: this runs for every path a
    // plugin load reports).
    if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return text }
    var out = ""
    for u in text.unicodeScalars {
        switch u {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.properties.generalCategory == .format
                || u.properties.generalCategory == .lineSeparator || u.properties.generalCategory == .paragraphSeparator
            {
                out += "\\u{\(String(u.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}

/// What a path names, following links: for callers that must refuse anything but a plain file.
public enum FileKind: Sendable, Equatable {
    case regular, directory, other

    /// nil when the path cannot be examined.
    public static func of(_ path: String) -> FileKind? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return of(st)
    }

    /// What the file open at `descriptor` is; nil when it cannot be examined.
    public static func of(descriptor: Int32) -> FileKind? {
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { return nil }
        return of(st)
    }

    private static func of(_ st: stat) -> FileKind {
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        default: return .other
        }
    }
}

/// Reads a small secret file (at most 4 KiB) that only its owner may read.
/// - Throws: a message naming the file and what is wrong with it.
public func readPrivateFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
    guard fd >= 0 else { throw IOError(file: path, line: 0, column: 0, message: String(cString: strerror(errno))) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= 4096 else {
        throw IOError(file: path, line: 0, column: 0, message: "not a small regular file")
    }
    guard st.st_mode & 0o077 == 0 else {
        throw IOError(
            file: path, line: 0, column: 0,
            message: "readable by others (mode 0\(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
    }
    var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
    let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n == bytes.count else { throw IOError(file: path, line: 0, column: 0, message: "cannot read it") }
    return String(decoding: bytes, as: UTF8.self)
}

/// `path` with every link and `..` resolved (realpath), or nil if it does not resolve.
public func realPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}
