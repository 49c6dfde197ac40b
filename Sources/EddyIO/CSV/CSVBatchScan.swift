import CEddyIO
@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// A CSV slice split into fields: one raw column per wanted column (nil for the others).
struct CSVBatchScan {
    var rows = 0
    var columns: [RawColumn?]
    var firstLine: Int

    /// The header's names: the slice's one record, unescaped.
    static func header(_ slice: CSVSlice, path: String) throws -> [String] {
        try withScanner(slice, path: path, columns: 64) { scanner in
            guard let count = try scanner.record() else { return [] }
            return (0..<count).map { i in
                let f = scanner.field(i)
                let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scanner.text)[f.start..<f.end])
                guard f.escaped else { return String(decoding: bytes, as: UTF8.self) }
                var out: [UInt8] = []
                CSVBatchScan.unescape(bytes, into: &out)
                return String(decoding: out, as: UTF8.self)
            }
        }
    }

    private static func withScanner<R>(
        _ slice: CSVSlice, path: String, columns: Int, _ body: (inout CSVRecordScanner) throws -> R
    ) throws -> R {
        var masks = [UInt64](repeating: 0, count: (slice.bytes.count + 63) / 64)
        var slots = [CSVField](
            repeating: CSVField(start: 0, end: 0, quoted: false, escaped: false), count: Swift.max(1, columns + 1))
        return try slice.bytes.withUnsafeBufferPointer { text in
            try masks.withUnsafeMutableBufferPointer { m in
                if let base = text.baseAddress, let out = m.baseAddress {
                    eddy_byte_masks(base, text.count, UInt8(ascii: ","), UInt8(ascii: "\""), 0x0A, out)
                }
                return try slots.withUnsafeMutableBufferPointer { room in
                    var scanner = CSVRecordScanner(
                        text: text, masks: UnsafeBufferPointer(m), slots: room, path: path,
                        firstLine: slice.firstLine)
                    return try body(&scanner)
                }
            }
        }
    }

    /// Splits `slice` into records of `columns` fields, keeping the wanted columns' fields.
    /// - Throws: ``IOError`` for a malformed record (see ``CSVRecordScanner/record()``) or one whose
    ///   field count differs from the header's.
    init(_ slice: CSVSlice, columns: Int, wanted: [Bool], path: String) throws {
        firstLine = slice.firstLine
        let slots = (0..<columns).filter { $0 < wanted.count && wanted[$0] }
        if slots.isEmpty, let counted = try Self.countOnly(slice, columns: columns, path: path) {
            // No column wanted (count(*)) and no quote in the batch: only the records' shape is checked.
            rows = counted
            self.columns = [RawColumn?](repeating: nil, count: columns)
            return
        }
        let capacity = slice.records + 1
        var starts = [Int](repeating: 0, count: slots.count * capacity)
        var ends = [Int](repeating: 0, count: slots.count * capacity)
        var nulls = [Bool](repeating: false, count: slots.count * capacity)
        var rowStarts = [Int](repeating: 0, count: capacity)
        if let plain = try Self.splitPlain(
            slice, columns: columns, slots: slots, capacity: capacity, starts: &starts, ends: &ends, nulls: &nulls,
            rowStarts: &rowStarts, path: path)
        {
            // No quote in the batch: split in C, 64 bytes at a time, keeping only the wanted fields.
            rows = plain
            self.columns = Self.rawColumns(
                text: slice.bytes, slots: slots, columns: columns, capacity: capacity, rows: plain, starts: starts,
                ends: ends, nulls: nulls, rowStarts: rowStarts, firstLine: slice.firstLine)
            return
        }
        var escapes: [UInt8] = []
        let textBytes = slice.bytes.count
        var rows = 0
        try Self.withScanner(slice, path: path, columns: columns) { scanner in
            while true {
                let recordStart = scanner.position
                guard let count = try scanner.record() else { break }
                // A blank line (one empty unquoted field) is not a record.
                if count == 1 {
                    let f = scanner.field(0)
                    if f.start == f.end && !f.quoted { continue }
                }
                guard count == columns else {
                    throw IOError(
                        file: path, line: scanner.line(at: recordStart), column: Swift.min(count, columns) + 1,
                        message: "expected \(columns) fields, found \(count)")
                }
                guard rows < capacity else {
                    throw IOError(
                        file: path, line: scanner.line(at: recordStart), column: 1,
                        message: "internal error: more records than the boundary scan counted")
                }
                rowStarts[rows] = recordStart
                for (s, k) in slots.enumerated() {
                    let f = scanner.slots[k]
                    let at = s * capacity + rows
                    if f.escaped {
                        let bytes = UnsafeRawBufferPointer(
                            rebasing: UnsafeRawBufferPointer(scanner.text)[f.start..<f.end])
                        starts[at] = textBytes + escapes.count
                        Self.appendUnescaped(bytes, to: &escapes)
                        ends[at] = textBytes + escapes.count
                    } else {
                        starts[at] = f.start
                        ends[at] = f.end
                        nulls[at] = f.start == f.end && !f.quoted
                    }
                }
                rows += 1
            }
        }
        self.rows = rows
        // Appending to the slice's bytes copies them (the slice still holds them): only when needed.
        var text = slice.bytes
        if !escapes.isEmpty { text.append(contentsOf: escapes) }
        self.columns = Self.rawColumns(
            text: text, slots: slots, columns: columns, capacity: capacity, rows: rows, starts: starts, ends: ends,
            nulls: nulls, rowStarts: rowStarts, firstLine: slice.firstLine)
    }

    /// The wanted columns (`slots`: column numbers) as raw columns of `rows` fields each over `text`,
    /// from the field ranges laid out `capacity` to a column; nil for the other columns.
    private static func rawColumns(
        text: [UInt8], slots: [Int], columns: Int, capacity: Int, rows: Int, starts: [Int], ends: [Int],
        nulls: [Bool], rowStarts: [Int], firstLine: Int
    ) -> [RawColumn?] {
        var out = [RawColumn?](repeating: nil, count: columns)
        let lineStarts = Array(rowStarts[0..<rows])
        for (s, k) in slots.enumerated() {
            let range = (s * capacity)..<(s * capacity + rows)
            out[k] = RawColumn(
                bytes: text, starts: Array(starts[range]), ends: Array(ends[range]), nulls: Array(nulls[range]),
                lines: .counted(firstLine: firstLine, rowStarts: lineStarts))
        }
        return out
    }

    /// Splits a quote-free slice in C (see `eddy_csv_split_plain`), filling the wanted columns' field
    /// ranges; the row count, or nil when the slice has a quote (the scanner handles those).
    /// - Throws: ``IOError`` for a record with another field count, as the scanner words it.
    static func splitPlain(
        _ slice: CSVSlice, columns: Int, slots: [Int], capacity: Int, starts: inout [Int], ends: inout [Int],
        nulls: inout [Bool], rowStarts: inout [Int], path: String
    ) throws -> Int? {
        var slotOf = [Int32](repeating: -1, count: columns)
        for (s, k) in slots.enumerated() where k < columns { slotOf[k] = Int32(s) }
        var badOffset = 0
        var badFields = 0
        let rows = slice.bytes.withUnsafeBufferPointer { text -> Int in
            guard let base = text.baseAddress else { return 0 }
            return starts.withUnsafeMutableBufferPointer { st in
                ends.withUnsafeMutableBufferPointer { en in
                    nulls.withUnsafeMutableBytes { nu in
                        rowStarts.withUnsafeMutableBufferPointer { rs in
                            st.withMemoryRebound(to: Int64.self) { st64 in
                                en.withMemoryRebound(to: Int64.self) { en64 in
                                    rs.withMemoryRebound(to: Int64.self) { rs64 in
                                        // Slot s's rows start at s * capacity of each array.
                                        let nb = nu.baseAddress?.assumingMemoryBound(to: UInt8.self)
                                        let sp = slots.indices.map { st64.baseAddress?.advanced(by: $0 * capacity) }
                                        let ep = slots.indices.map { en64.baseAddress?.advanced(by: $0 * capacity) }
                                        let np = slots.indices.map { nb?.advanced(by: $0 * capacity) }
                                        return eddy_csv_split_plain(
                                            base, text.count, columns, slotOf, capacity, sp, ep, np,
                                            rs64.baseAddress, &badOffset, &badFields)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        switch rows {
        case -2, -5: return nil
        case -1:
            let line = slice.bytes.withUnsafeBufferPointer {
                slice.firstLine + eddy_count_byte($0.baseAddress, Swift.min(badOffset, $0.count), 0x0A)
            }
            throw IOError(
                file: path, line: line, column: Swift.min(badFields, columns) + 1,
                message: "expected \(columns) fields, found \(badFields)")
        default: return rows < 0 ? nil : rows
        }
    }

    /// The number of records of a quote-free slice, each checked to have `columns` fields (in C, by
    /// counting commas per line); nil when the slice has a quote (the full scan handles those).
    /// - Throws: ``IOError`` for a record with another field count, as the full scan words it.
    static func countOnly(_ slice: CSVSlice, columns: Int, path: String) throws -> Int? {
        try slice.bytes.withUnsafeBufferPointer { text -> Int? in
            guard let base = text.baseAddress else { return 0 }
            var badOffset = 0
            var badFields = 0
            let records = eddy_csv_count_records(base, text.count, columns, &badOffset, &badFields)
            guard records != -2 else { return nil }
            guard records < 0 else { return records }
            let line = slice.firstLine + eddy_count_byte(base, Swift.min(badOffset, text.count), 0x0A)
            throw IOError(
                file: path, line: line, column: Swift.min(badFields, columns) + 1,
                message: "expected \(columns) fields, found \(badFields)")
        }
    }

    /// Types and builds the wanted columns (the others are all-null placeholders of their type).
    func batch(schema: Schema, wanted: [Bool], path: String, declared: Set<String>) throws -> RecordBatch {
        let columns = try schema.fields.enumerated().map { k, field -> any ArrayNode in
            guard k < wanted.count, wanted[k], k < self.columns.count, let raw = self.columns[k] else {
                return ConstantArray(.null(field.dtype), count: rows)
            }
            return try raw.build(
                field.dtype, name: field.name, file: path, columnIndex: k, declared: declared.contains(field.name))
        }
        return RecordBatch(schema: schema, columns: columns, count: rows, firstLine: firstLine)
    }

    /// The bytes of a quoted field with each `""` read as one quote.
    static func unescape(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        appendUnescaped(bytes, to: &out)
    }

    static func appendUnescaped(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var i = 0
        while i < bytes.count {
            out.append(bytes[i])
            i += bytes[i] == UInt8(ascii: "\"") ? 2 : 1
        }
    }
}
