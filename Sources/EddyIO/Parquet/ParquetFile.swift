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
    /// - Parameter mapped: false reads the whole file into memory of its own instead (the server's own
    ///   process, `--workers 0`: a file cut short while a mapping of it is read would end the process
    ///   with SIGBUS; cut while it is copied, it is an error naming it).
    public init(
        path: String, descriptor: Int32? = nil, limits: ParquetLimits = ParquetLimits(), mapped: Bool = true
    ) throws {
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
        if mapped {
            guard let raw = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), raw != MAP_FAILED else {
                throw fail("cannot map: \(String(cString: strerror(errno)))")
            }
            self.mapping = FileMapping(base: UnsafeRawPointer(raw), size: size, path: path)
        } else {
            self.mapping = try FileMapping(reading: fd, size: size, path: path)
        }
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
        try column(group: g, column: k, rows: keep.map(ParquetRowKeep.init), pages: nil)
    }

    /// Decodes column `k` of row group `g`: with `rows`, only the rows whose bit is set; with `pages`, the
    /// chunk's offset index, which each data page walked must agree with.
    func column(group g: Int, column k: Int, rows keep: ParquetRowKeep?, pages: [ParquetPageIndex.Page]?) throws
        -> any ArrayNode
    {
        guard let meta = rowGroups[g].columns[k].meta else {
            throw IOError(file: path, line: 0, column: 0, message: "row group \(g): no metadata for column \(k)")
        }
        let file = UnsafeRawBufferPointer(start: mapping.base, count: mapping.size)
        let decoder = ParquetColumnChunkDecoder(
            file: file, dataEnd: dataEnd, column: columns[k], meta: meta, rows: rows(g), pageLimit: limits.maxPageBytes,
            keep: keep, pages: pages)
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

    // MARK: Page index

    /// Column `k` of row group `g`'s page index, checked against its chunk, with the pages' bounds when
    /// `bounds` is true and the file has them; nil when the writer wrote no offset index (it is optional).
    /// - Throws: ``IOError`` naming the file, the row group, the column and the check that failed.
    func pageIndex(group g: Int, column k: Int, bounds: Bool) throws -> ParquetPageIndex? {
        let chunk = rowGroups[g].columns[k]
        guard let meta = chunk.meta, let offset = chunk.offsetIndexOffset, let length = chunk.offsetIndexLength
        else { return nil }
        do {
            let range = try ParquetColumnChunkDecoder.byteRange(meta, dataEnd: dataEnd)
            var index = try ParquetPageIndex.offsets(
                try indexBytes(offset, length, "offset index"), rows: rows(g), chunk: range)
            if bounds, let offset = chunk.columnIndexOffset, let length = chunk.columnIndexLength {
                try index.bounds(try indexBytes(offset, length, "column index"), rows: rows(g))
            }
            return index
        } catch let p as ParquetProblem {
            throw IOError(
                file: path, line: 0, column: 0,
                message: "row group \(g), column '\(escapedForDisplay(columns[k].name))': page index: \(p.message)")
        }
    }

    /// Column `k` of row group `g`'s pages with the bounds in their headers, for a chunk without a page
    /// index: nil when no data page header holds statistics.
    /// - Throws: ``IOError`` naming the file, the row group, the column and the check that failed.
    func headerIndex(group g: Int, column k: Int) throws -> ParquetPageIndex? {
        guard let meta = rowGroups[g].columns[k].meta else { return nil }
        let file = UnsafeRawBufferPointer(start: mapping.base, count: mapping.size)
        do {
            let range = try ParquetColumnChunkDecoder.byteRange(meta, dataEnd: dataEnd)
            return try withExtendedLifetime(mapping) {
                try ParquetPageIndex.fromHeaders(file, chunk: range, rows: rows(g))
            }
        } catch let p as ParquetProblem {
            throw IOError(
                file: path, line: 0, column: 0,
                message: "row group \(g), column '\(escapedForDisplay(columns[k].name))': page headers: \(p.message)")
        }
    }

    /// The bytes of a page index structure, which writers put between the column data and the footer.
    private func indexBytes(_ offset: Int64, _ length: Int32, _ what: String) throws -> UnsafeRawBufferPointer {
        let (end, overflow) = offset.addingReportingOverflow(Int64(length))
        guard offset >= 4, length > 0, Int(length) <= ParquetPageIndex.maxIndexBytes, !overflow,
            end <= Int64(dataEnd)
        else {
            throw ParquetProblem(
                "the \(what) claims bytes \(offset)..<\(offset &+ Int64(length)); it must lie in 4..<\(dataEnd) "
                    + "and be 1 to \(ParquetPageIndex.maxIndexBytes) bytes")
        }
        return UnsafeRawBufferPointer(
            rebasing: UnsafeRawBufferPointer(start: mapping.base, count: mapping.size)[
                Int(offset)..<Int(end)])
    }

    /// Which rows of row group `g` can hold a row the filter keeps, from the page statistics of `filter`
    /// (the columns it names): the row group is split at every page boundary of those columns, `skip` (the
    /// zone-map rule) judges each piece with each column's bounds for it, and the pieces it cannot rule out
    /// are kept. `read` (the columns the query reads) are the ones whose skipped pages are counted.
    /// - Returns: nil when no filter column has a page index with bounds, or every row is kept.
    /// - Throws: ``IOError`` for a page index that fails its checks.
    func rowPlan(group g: Int, filter: [Int], read: [Int], skip: (ChunkLayout) -> Bool) throws -> ParquetRowPlan? {
        let rows = self.rows(g)
        var indexed: [(column: Int, index: ParquetPageIndex, min: [Scalar?], max: [Scalar?])] = []
        for k in filter where k < columns.count {
            // The page index where the writer wrote one, else the statistics in the page headers.
            let found = try pageIndex(group: g, column: k, bounds: true)
            guard let index = try found?.hasBounds == true ? found : headerIndex(group: g, column: k) else { continue }
            let dtype = columns[k].dtype
            indexed.append(
                (
                    k, index, index.minValues.map { $0.flatMap { bound($0, columns[k]) }.map { Scalar($0, dtype) } },
                    index.maxValues.map { $0.flatMap { bound($0, columns[k]) }.map { Scalar($0, dtype) } }
                ))
        }
        guard indexed.contains(where: { $0.index.pages.count > 1 }) else { return nil }
        let base = chunkLayout(g)
        // What the row group's statistics prove about each column's nulls holds for any piece of it.
        let baseNulls = base.columns.map { c -> ParquetPageIndex.Nulls in
            c.stats.nullCount == 0 ? .none : c.stats.nullCount == base.rows ? .all : .some
        }
        var cuts = Set<Int>([rows])
        for entry in indexed { for page in entry.index.pages { cuts.insert(page.firstRow) } }
        let bounds = cuts.sorted()
        var cursor = [Int](repeating: 0, count: indexed.count)
        var ranges: [Range<Int>] = []
        var layout = base
        for (a, b) in zip(bounds, bounds.dropFirst()) {
            var nulls = baseNulls
            for (i, entry) in indexed.enumerated() {
                while cursor[i] + 1 < entry.index.pages.count && entry.index.pages[cursor[i] + 1].firstRow <= a {
                    cursor[i] += 1
                }
                let p = cursor[i]
                nulls[entry.column] = entry.index.nulls[p]
                layout.columns[entry.column].stats.min = entry.min[p]
                layout.columns[entry.column].stats.max = entry.max[p]
            }
            // Unknown nulls anywhere: rows become Int.max and an unknown count 1, as in `chunkLayout`.
            layout.rows = nulls.contains { $0 == .some } ? Int.max : b - a
            for (k, n) in nulls.enumerated() {
                layout.columns[k].stats.nullCount = n == .none ? 0 : n == .all ? layout.rows : 1
            }
            if skip(layout) { continue }
            if let last = ranges.last, last.upperBound == a {
                ranges[ranges.count - 1] = last.lowerBound..<b
            } else {
                ranges.append(a..<b)
            }
        }
        if ranges == [0..<rows] { return nil }
        var words = [UInt64](repeating: 0, count: (rows + 63) / 64)
        for range in ranges {
            var row = range.lowerBound
            while row < range.upperBound {
                let from = row & 63
                let to = min(64, from + (range.upperBound - row))
                words[row >> 6] |= (to == 64 ? ~0 : (1 << UInt64(to)) - 1) & ~((1 << UInt64(from)) - 1)
                row += to - from
            }
        }
        var plan = ParquetRowPlan(ranges: ranges, keep: ParquetRowKeep(words: words, count: rows), pages: [:])
        for k in read where k < columns.count {
            let index = try indexed.first { $0.column == k }?.index ?? pageIndex(group: g, column: k, bounds: false)
            guard let index else { continue }
            plan.pages[k] = index.pages
            for p in index.pages.indices {
                if plan.keep.any(index.rows(p, of: rows)) { plan.pagesRead += 1 } else { plan.pagesSkipped += 1 }
            }
        }
        return plan
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
