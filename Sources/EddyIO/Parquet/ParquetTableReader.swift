@_spi(Host) public import Eddy

/// Reads a Parquet file row group by row group as record batches: only the projected columns' chunks
/// are decoded, row groups that ``skipChunk`` rules out are not touched, and the decoding runs in the
/// batch's builder (on whichever thread evaluates it). The columns only `select` names are built after
/// the filter, of the rows it keeps (``RecordBatch/late``): a query that keeps few rows does not decode
/// the others.
///
/// Within a row group read, where the filter's columns have a page index, ``skipChunk`` also judges each
/// piece between their page boundaries by those pages' statistics: the batch then holds only the rows of
/// the pieces it cannot rule out, and no column's pages that lie wholly outside them are decompressed.
public final class ParquetTableReader: TableReader {
    public let file: ParquetFile
    public private(set) var projection: Set<Int>?
    /// The columns delivered late (``ScanRequest/lateColumns(of:)``).
    public private(set) var lateColumns: Set<Int> = []
    public private(set) var skipChunk: ((ChunkLayout) -> Bool)?
    public private(set) var rowGroupsRead = 0
    public private(set) var rowGroupsSkipped = 0
    public private(set) var bytesRead = 0
    /// Pages of the columns read, in the row groups read, that page statistics ruled out (not decompressed)
    /// and that were read; counted from the page index, so only in row groups where it ruled rows out.
    public private(set) var pagesSkipped = 0
    public private(set) var pagesRead = 0
    /// Rows of the row groups read that page statistics ruled out.
    public private(set) var rowsSkippedByPages = 0
    private var nextGroup = 0
    private var firstRow = 0

    public init(file: ParquetFile) { self.file = file }

    public func scan(_ request: ScanRequest) {
        projection = request.projection
        lateColumns = request.lateColumns(of: file.schema)
        skipChunk = request.skipChunk
    }

    public var schema: Schema { file.schema }
    public var path: String { file.path }
    public var fileSize: Int { file.size }
    public var rowGroupCount: Int { file.rowGroups.count }

    /// `count(*)` alone: the row counts of the row groups left, from the footer.
    public var explainedSkips: [String] {
        [
            "== row groups: \(rowGroupsRead) read, \(rowGroupsSkipped) skipped by their statistics"
                + " (of \(rowGroupCount); \(bytesRead) bytes of column chunks touched)",
            pagesRead + pagesSkipped + rowsSkippedByPages == 0
                ? "== pages: none skipped (no page statistics on the filter's columns, or they rule out no row)"
                : "== pages: \(pagesRead) read, \(pagesSkipped) skipped by their statistics"
                    + " (\(rowsSkippedByPages) rows of the row groups read ruled out)",
        ]
    }

    public func explainedCount(records: Int, threads: Int) -> String {
        "\(records) rows, the sum of the row groups' row counts in the footer; no page read"
    }

    public func countRemaining(threads: Int) throws -> (records: Int, threads: Int)? {
        var rows = 0
        while nextGroup < file.rowGroups.count {
            rows = saturatingAdd(rows, file.rows(nextGroup))
            nextGroup += 1
        }
        firstRow = saturatingAdd(firstRow, rows)
        return (rows, 1)
    }

    public func next() throws -> RecordBatch? {
        guard let build = try nextDeferred() else { return nil }
        return try build()
    }

    private func nextKeptGroup() -> (index: Int, firstRow: Int)? {
        while nextGroup < file.rowGroups.count {
            let g = nextGroup
            let start = firstRow
            nextGroup += 1
            firstRow = saturatingAdd(firstRow, file.rows(g))
            // A row group of no rows (pyarrow writes one for an empty table, its chunks at offset 0) has
            // nothing to read.
            if file.rows(g) == 0 { continue }
            if let skipChunk, skipChunk(file.chunkLayout(g)) {
                rowGroupsSkipped += 1
                continue
            }
            rowGroupsRead += 1
            return (g, start)
        }
        return nil
    }

    public func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)? {
        let schema = file.schema
        if projection?.isEmpty == true {
            // No column is read (count(*) with a --where of literals): the row groups left are one batch.
            var rows = 0
            let start = firstRow
            while let (g, _) = nextKeptGroup() { rows = saturatingAdd(rows, file.rows(g)) }
            guard rows > 0 else { return nil }
            let total = rows
            return {
                var batch = RecordBatch(
                    schema: schema, columns: schema.fields.map { ConstantArray(.null($0.dtype), count: total) },
                    count: total, firstLine: 0)
                batch.firstRow = start
                return batch
            }
        }
        let wanted = projection
        let late = lateColumns
        let file = self.file
        var picked: (group: Int, firstRow: Int, plan: ParquetRowPlan?)?
        while picked == nil, let (g, start) = nextKeptGroup() {
            var plan: ParquetRowPlan?
            if let skipChunk {
                let read = (0..<schema.fields.count).filter { wanted?.contains($0) ?? true }
                plan = try file.rowPlan(
                    group: g, filter: read.filter { !late.contains($0) }, read: read, skip: skipChunk)
            }
            if let plan {
                pagesSkipped += plan.pagesSkipped
                rowsSkippedByPages += file.rows(g) - plan.rows
                if plan.ranges.isEmpty {
                    // Every piece ruled out: the row group is skipped after all.
                    rowGroupsRead -= 1
                    rowGroupsSkipped += 1
                    continue
                }
                pagesRead += plan.pagesRead
            }
            picked = (g, start, plan)
        }
        guard let (g, start, plan) = picked else { return nil }
        for (k, chunk) in file.rowGroups[g].columns.enumerated() where wanted?.contains(k) ?? true {
            bytesRead = saturatingAdd(bytesRead, Int(chunk.meta?.totalCompressedSize ?? 0))
        }
        return {
            let rows = plan?.rows ?? file.rows(g)
            var deferred: [Int: @Sendable (Bitmap?) throws -> any ArrayNode] = [:]
            let columns: [any ArrayNode] = try schema.fields.enumerated().map { k, field in
                guard wanted?.contains(k) ?? true else { return ConstantArray(.null(field.dtype), count: rows) }
                if late.contains(k) {
                    deferred[k] = { keep in
                        guard let plan else { return try file.column(group: g, column: k, keep: keep) }
                        // The filter's bitmap is over the rows the page statistics left.
                        return try file.column(
                            group: g, column: k, rows: plan.expand(keep.map(ParquetRowKeep.init)), pages: plan.pages[k])
                    }
                    return ConstantArray(.null(field.dtype), count: rows)
                }
                guard let plan else { return try file.column(group: g, column: k) }
                return try file.column(group: g, column: k, rows: plan.keep, pages: plan.pages[k])
            }
            var batch = RecordBatch(schema: schema, columns: columns, count: rows, firstLine: 0)
            batch.firstRow = start
            batch.rowsLeftOut = plan != nil
            batch.late = deferred
            return batch
        }
    }
}
