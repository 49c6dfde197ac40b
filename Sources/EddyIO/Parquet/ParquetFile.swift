@_spi(Host) public import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Bounds on what a Parquet file's footer may make the reader hold or decode.
public struct ParquetLimits: Sendable {
    /// Bytes of the Thrift footer.
    public var maxFooterBytes: Int
    /// Rows of one row group (each is one batch, decoded at once).
    public var maxRowGroupRows: Int
    /// Bytes of one page once decompressed (checked before anything is allocated for it).
    public var maxPageBytes: Int

    public init(maxFooterBytes: Int = 64 << 20, maxRowGroupRows: Int = 1 << 26, maxPageBytes: Int = 1 << 30) {
        self.maxFooterBytes = maxFooterBytes
        self.maxRowGroupRows = maxRowGroupRows
        self.maxPageBytes = maxPageBytes
    }
}

/// A Parquet file, mapped, with its footer parsed and checked: a flat schema of columns this reader
/// decodes, and row groups whose column chunks lie within the file. Pages are decoded on demand.
public final class ParquetFile: Sendable {
    public static let magic: [UInt8] = Array("PAR1".utf8)

    public let path: String
    public let schema: Schema
    public let size: Int
    let columns: [ParquetColumn]
    let rowGroups: [ParquetRowGroup]
    let mapping: FileMapping
    /// Column data lies in `4 ..< dataEnd` (before the footer).
    let dataEnd: Int
    /// The writer, from the footer.
    public let createdBy: String?
    let limits: ParquetLimits

    /// Whether the file at `path` (or open at `descriptor`) is a regular file starting with `PAR1`.
    /// A path that is not a regular file is not opened: opening a FIFO to look (even without blocking)
    /// completes its writer's open, and closing it again leaves the writer with no reader (EPIPE), so
    /// that the real reader then waits for a writer that is gone.
    public static func isParquetFile(_ path: String, descriptor: Int32? = nil) -> Bool {
        if descriptor == nil && FileKind.of(path) != .regular { return false }
        let fd = descriptor ?? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return false }
        defer { if descriptor == nil { close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        var head = [UInt8](repeating: 0, count: 4)
        return pread(fd, &head, 4, 0) == 4 && head == magic
    }

    /// Opens, checks and maps the file.
    /// - Parameter descriptor: a file already open (`eddy serve`): read instead of opening `path`.
    /// - Throws: ``IOError`` naming the file and the check that failed.
    public init(path: String, descriptor: Int32? = nil, limits: ParquetLimits = ParquetLimits()) throws {
        func fail(_ message: String) -> IOError { IOError(file: path, line: 0, column: 0, message: message) }
        let fd = descriptor.map { fcntl($0, F_DUPFD_CLOEXEC, 0) } ?? open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail("cannot open: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw fail("is not a regular file; a Parquet file is read in place (mapped)")
        }
        let size = Int(st.st_size)
        guard size >= 12 else { throw fail("is \(size) bytes, too short for a Parquet file (12 at least)") }
        func read(_ offset: Int, _ count: Int) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            let problem = out.withUnsafeMutableBytes { b -> String? in
                guard let base = b.baseAddress else { return nil }
                return preadFully(fd, into: base, count: count, offset: offset)
            }
            if let problem { throw fail(problem) }
            return out
        }
        let head = try read(0, 4)
        let tail = try read(size - 8, 8)
        if Array(tail[4...]) == Array("PARE".utf8) { throw fail("is an encrypted Parquet file, which is not read") }
        guard head == Self.magic, Array(tail[4...]) == Self.magic else {
            throw fail("no PAR1 magic at the start and end: not a Parquet file (or truncated)")
        }
        let footerLength = Int(tail[0]) | Int(tail[1]) << 8 | Int(tail[2]) << 16 | Int(tail[3]) << 24
        guard footerLength > 0, footerLength <= size - 12 else {
            throw fail("the footer length is \(footerLength) bytes; the file has \(size - 12) between its magics")
        }
        guard footerLength <= limits.maxFooterBytes else {
            throw fail("the footer is \(footerLength) bytes, more than the \(limits.maxFooterBytes) this reader takes")
        }
        let dataEnd = size - 8 - footerLength
        let footer = try read(dataEnd, footerLength)
        let metadata: ParquetFileMetaData
        let columns: [ParquetColumn]
        do {
            metadata = try footer.withUnsafeBytes { try ParquetFileMetaData.decode($0) }
            columns = try ParquetSchemaMapping.columns(metadata.schema)
            try Self.check(metadata, columns, limits: limits)
        } catch let p as ParquetProblem {
            throw fail("footer: \(p.message)")
        }
        guard let raw = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), raw != MAP_FAILED else {
            throw fail("cannot map: \(String(cString: strerror(errno)))")
        }
        self.mapping = FileMapping(base: UnsafeRawPointer(raw), size: size, path: path)
        self.path = path
        self.size = size
        self.columns = columns
        self.rowGroups = metadata.rowGroups
        self.dataEnd = dataEnd
        self.createdBy = metadata.createdBy
        self.limits = limits
        self.schema = Schema(columns.map { StructField($0.name, $0.dtype) })
    }

    /// The footer's claims that every later step relies on.
    private static func check(_ m: ParquetFileMetaData, _ columns: [ParquetColumn], limits: ParquetLimits) throws {
        var total = 0
        for (g, group) in m.rowGroups.enumerated() {
            guard group.numRows >= 0, group.numRows <= Int64(limits.maxRowGroupRows) else {
                throw ParquetProblem(
                    "row group \(g) claims \(group.numRows) rows; this reader takes 0 to \(limits.maxRowGroupRows)")
            }
            total = saturatingAdd(total, Int(group.numRows))
            guard group.columns.count == columns.count else {
                throw ParquetProblem(
                    "row group \(g) has \(group.columns.count) column chunks for \(columns.count) columns")
            }
            for (k, chunk) in group.columns.enumerated() {
                let name = escapedForDisplay(columns[k].name)
                if chunk.filePath != nil {
                    throw ParquetProblem(
                        "row group \(g), column '\(name)': its data is in another file, which is not read")
                }
                guard let meta = chunk.meta else {
                    throw ParquetProblem("row group \(g), column '\(name)': no column metadata")
                }
                guard meta.path.count <= 1 else {
                    throw ParquetProblem(
                        "row group \(g), column '\(name)': a nested path \(meta.path.joined(separator: "."))")
                }
            }
        }
        guard m.numRows < 0 || Int64(total) == m.numRows else {
            throw ParquetProblem("the footer claims \(m.numRows) rows; its row groups hold \(total)")
        }
    }

    /// Rows of row group `g`.
    func rows(_ g: Int) -> Int { Int(rowGroups[g].numRows) }

    /// Decodes column `k` of row group `g`: with `keep`, only the rows whose bit is set.
    /// - Throws: ``IOError`` naming the file, the row group, the column and what failed.
    func column(group g: Int, column k: Int, keep: Bitmap? = nil) throws -> any ArrayNode {
        guard let meta = rowGroups[g].columns[k].meta else {
            throw IOError(file: path, line: 0, column: 0, message: "row group \(g): no metadata for column \(k)")
        }
        let file = UnsafeRawBufferPointer(start: mapping.base, count: mapping.size)
        let decoder = ParquetColumnChunkDecoder(
            file: file, dataEnd: dataEnd, column: columns[k], meta: meta, rows: rows(g), pageLimit: limits.maxPageBytes,
            keep: keep.map(ParquetRowKeep.init))
        do {
            return try withExtendedLifetime(mapping) { try decoder.decode() }
        } catch let p as ParquetProblem {
            throw IOError(
                file: path, line: 0, column: 0,
                message:
                    "row group \(g), column '\(escapedForDisplay(columns[k].name))' (\(columns[k].parquetType)): \(p.message)"
            )
        } catch let e as EddyError {
            throw IOError(
                file: path, line: 0, column: 0,
                message: "row group \(g), column '\(escapedForDisplay(columns[k].name))': \(e.message)")
        }
    }

    /// Row group `g`'s statistics as the zone maps read them (see ``ZoneMap``): null counts, and bounds
    /// for integers, booleans and strings (float bounds are not used: writers leave NaN out of them).
    public func chunkLayout(_ g: Int) -> ChunkLayout {
        let rows = self.rows(g)
        let unknown = rowGroups[g].columns.contains { $0.meta?.statistics?.nullCount == nil }
        // With a null count unknown, rows become Int.max and an unknown count 1: "some rows are null and
        // some are not" for that column, while known counts keep what they prove.
        let shownRows = unknown ? Int.max : rows
        let cols = rowGroups[g].columns.enumerated().map { k, chunk -> ColumnChunkLayout in
            let stats = chunk.meta?.statistics
            var nulls = 1
            if let c = stats?.nullCount, c >= 0, c <= Int64(rows) {
                nulls = Int(c) == rows ? shownRows : Int(c)
            }
            let dtype = columns[k].dtype
            let lo = stats?.minValue.flatMap { bound($0, columns[k]) }
            let hi = stats?.maxValue.flatMap { bound($0, columns[k]) }
            return ColumnChunkLayout(
                segmentOffset: 0, segmentLength: 0, checksum: 0, nodes: [],
                stats: ChunkColumnStats(
                    nullCount: nulls, min: lo.map { Scalar($0, dtype) }, max: hi.map { Scalar($0, dtype) },
                    plainBytes: 0, storedBytes: Int(chunk.meta?.totalCompressedSize ?? 0)))
        }
        return ChunkLayout(rows: shownRows, columns: cols)
    }

    private func bound(_ b: [UInt8], _ c: ParquetColumn) -> ScalarValue? {
        func le(_ n: Int) -> UInt64? {
            guard b.count == n else { return nil }
            return (0..<n).reduce(UInt64(0)) { $0 | UInt64(b[$1]) << (8 * UInt64($1)) }
        }
        switch c.dtype {
        case .bool: return le(1).map { .bool($0 != 0) }
        case .primitive(let p, _):
            if p.isFloat { return nil }
            if c.physical == 1, let v = le(4) {
                let x = UInt32(truncatingIfNeeded: v)
                return p.isSignedInteger ? .int(Int64(Int32(bitPattern: x))) : .uint(UInt64(x))
            }
            if c.physical == 2, let v = le(8) { return p.isSignedInteger ? .int(Int64(bitPattern: v)) : .uint(v) }
            return nil
        case .utf8: return String(validating: b, as: UTF8.self).map { .utf8($0) }
        case .binary: return .binary(b)
        default: return nil
        }
    }
}
