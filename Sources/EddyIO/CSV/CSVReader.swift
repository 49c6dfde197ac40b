import CEddyIO
@_spi(Host) public import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Reads a CSV file (RFC 4180: header row, quoted fields with embedded commas, quotes and newlines;
/// an empty unquoted field is null) in batches, so that files larger than memory stream through.
///
/// Types are inferred from the first rows (integers, floats, bools, else utf8) unless overridden.
///
/// Reading is split in two. The caller's thread reads the file in order and only finds where each
/// batch ends (whole records: newlines outside quotes, found a block at a time with SIMD byte masks).
/// Splitting the batch into fields and typing and building its columns happens in the function
/// ``nextDeferred()`` returns, which may run on another thread while the next batch is read.
public final class CSVReader: TableReader {
    public let path: String
    public private(set) var schema = Schema([])
    public let batchRows: Int
    let file: UnsafeMutablePointer<FILE>
    /// Bytes read and not yet handed out: the start of the next batch.
    var buffer: [UInt8] = []
    var eof = false
    /// The input line of `buffer`'s first byte.
    var line = 1
    /// The first batch, split into fields when the schema was inferred from it.
    var pending: (slice: CSVSlice, scan: CSVBatchScan)?
    /// Bytes consumed so far, for progress reports.
    public internal(set) var bytesRead = 0
    public let fileSize: Int
    public let limits: ReadLimits
    /// Columns whose type `--schema` gave (not inferred), for messages.
    private var declared: Set<String> = []
    public private(set) var projection: Set<Int>?

    /// Only the projection applies: text has no statistics to skip by, and a column is typed as it is split.
    public func scan(_ request: ScanRequest) { projection = request.projection }
    /// Average record size so far, to size the next batch's buffer.
    var bytesPerRecord = 128
    /// A batch also ends once it holds this many bytes (and at least one record).
    static let batchBytes = 32 << 20
    /// Bytes per read.
    static let readBytes = 256 << 10

    /// Opens `path`, reads the header and infers the schema from the first batch.
    /// - Parameters:
    ///   - overrides: column types that replace the inferred ones.
    /// - Throws: ``IOError`` for a missing file, an empty file, a bad header, or a malformed first batch.
    ///   - inferTypes: false when the query reads no column (`count(*)` alone): the first batch is
    ///     not read ahead to infer types, and columns without an override are typed utf8.
    ///   - descriptor: an open file to read from its start instead of opening `path` (which then only
    ///     names it in messages); duplicated, the caller keeps its own.
    public init(
        path: String, overrides: [String: DType] = [:], batchRows: Int = 65_536,
        limits: ReadLimits = ReadLimits(), inferTypes: Bool = true, descriptor: Int32? = nil
    ) throws {
        self.path = path
        self.batchRows = Swift.max(1, batchRows)
        self.limits = limits
        (file, fileSize) = try InputFile.open(path, descriptor: descriptor)
        // From here on the object is fully initialised: deinit closes the file if init throws.
        // A UTF-8 byte-order mark is not part of the first field (quoted or not).
        while buffer.count < 8 && readMore(expecting: 1) {}
        if buffer.starts(with: EddyFileFormat.magic) {
            throw IOError(
                file: path, line: 0, column: 0,
                message:
                    "this is an .eddy file, read as CSV: name the file itself (not a pipe) and leave out the input "
                    + "format (or give eddy); it is recognised by its first bytes")
        }
        if buffer.starts(with: [0xEF, 0xBB, 0xBF]) { buffer.removeFirst(3) }
        guard let head = try nextSlice(maxRecords: 1) else {
            throw IOError(file: path, line: 1, column: 1, message: "empty file: expected a header row")
        }
        let header = try CSVBatchScan.header(head, path: path)
        guard header.count <= limits.maxColumns else {
            throw IOError(
                file: path, line: 1, column: 1,
                message: "the header has \(header.count) columns, more than the limit of \(limits.maxColumns)")
        }
        let names = try Self.columnNames(header, overrides: overrides, path: path)
        // Infer from the first batch, which is kept and returned first: at most the 10,000 records
        // inference reads, so that splitting every column of it on this thread stays short (the other
        // batches are split on the workers, with only the columns the query needs).
        if inferTypes, let first = try nextSlice(maxRecords: Swift.min(self.batchRows, TableOptions.inferenceRows)) {
            let all = [Bool](repeating: true, count: names.count)
            pending = (first, try CSVBatchScan(first, columns: names.count, wanted: all, path: path))
        }
        var fields: [StructField] = []
        for (k, name) in names.enumerated() {
            if let t = overrides[name] {
                fields.append(StructField(name, t))
                continue
            }
            var kind = InferredKind.null
            if let col = pending?.scan.columns[k] {
                for i in 0..<Swift.min(col.count, TableOptions.inferenceRows) where !col.nulls[i] {
                    kind = kind.widened(with: col.withField(i, FieldParse.kind))
                    if kind == .utf8 { break }
                }
            }
            fields.append(StructField(name, kind.dtype))
        }
        schema = Schema(fields)
        declared = Set(overrides.keys)
    }

    /// The columns' names: the header's, a blank one named by its place, checked to be unique and to
    /// hold every column `overrides` names.
    /// - Throws: ``IOError`` for a duplicate name or an override of a column the header does not have.
    static func columnNames(_ header: [String], overrides: [String: DType], path: String) throws -> [String] {
        var names: [String] = []
        var seen: Set<String> = []
        for (k, field) in header.enumerated() {
            // A byte-order mark before the first name is not part of it.
            let unmarked = k == 0 && field.hasPrefix("\u{FEFF}") ? String(field.dropFirst()) : field
            let name = unmarked.isEmpty ? "column_\(k + 1)" : unmarked
            // A file whose lines end in a carriage return alone (classic Mac OS) reads as one header line and no
            // rows: refused here, not answered as an empty table.
            guard !name.unicodeScalars.contains("\r") else {
                throw IOError(
                    file: path, line: 1, column: k + 1,
                    message: "a carriage return inside column name '\(shortForDisplay(name, limit: 64))': lines must "
                        + "end with \\n or \\r\\n (a file whose lines end with \\r alone can be read after "
                        + "`tr '\\r' '\\n'`)")
            }
            let (inserted, member) = seen.insert(name)
            guard inserted else {
                let unlike =
                    member.utf8.elementsEqual(name.utf8)
                    ? ""
                    : " (written differently: \(scalarList(member)) against \(scalarList(name)); names that differ "
                        + "only in Unicode normalization are one name)"
                throw IOError(
                    file: path, line: 1, column: k + 1,
                    message: "duplicate column name '\(escapedForDisplay(name))' in the header\(unlike)")
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
        return names
    }

    deinit { fclose(file) }

    /// The next batch of canonical columns, or nil at the end of the file.
    /// - Throws: ``IOError`` naming the line and column of a malformed record or value.
    public func next() throws -> RecordBatch? {
        try nextDeferred()?()
    }

    public func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)? {
        let wanted = self.wanted
        let (schema, path, declared) = (self.schema, self.path, self.declared)
        if let p = pending {
            pending = nil
            let scan = UncheckedBox(p.scan)
            return { try scan.value.batch(schema: schema, wanted: wanted, path: path, declared: declared) }
        }
        guard let slice = try nextSlice(maxRecords: batchRows) else { return nil }
        let box = UncheckedBox(slice)
        return {
            let scan = try CSVBatchScan(box.value, columns: schema.fields.count, wanted: wanted, path: path)
            return try scan.batch(schema: schema, wanted: wanted, path: path, declared: declared)
        }
    }

    /// Whether each schema column is wanted (the projection as flags).
    private var wanted: [Bool] {
        let n = schema.fields.count
        guard let projection else { return [Bool](repeating: true, count: n) }
        return (0..<n).map { projection.contains($0) }
    }

    /// The error for a record past `limits.maxRecordBytes` that starts on `line`.
    func recordTooLong(line: Int) -> IOError {
        IOError(
            file: path, line: line, column: 1,
            message: "record is longer than \(limits.maxRecordBytes) bytes (--max-record-bytes); is this a CSV file?")
    }

    /// Reads up to ``readBytes`` more of the file onto `buffer`; false at the end of the file.
    func readMore(expecting records: Int) -> Bool {
        if eof { return false }
        let old = buffer.count
        // No more than the rest of a regular file and a page: a 10-row file does not zero 256 KiB (64
        // pages faulted in, a few percent of a one-shot eval). A file that grew is read on, a page more
        // each call until the next reads find its end.
        let left = fileSize > 0 ? Swift.max(fileSize - bytesRead, 0) + 4096 : Self.readBytes
        let want = Swift.min(Self.readBytes, left)
        if buffer.capacity < old + want {
            let estimate = Swift.min(
                bytesPerRecord.multipliedReportingOverflow(by: records).partialValue, Self.batchBytes)
            buffer.reserveCapacity(
                Swift.max(old + want, Swift.min(old + estimate + estimate / 16, old + left), 2 * old))
        }
        buffer.append(contentsOf: repeatElement(0, count: want))
        let n = buffer.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return fread(base + old, 1, want, file)
        }
        buffer.removeLast(want - Swift.max(n, 0))
        if n <= 0 {
            eof = true
            return false
        }
        bytesRead += n
        return true
    }
}
