@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// `a + b`, or `Int.max` when that overflows (for sizes summed from a file's claims).
public func saturatingAdd(_ a: Int, _ b: Int) -> Int {
    let (r, o) = a.addingReportingOverflow(b)
    return o ? (b < 0 ? Int.min : Int.max) : r
}

/// Reads `count` bytes at `offset` of `fd` into `into`, through short reads and EINTR.
/// - Returns: nil when all were read, else what went wrong, for a message naming the file.
func preadFully(_ fd: Int32, into: UnsafeMutableRawPointer, count: Int, offset: Int) -> String? {
    var done = 0
    while done < count {
        let n = pread(fd, into + done, count - done, off_t(offset + done))
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            return n < 0
                ? "cannot read: \(String(cString: strerror(errno)))"
                : "the file ended at byte \(offset + done) while being read (truncated meanwhile?)"
        }
        done += n
    }
    return nil
}
