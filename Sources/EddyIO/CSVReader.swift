import CEddyIO
import Dispatch
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
    private let file: UnsafeMutablePointer<FILE>
    /// Bytes read and not yet handed out: the start of the next batch.
    private var buffer: [UInt8] = []
    private var eof = false
    /// The input line of `buffer`'s first byte.
    private var line = 1
    /// The first batch, split into fields when the schema was inferred from it.
    private var pending: (slice: CSVSlice, scan: CSVBatchScan)?
    /// Bytes consumed so far, for progress reports.
    public private(set) var bytesRead = 0
    public let fileSize: Int
    public let limits: ReadLimits
    /// Columns whose type `--schema` gave (not inferred), for messages.
    private var declared: Set<String> = []
    public var projection: Set<Int>?
    /// Average record size so far, to size the next batch's buffer.
    private var bytesPerRecord = 128
    /// A batch also ends once it holds this many bytes (and at least one record).
    static let batchBytes = 32 << 20
    /// Bytes per read.
    static let readBytes = 256 << 10
    /// Records types are inferred from (the first batch holds no more).
    static let inferenceRows = 10_000

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
        var names: [String] = []
        var seen: Set<String> = []
        for (k, field) in header.enumerated() {
            // A byte-order mark before the first name is not part of it.
            let unmarked = k == 0 && field.hasPrefix("\u{FEFF}") ? String(field.dropFirst()) : field
            let name = unmarked.isEmpty ? "column_\(k + 1)" : unmarked
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
        // Infer from the first batch, which is kept and returned first: at most the 10,000 records
        // inference reads, so that splitting every column of it on this thread stays short (the other
        // batches are split on the workers, with only the columns the query needs).
        if inferTypes, let first = try nextSlice(maxRecords: Swift.min(self.batchRows, Self.inferenceRows)) {
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
                for i in 0..<Swift.min(col.count, Self.inferenceRows) where !col.nulls[i] {
                    kind = kind.widened(with: col.withField(i, FieldParse.kind))
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

    /// The next whole records, up to `maxRecords` (a blank line counts as one here; the scan drops it)
    /// or about ``batchBytes``: the bytes up to a newline outside quotes, or to the end of the file.
    /// A quote that cannot open a quoted field (inside an unquoted one) ends the batch before its
    /// record, and that record then forms a batch up to its next newline, whose scan reports it: so a
    /// stray quote never makes the rest of the file look like one quoted field.
    /// - Throws: ``IOError`` for a record longer than `limits.maxRecordBytes`.
    private func nextSlice(maxRecords: Int) throws -> CSVSlice? {
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
            // The record with the stray quote alone, up to its next newline (or the end of the file).
            var from = stray
            while true {
                let hit = buffer.withUnsafeBytes { raw -> Int? in
                    guard let base = raw.baseAddress, from < raw.count else { return nil }
                    guard let p = memchr(base + from, Int32(newline), raw.count - from) else { return nil }
                    return base.distance(to: UnsafeRawPointer(p))
                }
                if let hit {
                    boundary = hit + 1
                    records = 1
                    break
                }
                guard buffer.count <= maxRecord else {
                    throw recordTooLong(line: line)
                }
                from = buffer.count
                if !readMore(expecting: 1) {
                    boundary = buffer.count
                    records = 1
                    break
                }
            }
        } else if stray < 0 && !tooLongNext && eof && scanned == buffer.count && boundary < buffer.count
            && (records < maxRecords && boundary < Self.batchBytes || records == 0)
        {
            // The last record of the file, without a newline (or with a quote left open).
            boundary = buffer.count
            records += 1
        }
        guard boundary > 0 else { return nil }
        let tail = Array(buffer[boundary...])
        buffer.removeLast(buffer.count - boundary)
        let bytes = buffer
        buffer = tail
        let slice = CSVSlice(bytes: bytes, firstLine: line, records: records)
        line += newlinesAtBoundary
        bytesPerRecord = Swift.max(1, bytes.count / Swift.max(1, records))
        return slice
    }

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
        let parts = Swift.max(1, Swift.min(threads, (end - start) / Swift.max(1, minimumRangeBytes)))
        let bufferBytes = 1 << 20
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
        DispatchQueue.concurrentPerform(iterations: parts) { k in
            eddy_engine_work_enter()
            defer { eddy_engine_work_leave() }
            let from = start + span / parts * k
            let to = k == parts - 1 ? end : start + span / parts * (k + 1)
            let buf = UnsafeMutableRawPointer.allocate(byteCount: bufferBytes, alignment: 64)
            defer { buf.deallocate() }
            var part = Part()
            let n = eddy_csv_count_file_range(
                fd, UInt64(from), UInt64(to), UInt64(end), k == 0 ? 1 : 0, columns, maxRecord,
                buf.assumingMemoryBound(to: UInt8.self), bufferBytes, &part.badOffset, &part.badFields)
            part.error = n == -4 ? errno : 0
            part.count = n
            results.value[k] = part
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
        return (total, parts)
    }

    /// The input line of byte `offset`, counting newlines from `start` (whose line is `line`).
    private func line(at offset: Int, from start: Int, fd: Int32) throws -> Int {
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

    /// The error for a record past `limits.maxRecordBytes` that starts on `line`.
    private func recordTooLong(line: Int) -> IOError {
        IOError(
            file: path, line: line, column: 1,
            message: "record is longer than \(limits.maxRecordBytes) bytes (--max-record-bytes); is this a CSV file?")
    }

    /// Reads up to ``readBytes`` more of the file onto `buffer`; false at the end of the file.
    private func readMore(expecting records: Int) -> Bool {
        if eof { return false }
        let old = buffer.count
        if buffer.capacity < old + Self.readBytes {
            let estimate = Swift.min(
                bytesPerRecord.multipliedReportingOverflow(by: records).partialValue, Self.batchBytes)
            buffer.reserveCapacity(Swift.max(old + Self.readBytes, old + estimate + estimate / 16, 2 * old))
        }
        buffer.append(contentsOf: repeatElement(0, count: Self.readBytes))
        let n = buffer.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return fread(base + old, 1, Self.readBytes, file)
        }
        buffer.removeLast(Self.readBytes - Swift.max(n, 0))
        if n <= 0 {
            eof = true
            return false
        }
        bytesRead += n
        return true
    }
}

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
            guard close >= 0 else {
                throw IOError(
                    file: path, line: line(at: d), column: count + 1,
                    message:
                        "quoted field is not closed before the end of the file (record starts on line \(line(at: recordStart)))"
                )
            }
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
            throw IOError(
                file: path, line: line(at: after), column: count,
                message:
                    "expected ',' or end of line after a closing quote, found '\(escapedForDisplay(String(Character(Unicode.Scalar(c2)))))'"
            )
        }
    }
}

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
            let lineStarts = Array(rowStarts[0..<plain])
            var out = [RawColumn?](repeating: nil, count: columns)
            for (s, k) in slots.enumerated() {
                let range = (s * capacity)..<(s * capacity + plain)
                out[k] = RawColumn(
                    bytes: slice.bytes, starts: Array(starts[range]), ends: Array(ends[range]),
                    nulls: Array(nulls[range]), lines: .counted(firstLine: slice.firstLine, rowStarts: lineStarts))
            }
            self.columns = out
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
        var out = [RawColumn?](repeating: nil, count: columns)
        let lineStarts = Array(rowStarts[0..<rows])
        for (s, k) in slots.enumerated() {
            let range = (s * capacity)..<(s * capacity + rows)
            out[k] = RawColumn(
                bytes: text, starts: Array(starts[range]), ends: Array(ends[range]), nulls: Array(nulls[range]),
                lines: .counted(firstLine: slice.firstLine, rowStarts: lineStarts))
        }
        self.columns = out
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
    /// The number of records left, counted without building batches (for `count(*)` alone), on up
    /// to `threads` threads, and the threads it took; nil when the reader cannot (the caller then
    /// counts batches). Consumes the input only when it returns a count.
    func countRemaining(threads: Int) throws -> (records: Int, threads: Int)?
    /// Whether `nextDeferred()` does no reading of its own (the batches are views of a mapped file):
    /// then there is nothing to overlap with evaluation, and the caller may take many batches at once
    /// and evaluate them on its own thread too.
    var readsInPlace: Bool { get }
}

extension TableReader {
    /// No fast count: the batches count the rows.
    public func countRemaining(threads: Int) throws -> (records: Int, threads: Int)? { nil }

    /// Readers read (and copy) their input unless they say otherwise.
    public var readsInPlace: Bool { false }

    /// Reads and builds on the caller's thread (readers that cannot split the two).
    public func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)? {
        guard let batch = try next() else { return nil }
        return { batch }
    }
}
