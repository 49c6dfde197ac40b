import CEddyIO
@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Whole records of a CSV file, the unit one batch is scanned from.
struct CSVSlice {
    var bytes: [UInt8]
    /// The input line of the first byte.
    var firstLine: Int
    /// Records counted by the boundary scan (blank lines included): an upper bound on the rows.
    var records: Int
}

/// One field of a record: a byte range of the slice, whether it was quoted, and whether it holds
/// `""` pairs to read as one quote.
struct CSVField {
    var start: Int
    var end: Int
    var quoted: Bool
    var escaped: Bool
}

/// Splits the records of a slice into fields, driven by bit masks of its commas, quotes and newlines.
struct CSVRecordScanner {
    let text: UnsafeBufferPointer<UInt8>
    let masks: UnsafeBufferPointer<UInt64>
    let path: String
    let firstLine: Int
    private var word = 0
    private var bits: UInt64
    /// Where the next record starts.
    private(set) var position = 0
    /// Room for the fields of the record being scanned; a wider record's other fields go to `overflow`.
    let slots: UnsafeMutableBufferPointer<CSVField>
    private(set) var overflow: [CSVField] = []

    init(
        text: UnsafeBufferPointer<UInt8>, masks: UnsafeBufferPointer<UInt64>,
        slots: UnsafeMutableBufferPointer<CSVField>, path: String, firstLine: Int
    ) {
        self.text = text
        self.masks = masks
        self.slots = slots
        self.path = path
        self.firstLine = firstLine
        bits = masks.first ?? 0
    }

    /// Field `i` of the last record scanned.
    func field(_ i: Int) -> CSVField { i < slots.count ? slots[i] : overflow[i - slots.count] }

    /// The next comma, quote or newline, in order.
    @inline(__always)
    private mutating func next() -> Int? {
        while bits == 0 {
            word += 1
            if word >= masks.count { return nil }
            bits = masks[word]
        }
        let p = word &* 64 &+ bits.trailingZeroBitCount
        bits &= bits &- 1
        return p
    }

    /// The input line of byte `p` (for messages: counts newlines).
    func line(at p: Int) -> Int {
        guard let base = text.baseAddress else { return firstLine }
        return firstLine + eddy_count_byte(base, Swift.min(Swift.max(p, 0), text.count), 0x0A)
    }

    @inline(__always)
    private mutating func store(_ f: CSVField, _ count: inout Int) {
        if count < slots.count {
            slots[count] = f
        } else {
            overflow.append(f)
        }
        count += 1
    }

    /// Scans the record at `position`; returns its field count (read them with `field(_:)`), or nil
    /// at the end of the slice.
    /// - Throws: ``IOError`` for a quote inside an unquoted field, a quoted field not closed before the
    ///   end of the file, or text after a closing quote.
    mutating func record() throws -> Int? {
        let n = text.count
        guard position < n else { return nil }
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ",")
        let recordStart = position
        var count = 0
        var fieldStart = position
        if !overflow.isEmpty { overflow.removeAll(keepingCapacity: true) }
        while true {
            guard let d = next() else {
                // The slice ends without a newline: the file's last record.
                var end = n
                if end > fieldStart && text[end - 1] == 0x0D { end -= 1 }
                store(CSVField(start: fieldStart, end: end, quoted: false, escaped: false), &count)
                position = n
                return count
            }
            let c = text[d]
            if c == comma {
                store(CSVField(start: fieldStart, end: d, quoted: false, escaped: false), &count)
                fieldStart = d + 1
                continue
            }
            if c == 0x0A {
                var end = d
                if end > fieldStart && text[end - 1] == 0x0D { end -= 1 }
                store(CSVField(start: fieldStart, end: end, quoted: false, escaped: false), &count)
                position = d + 1
                return count
            }
            guard d == fieldStart else {
                throw IOError(
                    file: path, line: line(at: d), column: count + 1,
                    message: "unexpected quote inside an unquoted field")
            }
            var escaped = false
            var close = -1
            while let e = next() {
                guard text[e] == quote else { continue }
                if e + 1 < n && text[e + 1] == quote {
                    escaped = true
                    _ = next()
                    continue
                }
                close = e
                break
            }
            guard close >= 0 else { throw unclosedQuote(at: d, field: count + 1, recordStart: recordStart) }
            store(CSVField(start: d + 1, end: close, quoted: true, escaped: escaped), &count)
            var after = close + 1
            if after + 1 < n && text[after] == 0x0D && text[after + 1] == 0x0A { after += 1 }
            // A CR ending the file after a closing quote ends the record, as after an unquoted field.
            if after + 1 == n && text[after] == 0x0D { after += 1 }
            if after >= n {
                position = n
                return count
            }
            let c2 = text[after]
            if c2 == comma {
                _ = next()
                fieldStart = after + 1
                continue
            }
            if c2 == 0x0A {
                _ = next()
                position = after + 1
                return count
            }
            throw textAfterQuote(at: after, field: count)
        }
    }

    /// A quoted field opened at `d` and not closed before the end of the file.
    func unclosedQuote(at d: Int, field: Int, recordStart: Int) -> IOError {
        IOError(
            file: path, line: line(at: d), column: field,
            message:
                "quoted field is not closed before the end of the file (record starts on line \(line(at: recordStart)))"
        )
    }

    /// Text at `after` that follows a closing quote but is neither a comma nor a line ending.
    func textAfterQuote(at after: Int, field: Int) -> IOError {
        IOError(
            file: path, line: line(at: after), column: field,
            message:
                "expected ',' or end of line after a closing quote, found '\(escapedForDisplay(String(Character(Unicode.Scalar(text[after])))))'"
        )
    }
}
