/// One column chunk's page index (Parquet's `OffsetIndex`, and its `ColumnIndex` when asked for): where
/// each data page lies, the first row it holds, and its statistics. Read from the file's bytes and checked
/// against the chunk before any of it is used: offsets inside the chunk and increasing, first rows
/// starting at 0 and increasing within the row group, one entry per page in every list.
struct ParquetPageIndex {
    struct Page: Sendable {
        /// Where the page's header starts in the file.
        var offset: Int
        /// Bytes of header and body.
        var size: Int
        var firstRow: Int
    }

    /// What a page's statistics prove about its nulls.
    enum Nulls { case none, all, some }

    var pages: [Page] = []
    /// From the `ColumnIndex`: per page, its nulls and its bounds as stored (nil: unknown).
    var nulls: [Nulls] = []
    var minValues: [[UInt8]?] = []
    var maxValues: [[UInt8]?] = []

    var hasBounds: Bool { !nulls.isEmpty }

    /// Rows of page `p` in a row group of `rows`.
    func rows(_ p: Int, of rows: Int) -> Range<Int> {
        pages[p].firstRow..<(p + 1 < pages.count ? pages[p + 1].firstRow : rows)
    }

    /// Bytes of one index this reader decodes; real ones are a few bytes a page.
    static let maxIndexBytes = 64 << 20

    /// Decodes and checks the `OffsetIndex` in `bytes`, for a chunk of `rows` rows lying in `chunk`.
    static func offsets(_ bytes: UnsafeRawBufferPointer, rows: Int, chunk: Range<Int>) throws -> ParquetPageIndex {
        var r = ThriftCompactReader(bytes)
        var index = ParquetPageIndex()
        var seen = false
        try r.readStruct { r, id, type in
            guard id == 1 else { return false }
            try ThriftCompactReader.expect(type, .list, "OffsetIndex.page_locations")
            seen = true
            // Every page holds a row at least: more locations than rows is a lie.
            index.pages = try r.structList(limit: max(rows, 1), what: "page locations") { r in
                var offset: Int64 = -1
                var size: Int32 = -1
                var first: Int64 = -1
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, 6): offset = try r.i64()
                    case (2, 5): size = try r.i32()
                    case (3, 6): first = try r.i64()
                    default: return false
                    }
                    return true
                }
                return Page(offset: Int(offset), size: Int(size), firstRow: Int(first))
            }
            return true
        }
        guard seen, !index.pages.isEmpty || rows == 0 else {
            throw ParquetProblem("the offset index lists no page for \(rows) rows")
        }
        var end = chunk.lowerBound
        var nextRow = 0
        for (p, page) in index.pages.enumerated() {
            guard page.offset >= end, page.size > 0, page.size <= chunk.upperBound - page.offset else {
                throw ParquetProblem(
                    "the offset index puts page \(p) at bytes \(page.offset)..<\(page.offset &+ page.size); "
                        + "the chunk's pages lie in \(end)..<\(chunk.upperBound), in order")
            }
            guard p == 0 ? page.firstRow == 0 : page.firstRow >= nextRow && page.firstRow < rows else {
                throw ParquetProblem(
                    "the offset index starts page \(p) at row \(page.firstRow); "
                        + (p == 0 ? "the first page starts at row 0" : "rows \(nextRow)..<\(rows) remain"))
            }
            end = page.offset + page.size
            nextRow = page.firstRow + 1
        }
        return index
    }

    /// The pages of a chunk without a page index, and their bounds from the statistics in their headers
    /// (`DataPageHeader` / `DataPageHeaderV2` `statistics`, `min_value` / `max_value` / `null_count`), by
    /// walking the headers of `chunk` in `file` (no body is read). Nil when no data page's header holds
    /// statistics.
    static func fromHeaders(_ file: UnsafeRawBufferPointer, chunk: Range<Int>, rows: Int) throws -> ParquetPageIndex? {
        var index = ParquetPageIndex()
        var pos = chunk.lowerBound
        var seen = 0
        var any = false
        while seen < rows {
            guard pos < chunk.upperBound else { throw ParquetProblem("the chunk ends after \(seen) of \(rows) values") }
            var t = ThriftCompactReader(UnsafeRawBufferPointer(rebasing: file[pos..<chunk.upperBound]))
            let header = try ParquetPageHeader.decode(&t)
            let start = pos
            pos += t.position
            guard header.compressedSize >= 0, Int(header.compressedSize) <= chunk.upperBound - pos else {
                throw ParquetProblem(
                    "a page of \(header.compressedSize) bytes at byte \(pos); the chunk ends at \(chunk.upperBound)")
            }
            pos += Int(header.compressedSize)
            // Dictionary and index pages hold no rows (a page of another type is refused when decoded).
            guard header.type == Kind.data.rawValue || header.type == Kind.dataV2.rawValue else { continue }
            let n = Int(header.numValues)
            guard n > 0, n <= rows - seen else {
                throw ParquetProblem("a data page of \(header.numValues) values where \(rows - seen) remain")
            }
            index.pages.append(Page(offset: start, size: pos - start, firstRow: seen))
            let stats = header.statistics
            any = any || stats?.minValue != nil || stats?.maxValue != nil || stats?.nullCount != nil
            let nulls: Nulls =
                switch stats?.nullCount {
                case 0?: .none
                case let c? where c == Int64(n): .all
                default: .some
                }
            index.nulls.append(nulls)
            index.minValues.append(nulls == .all ? nil : stats?.minValue)
            index.maxValues.append(nulls == .all ? nil : stats?.maxValue)
            seen += n
        }
        return any ? index : nil
    }

    private typealias Kind = ParquetPageHeader.Kind

    /// Decodes the `ColumnIndex` in `bytes` into this index's bounds: one entry per page in each list.
    mutating func bounds(_ bytes: UnsafeRawBufferPointer, rows: Int) throws {
        var r = ThriftCompactReader(bytes)
        var nullPages: [Bool]?
        var mins: [[UInt8]?]?
        var maxs: [[UInt8]?]?
        var nullCounts: [Int64]?
        let n = pages.count
        func count(_ k: Int, _ what: String) throws {
            guard k == n else {
                throw ParquetProblem("the column index has \(k) \(what) for the offset index's \(n) pages")
            }
        }
        try r.readStruct { r, id, type in
            switch id {
            case 1:
                try ThriftCompactReader.expect(type, .list, "ColumnIndex.null_pages")
                let (t, k) = try r.listHeader()
                guard
                    t == ThriftCompactReader.WireType.boolTrue.rawValue
                        || t == ThriftCompactReader.WireType.boolFalse.rawValue
                else { throw ParquetProblem("thrift: ColumnIndex.null_pages is not a list of bools") }
                try count(k, "null_pages")
                // A bool in a list is a byte: 1 true; 2 (or 0, from some writers) false.
                nullPages = try (0..<k).map { _ in try r.byte() == 1 }
            case 2, 3:
                try ThriftCompactReader.expect(
                    type, .list, id == 2 ? "ColumnIndex.min_values" : "ColumnIndex.max_values")
                let (t, k) = try r.listHeader()
                guard t == ThriftCompactReader.WireType.binary.rawValue else {
                    throw ParquetProblem("thrift: the column index's bounds are not a list of binaries")
                }
                try count(k, id == 2 ? "min_values" : "max_values")
                let values = try (0..<k).map { _ -> [UInt8]? in
                    let b = try r.binary()
                    return b.count <= ParquetStatistics.maxBoundBytes ? Array(b) : nil
                }
                if id == 2 { mins = values } else { maxs = values }
            case 5:
                try ThriftCompactReader.expect(type, .list, "ColumnIndex.null_counts")
                let (t, k) = try r.listHeader()
                guard t == ThriftCompactReader.WireType.i64.rawValue else {
                    throw ParquetProblem("thrift: ColumnIndex.null_counts is not a list of i64")
                }
                try count(k, "null_counts")
                nullCounts = try (0..<k).map { _ in try r.i64() }
            default: return false
            }
            return true
        }
        guard let nullPages, let mins, let maxs else {
            throw ParquetProblem("the column index lacks null_pages, min_values or max_values, which it must hold")
        }
        nulls = (0..<n).map { p in
            let pageRows = Int64(self.rows(p, of: rows).count)
            // A page called all null whose count of nulls says otherwise proves nothing: "some".
            if nullPages[p] { return nullCounts.map { $0[p] == pageRows } ?? true ? .all : .some }
            // A page that is not all null yet counts as many nulls as rows proves nothing but "some".
            if let c = nullCounts?[p], c == 0 { return .none }
            return .some
        }
        minValues = (0..<n).map { nullPages[$0] ? nil : mins[$0] }
        maxValues = (0..<n).map { nullPages[$0] ? nil : maxs[$0] }
    }
}

/// The rows of a row group that page statistics leave, as ranges in order, and what that skips.
struct ParquetRowPlan: Sendable {
    var ranges: [Range<Int>]
    var keep: ParquetRowKeep
    /// Per column read with a page index: its pages, checked again as the column is decoded.
    var pages: [Int: [ParquetPageIndex.Page]]
    var pagesRead = 0
    var pagesSkipped = 0

    var rows: Int { ranges.reduce(0) { $0 + $1.count } }

    /// The rows of the row group kept by `kept`, a bitmap over this plan's rows in order.
    func expand(_ kept: ParquetRowKeep?) -> ParquetRowKeep {
        guard let kept else { return keep }
        var words = [UInt64](repeating: 0, count: (keep.count + 63) / 64)
        var i = 0
        for range in ranges {
            kept.forEachKept(in: i..<(i + range.count)) { j in
                let row = range.lowerBound + (j - i)
                words[row >> 6] |= 1 << UInt64(row & 63)
            }
            i += range.count
        }
        return ParquetRowKeep(words: words, count: keep.count)
    }
}
