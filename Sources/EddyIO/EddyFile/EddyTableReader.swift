@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Reads an `.eddy` file chunk by chunk as record batches whose columns are the stored trees (no decode):
/// only the projected columns are touched, and chunks that ``skipChunk`` rules out are not read at all.
public final class EddyTableReader: TableReader {
    public let file: EddyFile
    public private(set) var projection: Set<Int>?
    /// Decides from a chunk's statistics whether it can hold a row the query keeps (zone maps): true
    /// skips it. Nil reads every chunk.
    public private(set) var skipChunk: ((ChunkLayout) -> Bool)?
    public private(set) var chunksRead = 0
    public private(set) var chunksSkipped = 0
    public private(set) var bytesRead = 0
    private var nextChunk = 0
    private var firstRow = 0

    public init(file: EddyFile) { self.file = file }

    /// Columns are stored trees, built whole: there is nothing to deliver late.
    public func scan(_ request: ScanRequest) {
        projection = request.projection
        skipChunk = request.skipChunk
    }

    public var schema: Schema { file.footer.schema }
    public var path: String { file.path }
    public var fileSize: Int { file.size }

    /// `count(*)` alone: the row counts of the chunks left, from the footer (no chunk is touched).
    /// Zone maps need a `--where`, so none is skipped here.
    public var explainedSkips: [String] {
        [
            "== chunks: \(chunksRead) read, \(chunksSkipped) skipped by zone maps"
                + " (of \(file.footer.chunks.count); \(bytesRead) bytes of segments touched)"
        ]
    }

    public func explainedCount(records: Int, threads: Int) -> String {
        "\(records) rows, the sum of the chunks' row counts in the footer; no chunk touched"
    }

    public func countRemaining(threads: Int) throws -> (records: Int, threads: Int)? {
        var rows = 0
        let chunks = file.footer.chunks
        while nextChunk < chunks.count {
            rows = saturatingAdd(rows, chunks[nextChunk].rows)
            firstRow = saturatingAdd(firstRow, chunks[nextChunk].rows)
            nextChunk += 1
        }
        return (rows, 1)
    }

    public func next() throws -> RecordBatch? {
        guard let build = try nextDeferred() else { return nil }
        return try build()
    }

    /// A batch of stored trees (not compressed again) starting at file row `firstRow`.
    static func batch(_ schema: Schema, columns: [any ArrayNode], rows: Int, firstRow: Int, plainBytes: Int)
        -> RecordBatch
    {
        var batch = RecordBatch(schema: schema, columns: columns, count: rows, firstLine: 0)
        batch.encoded = true
        batch.firstRow = firstRow
        batch.plainBytes = plainBytes
        return batch
    }

    /// The next chunk zone maps do not skip (its index and first file row), counting read and skipped
    /// chunks; nil at the end.
    private func nextKeptChunk() -> (index: Int, chunk: ChunkLayout, firstRow: Int)? {
        let chunks = file.footer.chunks
        while nextChunk < chunks.count {
            let k = nextChunk
            let chunk = chunks[k]
            let start = firstRow
            nextChunk += 1
            firstRow += chunk.rows
            if let skipChunk, skipChunk(chunk) {
                chunksSkipped += 1
                continue
            }
            chunksRead += 1
            return (k, chunk, start)
        }
        return nil
    }

    public func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)? {
        if projection?.isEmpty == true {
            // No column is read (count(*)): the remaining chunks are one batch of their rows.
            var rows = 0
            let start = firstRow
            while let (_, chunk, _) = nextKeptChunk() { rows += chunk.rows }
            guard rows > 0 else { return nil }
            let schema = file.footer.schema
            let total = rows
            return {
                Self.batch(
                    schema, columns: schema.fields.map { ConstantArray(.null($0.dtype), count: total) }, rows: total,
                    firstRow: start, plainBytes: 0)
            }
        }
        if let (k, chunk, start) = nextKeptChunk() {
            let wanted = projection
            let file = self.file
            for (j, c) in chunk.columns.enumerated() where wanted?.contains(j) ?? true { bytesRead += c.segmentLength }
            return {
                let columns: [any ArrayNode] = try file.footer.schema.fields.enumerated().map { j, field in
                    guard wanted?.contains(j) ?? true else {
                        return ConstantArray(.null(field.dtype), count: chunk.rows)
                    }
                    return try file.column(chunk: k, column: j)
                }
                let plain = chunk.columns.enumerated().reduce(0) { sum, e in
                    wanted?.contains(e.offset) ?? true ? saturatingAdd(sum, e.element.stats.plainBytes) : sum
                }
                return Self.batch(
                    file.footer.schema, columns: columns, rows: chunk.rows, firstRow: start, plainBytes: plain)
            }
        }
        return nil
    }
}
