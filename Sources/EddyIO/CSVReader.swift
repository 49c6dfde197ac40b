@_spi(Host) public import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Reads a CSV file (RFC 4180: header row, quoted fields with embedded commas, quotes and newlines;
/// an empty unquoted field is null) in batches, so that files larger than memory stream through.
///
/// Types are inferred from the first rows (integers, floats, bools, else utf8) unless overridden.
public final class CSVReader: TableReader {
    public let path: String
    public private(set) var schema = Schema([])
    public let batchRows: Int
    private let file: UnsafeMutablePointer<FILE>
    private var buffer: [UInt8] = []
    private(set) var position = 0
    private var eof = false
    private var line = 1
    private var pending: (columns: [RawColumn], rows: Int)?
    private var pendingFirstLine = 1
    /// Bytes consumed so far, for progress reports.
    public private(set) var bytesRead = 0
    public let fileSize: Int
    public let limits: ReadLimits
    /// Columns whose type `--schema` gave (not inferred), for messages.
    private var declared: Set<String> = []
    public var projection: Set<Int>?

    /// Opens `path`, reads the header and infers the schema from the first batch.
    /// - Parameters:
    ///   - overrides: column types that replace the inferred ones.
    /// - Throws: ``IOError`` for a missing file, an empty file, a bad header, or a malformed first batch.
    public init(
        path: String, overrides: [String: DType] = [:], batchRows: Int = 65_536,
        limits: ReadLimits = ReadLimits()
    ) throws {
        self.path = path
        self.batchRows = Swift.max(1, batchRows)
        self.limits = limits
        (file, fileSize) = try InputFile.open(path)
        // From here on the object is fully initialised: deinit closes the file if init throws.
        var headerFields: [FieldRange] = []
        guard try parseRecord(into: &headerFields) else {
            throw IOError(file: path, line: 1, column: 1, message: "empty file: expected a header row")
        }
        guard headerFields.count <= limits.maxColumns else {
            throw IOError(
                file: path, line: 1, column: 1,
                message: "the header has \(headerFields.count) columns, more than the limit of \(limits.maxColumns)")
        }
        // Header names are unescaped like any field ("we""ird" is we"ird).
        var scratch: [UInt8] = []
        let header: [String] = buffer.withUnsafeBytes { buf in
            headerFields.map { f in
                let bytes = UnsafeRawBufferPointer(rebasing: buf[f.start..<f.end])
                guard f.escapedQuotes else { return String(decoding: bytes, as: UTF8.self) }
                Self.unescape(bytes, into: &scratch)
                return String(decoding: scratch, as: UTF8.self)
            }
        }
        commitRecord()
        var names: [String] = []
        var seen: Set<String> = []
        for (k, field) in header.enumerated() {
            // A byte-order mark before the first name is not part of it.
            let unmarked = k == 0 && field.hasPrefix("\u{FEFF}") ? String(field.dropFirst()) : field
            let name = unmarked.isEmpty ? "column_\(k + 1)" : unmarked
            guard seen.insert(name).inserted else {
                throw IOError(
                    file: path, line: 1, column: k + 1,
                    message: "duplicate column name '\(escapedForDisplay(name))' in the header")
            }
            names.append(name)
        }
        for key in overrides.keys where !seen.contains(key) {
            let shown =
                names.prefix(20).map(escapedForDisplay).joined(separator: ", ") + (names.count > 20 ? ", …" : "")
            throw IOError(
                file: path, line: 0, column: 0,
                message:
                    "--schema names column '\(escapedForDisplay(key))', which the header does not have (columns: \(shown))"
            )
        }
        // Infer from the first batch, which is kept and returned first.
        let first = try Self.readRaw(self, columns: names.count, wanted: [Bool](repeating: true, count: names.count))
        pending = first
        var fields: [StructField] = []
        for (k, name) in names.enumerated() {
            if let t = overrides[name] {
                fields.append(StructField(name, t))
                continue
            }
            var kind = InferredKind.null
            if let col = first?.columns[k] {
                for i in 0..<Swift.min(col.count, 10_000) where !col.nulls[i] {
                    kind = Swift.max(kind, col.withField(i, FieldParse.kind))
                    if kind == .utf8 { break }
                }
            }
            fields.append(StructField(name, kind.dtype))
        }
        schema = Schema(fields)
        declared = Set(overrides.keys)
    }

    deinit { fclose(file) }

    /// The next batch of canonical columns, or nil at the end of the file.
    /// - Throws: ``IOError`` naming the line and column of a malformed record or value.
    public func next() throws -> RecordBatch? {
        try nextDeferred()?()
    }

    public func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)? {
        let wanted = self.wanted
        let firstLine: Int
        let raw: (columns: [RawColumn], rows: Int)?
        if let p = pending {
            raw = p
            firstLine = 2
            pending = nil
        } else {
            firstLine = line
            raw = try Self.readRaw(self, columns: schema.fields.count, wanted: wanted)
        }
        guard let raw, raw.rows > 0 else { return nil }
        let (schema, path, declared) = (self.schema, self.path, self.declared)
        let batch = UncheckedBox(raw)
        return {
            let raw = batch.value
            let columns = try raw.columns.enumerated().map { k, col -> any ArrayNode in
                guard wanted[k] else { return ConstantArray(.null(schema.fields[k].dtype), count: raw.rows) }
                return try col.build(
                    schema.fields[k].dtype, name: schema.fields[k].name, file: path, columnIndex: k,
                    declared: declared.contains(schema.fields[k].name))
            }
            return RecordBatch(schema: schema, columns: columns, count: raw.rows, firstLine: firstLine)
        }
    }

    /// Whether each schema column is wanted (the projection as flags).
    private var wanted: [Bool] {
        let n = schema.fields.count
        guard let projection else { return [Bool](repeating: true, count: n) }
        return (0..<n).map { projection.contains($0) }
    }

    /// The next batch's fields, copied for the wanted columns only (the others' boundaries are found
    /// and their bytes skipped), and the number of records.
    private static func readRaw(_ r: CSVReader, columns: Int, wanted: [Bool]) throws
        -> (columns: [RawColumn], rows: Int)?
    {
        var raw = [RawColumn](repeating: RawColumn(), count: columns)
        var rows = 0
        var fields: [FieldRange] = []
        fields.reserveCapacity(columns + 1)
        var scratch: [UInt8] = []
        var batchBytes = 0
        // A batch also ends at 1 GiB of field bytes: column offsets are 32-bit.
        while rows < r.batchRows && batchBytes < 1 << 30 {
            let recordLine = r.line
            guard try r.parseRecord(into: &fields) else { break }
            batchBytes += r.recordEnd - r.position
            // A blank line (one empty unquoted field) is not a record.
            if fields.count == 1 && fields[0].start == fields[0].end && !fields[0].quoted {
                r.commitRecord()
                continue
            }
            guard fields.count == columns else {
                throw IOError(
                    file: r.path, line: recordLine, column: Swift.min(fields.count, columns) + 1,
                    message: "expected \(columns) fields, found \(fields.count)")
            }
            r.buffer.withUnsafeBytes { buf in
                for k in 0..<columns where wanted[k] {
                    let f = fields[k]
                    let bytes = UnsafeRawBufferPointer(rebasing: buf[f.start..<f.end])
                    if f.escapedQuotes {
                        unescape(bytes, into: &scratch)
                        scratch.withUnsafeBytes { raw[k].append($0, null: false, line: recordLine) }
                    } else {
                        raw[k].append(bytes, null: bytes.isEmpty && !f.quoted, line: recordLine)
                    }
                }
            }
            r.commitRecord()
            rows += 1
        }
        return rows == 0 ? nil : (raw, rows)
    }

    /// The bytes of a quoted field with each `""` read as one quote.
    static func unescape(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        var i = 0
        while i < bytes.count {
            out.append(bytes[i])
            i += bytes[i] == UInt8(ascii: "\"") ? 2 : 1
        }
    }

    /// A field of the record being parsed, as a byte range of the buffer.
    struct FieldRange {
        var start: Int
        var end: Int
        var quoted: Bool
        var escapedQuotes: Bool
    }

    /// Where the record being parsed ends (set by `parseRecord`, consumed by `commitRecord`).
    private(set) var recordEnd = 0
    private var recordNewlines = 0

    private func commitRecord() {
        position = recordEnd
        line += recordNewlines
    }

    /// Reads more of the file, keeping the unconsumed bytes; false at end of file.
    private func refill() -> Bool {
        if eof { return false }
        if position > 0 {
            buffer.removeFirst(position)
            position = 0
        }
        let n = InputFile.append(from: file, to: &buffer)
        if n == 0 {
            eof = true
            return false
        }
        bytesRead += n
        return true
    }

    /// Parses the record at `position` into byte ranges, reading more of the file when the record
    /// runs past the buffer. False at end of file. Does not consume it: see `commitRecord`.
    private func parseRecord(into fields: inout [FieldRange]) throws -> Bool {
        while true {
            if position >= buffer.count && !refill() { return false }
            if let ok = try scanRecord(into: &fields) { return ok }
            // The record runs past the buffer: read more and parse it again from its start.
            guard buffer.count - position <= limits.maxRecordBytes else {
                throw IOError(
                    file: path, line: line, column: 1,
                    message: "record is longer than \(limits.maxRecordBytes) bytes (--max-record-bytes); "
                        + "is this a CSV file?")
            }
            if !refill() {
                // End of file: the record ends here.
                if let ok = try scanRecord(into: &fields, atEOF: true) { return ok }
                return false
            }
        }
    }

    /// Scans one record; nil when the buffer ends before the record does (and `atEOF` is false).
    private func scanRecord(into fields: inout [FieldRange], atEOF: Bool = false) throws -> Bool? {
        fields.removeAll(keepingCapacity: true)
        let startLine = line
        var newlines = 0
        let result: Bool? = try buffer.withUnsafeBytes { buf -> Bool? in
            let n = buf.count
            var i = position
            var column = 1
            while true {
                if i < n && buf[i] == UInt8(ascii: "\"") {
                    let quoteLine = startLine + newlines
                    var j = i + 1
                    var escaped = false
                    var closed = false
                    while j < n {
                        let c = buf[j]
                        if c == UInt8(ascii: "\"") {
                            if j + 1 < n && buf[j + 1] == UInt8(ascii: "\"") {
                                escaped = true
                                j += 2
                                continue
                            }
                            if j + 1 >= n && !atEOF { return nil }  // might be the first of a "" pair
                            closed = true
                            break
                        }
                        if c == 0x0A { newlines += 1 }
                        j += 1
                    }
                    if !closed {
                        if !atEOF { return nil }
                        throw IOError(
                            file: path, line: quoteLine, column: column,
                            message:
                                "quoted field is not closed before the end of the file (record starts on line \(startLine))"
                        )
                    }
                    fields.append(FieldRange(start: i + 1, end: j, quoted: true, escapedQuotes: escaped))
                    i = j + 1
                    if i < n && buf[i] == 0x0D {
                        // CRLF after a closing quote; the LF may still be in the next read.
                        if i + 1 >= n && !atEOF { return nil }
                        if i + 1 < n && buf[i + 1] == 0x0A { i += 1 }
                    }
                    if i >= n {
                        if !atEOF { return nil }
                        recordEnd = i
                        recordNewlines = newlines
                        return true
                    }
                    let next = buf[i]
                    if next == UInt8(ascii: ",") {
                        i += 1
                        column += 1
                        continue
                    }
                    if next == 0x0A {
                        recordEnd = i + 1
                        recordNewlines = newlines + 1
                        return true
                    }
                    throw IOError(
                        file: path, line: startLine + newlines, column: column,
                        message:
                            "expected ',' or end of line after a closing quote, found '\(escapedForDisplay(String(Character(Unicode.Scalar(next)))))'"
                    )
                }
                // Unquoted field: up to the next comma or newline.
                let start = i
                while i < n {
                    let c = buf[i]
                    if c == UInt8(ascii: ",") || c == 0x0A { break }
                    if c == UInt8(ascii: "\"") {
                        throw IOError(
                            file: path, line: startLine + newlines, column: column,
                            message: "unexpected quote inside an unquoted field")
                    }
                    i += 1
                }
                if i >= n && !atEOF { return nil }
                var end = i
                if i < n && buf[i] == 0x0A && end > start && buf[end - 1] == 0x0D { end -= 1 }
                if i >= n && end > start && buf[end - 1] == 0x0D { end -= 1 }
                fields.append(FieldRange(start: start, end: end, quoted: false, escapedQuotes: false))
                if i >= n {
                    recordEnd = i
                    recordNewlines = newlines
                    return true
                }
                if buf[i] == 0x0A {
                    recordEnd = i + 1
                    recordNewlines = newlines + 1
                    return true
                }
                i += 1
                column += 1
            }
        }
        return result
    }
}

/// A source of record batches.
public protocol TableReader: AnyObject {
    /// The schema indices of the columns batches must carry, or nil for all of them. The others
    /// are not typed, built or copied (a CSV reader still finds their boundaries); a batch holds an
    /// all-null placeholder of the column's type in their place. Set before the first `next()`.
    var projection: Set<Int>? { get set }
    var schema: Schema { get }
    var path: String { get }
    var bytesRead: Int { get }
    var fileSize: Int { get }
    func next() throws -> RecordBatch?
    /// The next batch in two steps: the call reads (in file order, on the caller's thread); the returned
    /// function types and builds the batch's columns and may run on another thread, while the next batch
    /// is read. Nil at the end of the input.
    func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)?
}

extension TableReader {
    /// Reads and builds on the caller's thread (readers that cannot split the two).
    public func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)? {
        guard let batch = try next() else { return nil }
        return { batch }
    }
}

/// A value handed to other threads that only read it (or that become its only user).
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
