@_spi(Host) import Eddy

/// What a query asks of a table, handed to its reader once, before the first batch, through
/// ``TableReader/scan(_:)`` (as DataFusion's `TableProvider::scan(projection, filters, limit)` is): which
/// columns to build, which ones the filter reads, and how to rule chunks out by their statistics. A reader
/// applies what its format allows and ignores the rest.
public struct ScanRequest {
    /// The schema indices of the columns batches must carry, or nil for all of them. The others are not
    /// typed, built or copied (a CSV reader still finds their boundaries); a batch holds an all-null
    /// placeholder of the column's type in their place.
    public var projection: Set<Int>?
    /// The columns the filter (`--where`) reads, or nil without a filter. A reader that can build columns
    /// after the filter (``RecordBatch/late``) delivers the projection's other columns that way, of the
    /// rows the filter keeps only.
    public var filterColumns: Set<Int>?
    /// Decides from a chunk's statistics (zone maps; Parquet row groups and pages) whether it can hold a
    /// row the filter keeps: true skips it. Nil reads every chunk.
    public var skipChunk: ((ChunkLayout) -> Bool)?

    public init(
        projection: Set<Int>? = nil, filterColumns: Set<Int>? = nil, skipChunk: ((ChunkLayout) -> Bool)? = nil
    ) {
        self.projection = projection
        self.filterColumns = filterColumns
        self.skipChunk = skipChunk
    }

    /// The columns to build after the filter: the projection's (every column when nil) that the filter
    /// does not read; none without a filter.
    public func lateColumns(of schema: Schema) -> Set<Int> {
        guard let filterColumns else { return [] }
        return (projection ?? Set(schema.fields.indices)).subtracting(filterColumns)
    }
}

/// A source of record batches.
public protocol TableReader: AnyObject {
    /// Tells the reader what the query asks of it. Called at most once, before the first `next()`,
    /// `nextDeferred()` or `countRemaining(threads:)`; without it a reader delivers every column of every
    /// chunk.
    func scan(_ request: ScanRequest)
    var schema: Schema { get }
    var path: String { get }
    var bytesRead: Int { get }
    var fileSize: Int { get }
    func next() throws -> RecordBatch?
    /// The next batch in two steps: the call reads (in file order, one call at a time, on whichever of
    /// an evaluation's threads takes the batch); the returned function types and builds the batch's
    /// columns and may run on another thread, while the next batch is read. Nil at the end of the input.
    func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)?
    /// The number of records left, counted without building batches (for `count(*)` alone), on up
    /// to `threads` threads, and the threads it took; nil when the reader cannot (the caller then
    /// counts batches). Consumes the input only when it returns a count.
    func countRemaining(threads: Int) throws -> (records: Int, threads: Int)?
    /// What `--explain` says of this reader after a run: what its statistics skipped, one `== ` line
    /// each (none for a reader without statistics).
    var explainedSkips: [String] { get }
    /// How ``countRemaining(threads:)`` answered, for `--explain`: `records` found on `threads`.
    func explainedCount(records: Int, threads: Int) -> String
}

extension TableReader {
    /// No fast count: the batches count the rows.
    public func countRemaining(threads: Int) throws -> (records: Int, threads: Int)? { nil }

    /// No statistics: nothing skipped to tell of.
    public var explainedSkips: [String] { [] }

    /// A reader that counts by reading: the records were counted in the file, each checked for shape.
    public func explainedCount(records: Int, threads: Int) -> String {
        "\(records) records counted in the file on \(threads) thread\(threads == 1 ? "" : "s"), "
            + "each checked to have \(schema.fields.count) fields; no batch built"
    }

    /// Reads and builds on the caller's thread (readers that cannot split the two).
    public func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)? {
        guard let batch = try next() else { return nil }
        return { batch }
    }
}
