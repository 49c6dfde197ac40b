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
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), newline: UInt8 = 0x0A
        var scanned = 0
        var inQuote = false
        var records = 0
        var boundary = 0  // the end of the last whole record
        var newlines = 0
        var newlinesAtBoundary = 0
        var stray = -1  // where a quote was found inside an unquoted field
        var tooLongNext = false  // a record past the limit follows the whole records found
        var masks: [UInt64] = []
        let maxRecord = Swift.min(limits.maxRecordBytes, 1 << 30)
        scan: while true {
            if scanned == buffer.count {
                if records > 0 && (records >= maxRecords || boundary >= Self.batchBytes) { break }
                guard buffer.count - boundary <= maxRecord else {
                    // The whole records before it are a batch first, so that errors come in file
                    // order (a bad record before it is reported first); the next call throws.
                    if records > 0 {
                        tooLongNext = true
                        break
                    }
                    throw recordTooLong(line: line + newlinesAtBoundary)
                }
                if !readMore(expecting: maxRecords - records) { break }
            }
            let from = scanned
            let n = buffer.count
            masks.removeAll(keepingCapacity: true)
            masks.append(contentsOf: repeatElement(0, count: (n - from + 63) / 64))
            var stop = false
            var tooLong = false
            buffer.withUnsafeBytes { raw in
                guard let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
                masks.withUnsafeMutableBufferPointer { m in
                    guard let out = m.baseAddress else { return }
                    eddy_byte_masks(base + from, n - from, newline, quote, quote, out)
                    for w in 0..<m.count {
                        var bits = m[w]
                        while bits != 0 {
                            let p = from + w * 64 + bits.trailingZeroBitCount
                            bits &= bits &- 1
                            if base[p] == quote {
                                if !inQuote && p != boundary {
                                    let prev = base[p - 1]
                                    if prev != comma && prev != newline && prev != quote {
                                        stray = p
                                        stop = true
                                        return
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
                                        tooLong = true
                                        stop = true
                                        return
                                    }
                                    records += 1
                                    boundary = p + 1
                                    newlinesAtBoundary = newlines
                                    if records >= maxRecords {
                                        stop = true
                                        return
                                    }
                                }
                            }
                        }
                    }
                }
            }
            scanned = n
            if tooLong {
                if records > 0 {
                    tooLongNext = true
                    break scan
                }
                throw recordTooLong(line: line + newlinesAtBoundary)
            }
            if stop { break scan }
        }
        if stray >= 0 && records == 0 {
            boundary = try strayRecordEnd(from: stray, maxRecord: maxRecord)
            records = 1
        } else if stray < 0 && !tooLongNext && eof && scanned == buffer.count && boundary < buffer.count
            && (records < maxRecords && boundary < Self.batchBytes || records == 0)
        {
            // The last record of the file, without a newline (or with a quote left open).
            boundary = buffer.count
            records += 1
        }
        guard boundary > 0 else { return nil }
        return cutSlice(at: boundary, records: records, newlines: newlinesAtBoundary)
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
