#if canImport(Glibc)
import Glibc
#endif
public import Eddy

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
    private var position = 0
    private var eof = false
    private var line = 1
    private var pending: [RawColumn]?
    private var pendingFirstLine = 1
    /// Bytes consumed so far, for progress reports.
    public private(set) var bytesRead = 0
    public let fileSize: Int

    /// Opens `path`, reads the header and infers the schema from the first batch.
    /// - Parameters:
    ///   - overrides: column types that replace the inferred ones.
    /// - Throws: ``IOError`` for a missing file, an empty file, a bad header, or a malformed first batch.
    public init(path: String, overrides: [String: DType] = [:], batchRows: Int = 65_536) throws {
        self.path = path
        self.batchRows = batchRows
        guard let f = fopen(path, "rb") else {
            throw IOError(file: path, line: 0, column: 0, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        file = f
        var st = stat()
        fileSize = stat(path, &st) == 0 ? Int(st.st_size) : 0
        // From here on the object is fully initialised: deinit closes the file if init throws.
        guard let header = try Self.nextRecord(self) else {
            throw IOError(file: path, line: 1, column: 1, message: "empty file: expected a header row")
        }
        var names: [String] = []
        for (k, field) in header.enumerated() {
            var name = String(decoding: field.bytes, as: UTF8.self)
            if name.isEmpty { name = "column_\(k + 1)" }
            if names.contains(name) {
                throw IOError(file: path, line: 1, column: k + 1, message: "duplicate column name '\(name)' in the header")
            }
            names.append(name)
        }
        for key in overrides.keys where !names.contains(key) {
            throw IOError(file: path, line: 0, column: 0,
                          message: "--schema names column '\(key)', which the header does not have (columns: \(names.joined(separator: ", ")))")
        }
        // Infer from the first batch, which is kept and returned first.
        let first = try Self.readRaw(self, columns: names.count)
        pending = first
        var fields: [StructField] = []
        for (k, name) in names.enumerated() {
            if let t = overrides[name] {
                fields.append(StructField(name, t))
                continue
            }
            var kind = InferredKind.null
            if let col = first?[k] {
                for i in 0..<Swift.min(col.count, 10_000) where !col.nulls[i] {
                    kind = Swift.max(kind, col.withField(i, FieldParse.kind))
                    if kind == .utf8 { break }
                }
            }
            fields.append(StructField(name, kind.dtype))
        }
        schema = Schema(fields)
    }

    deinit { fclose(file) }

    /// The next batch of canonical columns, or nil at the end of the file.
    /// - Throws: ``IOError`` naming the line and column of a malformed record or value.
    public func next() throws -> RecordBatch? {
        let firstLine: Int
        let raw: [RawColumn]?
        if let p = pending {
            raw = p
            firstLine = 2
            pending = nil
        } else {
            firstLine = line
            raw = try Self.readRaw(self, columns: schema.fields.count)
        }
        guard let raw, let rows = raw.first?.count, rows > 0 else { return nil }
        let columns = try raw.enumerated().map { k, col in
            try col.build(schema.fields[k].dtype, name: schema.fields[k].name, file: path, columnIndex: k)
        }
        return RecordBatch(schema: schema, columns: columns, count: rows, firstLine: firstLine)
    }

    private static func readRaw(_ r: CSVReader, columns: Int) throws -> [RawColumn]? {
        var raw = [RawColumn](repeating: RawColumn(), count: columns)
        var rows = 0
        while rows < r.batchRows {
            let recordLine = r.line
            guard let record = try nextRecord(r) else { break }
            // A blank line at the very end (or anywhere) is not a record.
            if record.count == 1 && record[0].bytes.isEmpty && !record[0].quoted { continue }
            guard record.count == columns else {
                throw IOError(file: r.path, line: recordLine, column: Swift.min(record.count, columns) + 1,
                              message: "expected \(columns) fields, found \(record.count)")
            }
            for k in 0..<columns {
                let f = record[k]
                raw[k].append(f.bytes, null: f.bytes.isEmpty && !f.quoted, line: recordLine)
            }
            rows += 1
        }
        return rows == 0 ? nil : raw
    }

    struct Field {
        var bytes: [UInt8] = []
        var quoted = false
    }

    /// Ensures at least one unread byte is buffered; false at end of file.
    private func fill() -> Bool {
        if position < buffer.count { return true }
        if eof { return false }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if n <= 0 {
            eof = true
            return false
        }
        buffer = Array(chunk[0..<n])
        position = 0
        bytesRead += n
        return true
    }

    /// Parses one record, or returns nil at end of file.
    private static func nextRecord(_ r: CSVReader) throws -> [Field]? {
        guard r.fill() else { return nil }
        var fields: [Field] = []
        var field = Field()
        var column = 1
        let startLine = r.line
        while true {
            guard r.fill() else {
                fields.append(field)
                return fields
            }
            let c = r.buffer[r.position]
            r.position += 1
            switch c {
            case UInt8(ascii: ","):
                fields.append(field)
                field = Field()
                column += 1
            case UInt8(ascii: "\n"):
                r.line += 1
                if field.bytes.last == UInt8(ascii: "\r") && !field.quoted { field.bytes.removeLast() }
                fields.append(field)
                return fields
            case UInt8(ascii: "\""):
                guard field.bytes.isEmpty && !field.quoted else {
                    throw IOError(file: r.path, line: r.line, column: column,
                                  message: "unexpected quote inside an unquoted field")
                }
                field.quoted = true
                let quoteLine = r.line
                var closed = false
                while r.fill() {
                    let q = r.buffer[r.position]
                    r.position += 1
                    if q == UInt8(ascii: "\"") {
                        if r.fill() && r.buffer[r.position] == UInt8(ascii: "\"") {
                            field.bytes.append(q)
                            r.position += 1
                            continue
                        }
                        closed = true
                        break
                    }
                    if q == UInt8(ascii: "\n") { r.line += 1 }
                    field.bytes.append(q)
                }
                guard closed else {
                    throw IOError(file: r.path, line: quoteLine, column: column,
                                  message: "quoted field is not closed before the end of the file (record starts on line \(startLine))")
                }
                if r.fill() {
                    let next = r.buffer[r.position]
                    if next == UInt8(ascii: "\r"), r.position + 1 < r.buffer.count, r.buffer[r.position + 1] == UInt8(ascii: "\n") {
                        r.position += 1
                    } else if next != UInt8(ascii: ",") && next != UInt8(ascii: "\n") {
                        throw IOError(file: r.path, line: r.line, column: column,
                                      message: "expected ',' or end of line after a closing quote, found '\(Character(Unicode.Scalar(next)))'")
                    }
                }
            default:
                if field.quoted {
                    throw IOError(file: r.path, line: r.line, column: column, message: "text after a closing quote")
                }
                field.bytes.append(c)
            }
        }
    }
}

/// A source of record batches.
public protocol TableReader: AnyObject {
    var schema: Schema { get }
    var path: String { get }
    var bytesRead: Int { get }
    var fileSize: Int { get }
    func next() throws -> RecordBatch?
}
