import CEddyIO
@_spi(Host) import Eddy
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `count(*)` alone: the records left, counted on several threads without building batches.
extension CSVReader {
    /// The records left in a regular file, counted without building batches: the rest of the file is
    /// split into `threads` byte ranges at record boundaries and each is read with `pread` and counted
    /// (every record checked to have the header's field count, as a batch's scan checks it). Nil —
    /// and nothing consumed — when the input is not a regular file or has a quote after what was read,
    /// since a quoted newline makes a guessed boundary unsafe: then the batches count it.
    /// - Throws: ``IOError`` for the first record (in file order) with another field count or longer
    ///   than `--max-record-bytes`, as the batches word it.
    public func countRemaining(threads: Int) throws -> (records: Int, threads: Int)? {
        try countRemaining(threads: threads, minimumRangeBytes: 8 << 20)
    }

    /// ``countRemaining(threads:)`` with ranges of at least `minimumRangeBytes` (below 8 MiB a thread
    /// costs more than it saves; tests split small files).
    public func countRemaining(threads: Int, minimumRangeBytes: Int) throws -> (records: Int, threads: Int)? {
        let fd = fileno(file)
        var st = stat()
        guard fd >= 0, fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        let position = Int(ftello(file))
        let start = position - buffer.count
        let end = Int(st.st_size)
        guard position >= 0, start >= 0, start <= end else { return nil }
        let columns = schema.fields.count
        let maxRecord = Swift.min(limits.maxRecordBytes, 1 << 30)
        // Four ranges per thread, taken in turn: a thread that runs slower (a core shared with other work)
        // counts fewer of them (with one range each, the other thread waited for it: 1.2 of 2 cores busy).
        let parts = Swift.max(1, Swift.min(threads * 4, (end - start) / Swift.max(1, minimumRangeBytes)))
        let workers = Swift.max(1, Swift.min(threads, parts))
        let bufferBytes = 128 << 10
        struct Part {
            var count = 0
            var badOffset: UInt64 = 0
            var badFields = 0
            var error: Int32 = 0
        }
        let results = UncheckedBox(UnsafeMutableBufferPointer<Part>.allocate(capacity: parts))
        results.value.initialize(repeating: Part())
        defer { results.value.deallocate() }
        let span = end - start
        let next = Atomic<Int>(0)
        Parallel.perform(iterations: workers) { _ in
            eddy_engine_work_enter()
            defer { eddy_engine_work_leave() }
            let buf = UnsafeMutableRawPointer.allocate(byteCount: bufferBytes, alignment: 64)
            defer { buf.deallocate() }
            while true {
                let k = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard k < parts else { break }
                let from = start + span / parts * k
                let to = k == parts - 1 ? end : start + span / parts * (k + 1)
                var part = Part()
                let n = eddy_csv_count_file_range(
                    fd, UInt64(from), UInt64(to), UInt64(end), k == 0 ? 1 : 0, columns, maxRecord,
                    buf.assumingMemoryBound(to: UInt8.self), bufferBytes, &part.badOffset, &part.badFields)
                part.error = n == -4 ? errno : 0
                part.count = n
                results.value[k] = part
            }
        }
        var total = pending?.scan.rows ?? 0
        for part in results.value {
            switch part.count {
            case -2: return nil
            case -1:
                let line = try self.line(at: Int(part.badOffset), from: start, fd: fd)
                throw IOError(
                    file: path, line: line, column: Swift.min(part.badFields, columns) + 1,
                    message: "expected \(columns) fields, found \(part.badFields)")
            case -3: throw recordTooLong(line: try self.line(at: Int(part.badOffset), from: start, fd: fd))
            case ..<0:
                throw IOError(
                    file: path, line: 0, column: 0,
                    message: "cannot read: \(String(cString: strerror(part.error)))")
            default: total += part.count
            }
        }
        pending = nil
        buffer = []
        eof = true
        bytesRead = fileSize
        return (total, workers)
    }

    /// The input line of byte `offset`, counting newlines from `start` (whose line is `line`).
    func line(at offset: Int, from start: Int, fd: Int32) throws -> Int {
        var newlines = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var at = start
        while at < offset {
            let n = chunk.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base, Swift.min(raw.count, offset - at), off_t(at))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            newlines += chunk.withUnsafeBufferPointer { eddy_count_byte($0.baseAddress, n, 0x0A) }
            at += n
        }
        return line + newlines
    }
}
