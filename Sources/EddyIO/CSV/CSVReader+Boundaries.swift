import CEddyIO
@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Finding where a batch ends: whole records, newlines outside quotes.
extension CSVReader {
    /// The next whole records, up to `maxRecords` (a blank line counts as one here; the scan drops it)
    /// or about ``batchBytes``: the bytes up to a newline outside quotes, or to the end of the file.
    /// A quote that cannot open a quoted field (inside an unquoted one) ends the batch before its
    /// record, and that record then forms a batch up to its next newline, whose scan reports it: so a
    /// stray quote never makes the rest of the file look like one quoted field.
    /// - Throws: ``IOError`` for a record longer than `limits.maxRecordBytes`.
    func nextSlice(maxRecords: Int) throws -> CSVSlice? {
        var state = BoundaryScan()
        var scanned = 0
        var tooLongNext = false  // a record past the limit follows the whole records found
        var masks: [UInt64] = []
        let maxRecord = Swift.min(limits.maxRecordBytes, 1 << 30)
        scan: while true {
            if scanned == buffer.count {
                if state.records > 0 && (state.records >= maxRecords || state.boundary >= Self.batchBytes) { break }
                guard buffer.count - state.boundary <= maxRecord else {
                    // The whole records before it are a batch first, so that errors come in file
                    // order (a bad record before it is reported first); the next call throws.
                    if state.records > 0 {
                        tooLongNext = true
                        break
                    }
                    throw recordTooLong(line: line + state.newlinesAtBoundary)
                }
                if !readMore(expecting: maxRecords - state.records) { break }
            }
            let from = scanned
            let n = buffer.count
            masks.removeAll(keepingCapacity: true)
            masks.append(contentsOf: repeatElement(0, count: (n - from + 63) / 64))
            var stop = BoundaryScan.Stop.exhausted
            buffer.withUnsafeBytes { raw in
                guard let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
                masks.withUnsafeMutableBufferPointer { m in
                    guard let out = m.baseAddress else { return }
                    eddy_byte_masks(
                        base + from, n - from, BoundaryScan.newline, BoundaryScan.quote, BoundaryScan.quote, out)
                    stop = state.walk(base, from: from, masks: m, maxRecord: maxRecord, maxRecords: maxRecords)
                }
            }
            scanned = n
            if stop == .tooLong {
                if state.records > 0 {
                    tooLongNext = true
                    break scan
                }
                throw recordTooLong(line: line + state.newlinesAtBoundary)
            }
            if stop != .exhausted { break scan }
        }
        var boundary = state.boundary
        var records = state.records
        if state.stray >= 0 && records == 0 {
            boundary = try strayRecordEnd(from: state.stray, maxRecord: maxRecord)
            records = 1
        } else if state.stray < 0 && !tooLongNext && eof && scanned == buffer.count && boundary < buffer.count
            && (records < maxRecords && boundary < Self.batchBytes || records == 0)
        {
            // The last record of the file, without a newline (or with a quote left open).
            boundary = buffer.count
            records += 1
        }
        guard boundary > 0 else { return nil }
        return cutSlice(at: boundary, records: records, newlines: state.newlinesAtBoundary)
    }

    /// Where the record with a stray quote at `stray` ends, read alone: up to its next newline (or the
    /// end of the file).
    /// - Throws: ``IOError`` for a record longer than `maxRecord`.
    private func strayRecordEnd(from stray: Int, maxRecord: Int) throws -> Int {
        let newline: UInt8 = 0x0A
        var from = stray
        while true {
            let hit = buffer.withUnsafeBytes { raw -> Int? in
                guard let base = raw.baseAddress, from < raw.count else { return nil }
                guard let p = memchr(base + from, Int32(newline), raw.count - from) else { return nil }
                return base.distance(to: UnsafeRawPointer(p))
            }
            if let hit { return hit + 1 }
            guard buffer.count <= maxRecord else {
                throw recordTooLong(line: line)
            }
            from = buffer.count
            if !readMore(expecting: 1) { return buffer.count }
        }
    }

    /// The buffer's bytes before `boundary` as the next slice (`records` records over `newlines` lines);
    /// the rest stays in the buffer.
    private func cutSlice(at boundary: Int, records: Int, newlines: Int) -> CSVSlice {
        let tail = Array(buffer[boundary...])
        buffer.removeLast(buffer.count - boundary)
        let bytes = buffer
        buffer = tail
        let slice = CSVSlice(bytes: bytes, firstLine: line, records: records)
        line += newlines
        bytesPerRecord = Swift.max(1, bytes.count / Swift.max(1, records))
        return slice
    }
}

/// Where a scan for record boundaries stands, carried from one read of the buffer to the next.
private struct BoundaryScan {
    static var quote: UInt8 { UInt8(ascii: "\"") }
    static var comma: UInt8 { UInt8(ascii: ",") }
    static var newline: UInt8 { 0x0A }

    /// Why a walk stopped before the end of what was read.
    enum Stop { case exhausted, full, stray, tooLong }

    var inQuote = false
    var records = 0
    var boundary = 0  // the end of the last whole record
    var newlines = 0
    var newlinesAtBoundary = 0
    var stray = -1  // where a quote was found inside an unquoted field

    /// Walks the quotes and newlines that `masks` mark (a bit per byte from `from` of `base`), counting
    /// whole records, until `maxRecords` of them, a stray quote or a record longer than `maxRecord`.
    @inline(__always)
    mutating func walk(
        _ base: UnsafePointer<UInt8>, from: Int, masks m: UnsafeMutableBufferPointer<UInt64>, maxRecord: Int,
        maxRecords: Int
    ) -> Stop {
        for w in 0..<m.count {
            var bits = m[w]
            while bits != 0 {
                let p = from + w * 64 + bits.trailingZeroBitCount
                bits &= bits &- 1
                if base[p] == Self.quote {
                    if !inQuote && p != boundary {
                        let prev = base[p - 1]
                        if prev != Self.comma && prev != Self.newline && prev != Self.quote {
                            stray = p
                            return .stray
                        }
                    }
                    inQuote.toggle()
                } else {
                    newlines += 1
                    if !inQuote {
                        // The record's length without its line ending (LF or CRLF).
                        let length = p - boundary - (p > boundary && base[p - 1] == 0x0D ? 1 : 0)
                        if length > maxRecord {
                            // A record longer than the limit, though it fit in what was read.
                            return .tooLong
                        }
                        records += 1
                        boundary = p + 1
                        newlinesAtBoundary = newlines
                        if records >= maxRecords { return .full }
                    }
                }
            }
        }
        return .exhausted
    }
}
