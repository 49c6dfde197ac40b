@_spi(Host) public import Eddy
public import EddyIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One evaluation of `where` / `select` over a table read batch by batch: compress each batch,
/// evaluate through one execution context, stream rows out or fold aggregates.
public final class Evaluation {
    public let reader: any TableReader
    public let predicate: Bound?
    public let items: [(name: String, bound: Bound)]
    public let context: ExecutionCtx
    @_spi(Host) public let compressor: Compressor
    public let trace: ExecutionTrace?
    /// Schema indices of the columns the query names (`where` and `select`): the only ones read,
    /// typed and compressed. All of them when there is no `select`.
    public let columnsRead: [Int]
    /// Schema indices of the columns `where` names: the ones `--compression auto` may encode for the
    /// query (``Compressor/ColumnUse/filtered``); the others are evaluated as parsed.
    let filteredColumns: Set<Int>
    /// Encoding trees of the first batch's columns, for `--explain`.
    public private(set) var inputTrees: [(name: String, tree: String)] = []
    /// The engine trees built for the first batch (predicate, then select items), for `--explain`.
    public private(set) var planTrees: [(label: String, tree: String)] = []
    /// Compressed and canonical bytes of all batches read so far.
    public private(set) var compressedBytes = 0
    public private(set) var canonicalBytes = 0
    public private(set) var rowsRead = 0
    public private(set) var rowsSelected = 0
    /// Set when `count(*)` alone was answered by counting the input's records without building
    /// batches: the threads that counted.
    public private(set) var countedOnThreads: Int?
    /// Called with a progress line for inputs that take more than a second to read.
    public var progress: ((String) -> Void)?
    /// Asked before each batch: a reason to stop (a deadline passed, the client went away, the
    /// result grew too large), or nil to go on. Stopping throws ``EvaluationStopped``.
    public var shouldStop: (() -> EvaluationStopped?)?

    /// Parses and binds `whereText` and `selectText` against the reader's schema, then hands the reader
    /// its one ``ScanRequest``: the columns named, the filter's columns and, with `zoneMaps`, the chunk
    /// statistics' test (a chunk whose statistics prove `--where` keeps none of its rows is skipped).
    /// - Throws: ``QueryError`` with a caret at the offending position.
    @_spi(Host) public init(
        reader: any TableReader, whereText: String?, selectText: String?, context: ExecutionCtx,
        compressor: Compressor = Compressor(), limits: Parser.Limits = Parser.Limits(), zoneMaps: Bool = true
    ) throws {
        self.reader = reader
        self.context = context
        self.compressor = compressor
        self.trace = context.trace
        if let whereText {
            let binder = Binder(schema: reader.schema, source: whereText)
            let e = try Parser.expression(whereText, limits: limits)
            let b = try binder.bind(e)
            guard b.dtype.isBool || b.dtype == .null else {
                throw QueryError("--where must be a bool expression, found \(b.dtype)", source: whereText, position: 0)
            }
            predicate = b
        } else {
            predicate = nil
        }
        if let selectText {
            let binder = Binder(schema: reader.schema, source: selectText)
            let list = try Parser.selectList(selectText, limits: limits)
            let bound = try list.map { (name: $0.name, bound: try binder.bind($0.expr, allowAggregates: true)) }
            let aggregates = bound.filter { $0.bound.isAggregate }
            if !aggregates.isEmpty, let plain = bound.firstIndex(where: { !$0.bound.isAggregate }) {
                throw QueryError(
                    "cannot mix aggregates with per-row expressions (there is no group by)",
                    source: selectText, position: list[plain].expr.position)
            }
            items = bound
        } else {
            items = reader.schema.fields.enumerated().map { (name: $1.name, bound: .column($0, $1.dtype)) }
        }
        // Projection: the reader builds only what the query names (count(*) alone names nothing).
        let named = items.reduce(into: predicate?.columns ?? []) { $0.formUnion($1.bound.columns) }
        columnsRead = named.sorted()
        filteredColumns = predicate?.columns ?? []
        // One scan request, before the first batch: the projection; the filter's columns, so that a
        // reader that can builds the columns only `select` names after the filter, of the rows it keeps
        // (a Parquet query keeping 3% of the rows decoded and copied all of them: two thirds of it); and
        // the zone maps that rule chunks out.
        let skipChunk: ((ChunkLayout) -> Bool)? = predicate.flatMap { predicate in
            zoneMaps ? { ZoneMap.provesEmpty(predicate, chunk: $0) } : nil
        }
        reader.scan(ScanRequest(projection: named, filterColumns: predicate?.columns, skipChunk: skipChunk))
    }

    public var isAggregate: Bool { items.first?.bound.isAggregate ?? false }

    /// Whether a query reads no column at all: no `--where`, and a `--select` of `count(*)` items
    /// only. A reader may then skip what only typed columns need (the CSV reader's type inference).
    public static func readsNoColumn(whereText: String?, selectText: String?) -> Bool {
        guard whereText == nil, let selectText, let items = try? Parser.selectList(selectText), !items.isEmpty
        else { return false }
        return items.allSatisfy {
            if case .call(let name, let arguments, star: true, _) = $0.expr {
                name.lowercased() == "count" && arguments.isEmpty
            } else {
                false
            }
        }
    }

    /// Output column names.
    public var names: [String] { items.map(\.name) }

    /// Threads the batches stream through (the reader used by one at a time, in file order; rows are
    /// written and aggregates merged in file order). 1 evaluates batch after batch.
    public var threads = 1

    /// What one batch gave: its counts, its aggregate partials or its output columns, and (for the
    /// first batch) the trees `--explain` shows.
    struct BatchOutput {
        var rows = 0
        var selected = 0
        var canonicalBytes = 0
        var compressedBytes = 0
        var partials: [AggregatePartial] = []
        var output: [any ArrayNode]?
        var inputTrees: [(name: String, tree: String)] = []
        var planTrees: [(label: String, tree: String)] = []
    }

    /// Compresses, filters and evaluates one batch. Touches no state of `self` but reads it, so batches
    /// may be processed on several threads at once.
    func process(_ batch: RecordBatch, first: Bool) throws -> BatchOutput {
        var filtered = false
        do {
            return try processRows(batch, first: first, filtered: &filtered)
        } catch var e as EddyError where batch.encoded {
            // Stored trees can hold what a file's checks cannot see (a code past its dictionary, a number
            // wider than its text): name the file and the chunk, and where its rows start.
            let rows =
                e.message.holds("row ")
                ? (filtered ? "; rows counted among those --where kept" : "; rows counted from 0 there") : ""
            e.message += " (in \(reader.path), the chunk at file row \(batch.firstRow)\(rows))"
            throw e
        } catch var e as EddyError where e.source == nil && e.message.holds("row ") {
            // The engine numbers rows from 0 within the arrays it evaluates: say where they start — a line
            // of a text input, a row of a file without lines (Parquet: the row group's first row).
            let start =
                batch.firstLine > 0
                ? "input line \(batch.firstLine)" : "file row \(batch.firstRow) of \(reader.path)"
            e.message +=
                filtered
                ? " (rows counted among those --where kept in the batch that starts at \(start))"
                : batch.rowsLeftOut
                    ? " (rows counted among those the page statistics left in the row group that starts at \(start))"
                    : " (rows counted from 0 at \(start))"
            throw e
        }
    }

    private func processRows(_ batch: RecordBatch, first: Bool, filtered: inout Bool) throws -> BatchOutput {
        var out = BatchOutput()
        out.rows = batch.count
        let columns = try encodedColumns(batch, first: first, out: &out)
        var inputs = columns
        var count = batch.count
        var kept: Bitmap?
        if let predicate {
            let node = try predicate.node(columns, count: batch.count)
            if first { out.planTrees.append(("where", node.treeDescription())) }
            let mask = try context.execute(node)
            let bits: Bitmap
            switch mask {
            case let b as BoolArray: bits = b.trueAndValid
            default: bits = Bitmap(repeating: false, count: batch.count)  // an all-null predicate keeps nothing
            }
            count = bits.trueCount
            filtered = true
            if count != batch.count {
                kept = bits
                let maskArray = try BoolArray(bits: bits)
                inputs = try columns.enumerated().map { k, column in
                    batch.late[k] == nil ? try FilterArray(column, mask: maskArray, count: count) : column
                }
            }
        }
        if !batch.late.isEmpty {
            for (k, build) in batch.late where k < inputs.count {
                let column =
                    count == 0
                    ? ConstantArray(.null(batch.schema.fields[k].dtype), count: 0) : try build(kept)
                guard column.count == count else {
                    throw EddyError(.kernelFailed, "a late column of \(column.count) rows where \(count) were kept")
                }
                inputs[k] = column
                out.canonicalBytes = saturatingAdd(out.canonicalBytes, column.byteSize)
                out.compressedBytes = saturatingAdd(out.compressedBytes, column.byteSize)
            }
            if first {
                // Built after the filter: their trees are of the rows it kept.
                out.inputTrees = columnsRead.filter { $0 < inputs.count }.map {
                    (batch.schema.fields[$0].name, (batch.late[$0] == nil ? columns[$0] : inputs[$0]).treeDescription())
                }
            }
        }
        out.selected = count
        if first {
            for item in items
            where !(predicate == nil && { if case .column = item.bound { true } else { false } }()) {
                out.planTrees.append((item.name, try item.bound.node(inputs, count: count).treeDescription()))
            }
        }
        if isAggregate {
            out.partials = items.map { _ in AggregatePartial() }
            for (k, item) in items.enumerated() {
                guard case .aggregate(let f, let arg, _) = item.bound else { continue }
                try fold(f, arg, inputs, count, into: &out.partials[k])
            }
        } else if count > 0 {
            out.output = try items.map { try context.execute($0.bound.node(inputs, count: count)) }
        }
        return out
    }

    /// The batch's columns as the query reads them: those it reads compressed (unless the reader gave
    /// them encoded already), their sizes and, for the first batch, their trees noted in `out`.
    private func encodedColumns(_ batch: RecordBatch, first: Bool, out: inout BatchOutput) throws -> [any ArrayNode] {
        var columns = batch.columns
        for k in columnsRead where k < columns.count && !batch.encoded && batch.late[k] == nil {
            let col = columns[k]
            let c = try compressor.compress(col, use: filteredColumns.contains(k) ? .filtered : .computed)
            out.canonicalBytes += col.byteSize
            out.compressedBytes += c.byteSize
            columns[k] = c
        }
        if first {
            out.inputTrees = columnsRead.filter { $0 < columns.count }.map {
                (batch.schema.fields[$0].name, columns[$0].treeDescription())
            }
        }
        if batch.encoded {
            for k in columnsRead where k < columns.count {
                out.compressedBytes = saturatingAdd(out.compressedBytes, columns[k].byteSize)
            }
            out.canonicalBytes = batch.plainBytes
        }
        return columns
    }

    /// Runs to the end of the input, writing results.
    ///
    /// The batches stream through `threads` threads with no wave to wait for: a thread takes the next
    /// batch from the reader (one thread reads at a time, in file order), builds and evaluates it, and
    /// whichever thread finds the next batch in file order done writes it (rows) or merges it
    /// (aggregate partials), so results come out in file order while the other threads go on. At most
    /// a window of batches is taken ahead of the one written next, bounding the rows held.
    public func run(into writer: ResultWriter) throws {
        var accumulators = items.map { _ in AggregatePartial() }
        try countIfOnlyCounting(into: &accumulators)
        if countedOnThreads == nil {
            if let stop = shouldStop?() { throw stop }
            // With a trace (--explain), one thread: the trace reads in execution order.
            let width = trace == nil ? Swift.max(1, threads) : 1
            let stream = BatchStream(
                evaluation: self, writer: writer, accumulators: accumulators,
                window: width * (isAggregate ? 16 : 4))
            if width > 1, let monitor = Monitor() {
                stream.monitor = monitor
                Parallel.perform(iterations: width) { _ in stream.work() }
            } else {
                stream.work()
            }
            if let failure = stream.failure { throw failure }
            accumulators = stream.accumulators
        }
        if isAggregate { try writeAggregates(accumulators, into: writer) }
        writer.finish()
    }

    /// Writes one batch's rows, or merges its aggregate partials, in file order (called by one thread
    /// at a time: the stream's writer).
    fileprivate func write(
        _ result: Result<BatchOutput, any Error>, into writer: ResultWriter, accumulators: inout [AggregatePartial],
        batchIndex: Int
    ) throws {
        let out = try result.get()
        if batchIndex == 0 {
            inputTrees = out.inputTrees
            planTrees = out.planTrees
        }
        rowsRead += out.rows
        rowsSelected += out.selected
        canonicalBytes = saturatingAdd(canonicalBytes, out.canonicalBytes)
        compressedBytes = saturatingAdd(compressedBytes, out.compressedBytes)
        for k in out.partials.indices where k < accumulators.count { accumulators[k].merge(out.partials[k]) }
        if let output = out.output { try writer.write(output) }
    }

    /// A progress line every half second once the evaluation has run for a second, when asked for.
    /// `bytesRead`: the reader's count when it last handed out a batch (it may be reading on another
    /// thread now).
    fileprivate func reportProgress(started: Double, lastProgress: inout Double, bytesRead: Int) {
        let t = now()
        if t - started > 1.0, t - lastProgress > 0.5, let progress, reader.fileSize > 0 {
            lastProgress = t
            let mb = Double(bytesRead) / 1_048_576
            let pct = Int(100 * Double(bytesRead) / Double(reader.fileSize))
            progress("read \(Int(mb)) MB (\(pct)%), \(rowsRead) rows, \(rowsSelected) selected")
        }
    }

    /// count(*) alone (no --where): the reader counts records without building batches, if it can.
    private func countIfOnlyCounting(into accumulators: inout [AggregatePartial]) throws {
        let countsOnly =
            predicate == nil && !items.isEmpty
            && items.allSatisfy {
                if case .aggregate(let f, nil, _) = $0.bound { f.kind == .countAll } else { false }
            }
        if countsOnly, let (n, used) = try reader.countRemaining(threads: Swift.max(1, threads)) {
            countedOnThreads = used
            rowsRead = n
            rowsSelected = n
            for k in accumulators.indices { accumulators[k].rows = n }
        }
    }
}

/// Why an evaluation was stopped before the end of its input.
public struct EvaluationStopped: Error, CustomStringConvertible, Sendable {
    public enum Cause: Sendable { case deadline, cancelled, resultTooLarge }
    public var cause: Cause
    public var description: String

    public init(_ cause: Cause, _ description: String) {
        self.cause = cause
        self.description = description
    }
}

/// One run's batches streaming through its threads (``Evaluation/run(into:)``). Every field is guarded
/// by `monitor` (absent with one thread); the reader is used by one thread at a time (`reading`), the
/// writer and the accumulators by one at a time (`writing`).
private final class BatchStream: @unchecked Sendable {
    let evaluation: Evaluation
    let writer: ResultWriter
    var accumulators: [AggregatePartial]
    /// Batches taken at most ahead of the next one to write.
    let window: Int
    var monitor: Monitor?
    /// Batches taken from the reader so far (the next one's index).
    var taken = 0
    /// The next batch to write, in file order.
    var written = 0
    var reading = false
    var writing = false
    /// The reader has handed out its last batch (or failed: its error is that batch's result).
    var readAll = false
    /// Results evaluated and not yet written, by batch index.
    var done: [Int: Result<Evaluation.BatchOutput, any Error>] = [:]
    /// What ended the run early: the first failing batch in file order (rows before it are written),
    /// or a stop asked for.
    var failure: (any Error)?
    var bytesRead = 0
    let started: Double
    var lastProgress: Double

    init(evaluation: Evaluation, writer: ResultWriter, accumulators: [AggregatePartial], window: Int) {
        self.evaluation = evaluation
        self.writer = writer
        self.accumulators = accumulators
        self.window = Swift.max(1, window)
        started = now()
        lastProgress = started
    }

    private func lock() { monitor?.lock() }
    private func unlock() { monitor?.unlock() }
    private func broadcast() { monitor?.broadcast() }

    /// One thread's part: take a batch, evaluate it, write what is due; until the input or the run ends.
    func work() {
        lock()
        while failure == nil && !readAll {
            if reading || taken - written >= window {
                // Another thread is reading, or the batch due next is still being evaluated: wait for
                // either to finish (with one thread neither can be so).
                guard let monitor else { break }
                monitor.wait()
                continue
            }
            let k = taken
            guard let build = takeBatch(k) else { continue }
            let result = evaluate(build, index: k)
            lock()
            done[k] = result
            writeDue()
        }
        unlock()
    }

    /// With the lock held: reads batch `k` (the lock released meanwhile). Returns its builder with the
    /// lock released, or nil with it held when the reader is at its end or failed (its error is then
    /// batch `k`'s result, after the batches read before it).
    private func takeBatch(_ k: Int) -> (@Sendable () throws -> RecordBatch)? {
        reading = true
        unlock()
        var build: (@Sendable () throws -> RecordBatch)?
        var readError: (any Error)?
        do {
            build = try evaluation.reader.nextDeferred()
        } catch {
            readError = error
        }
        let read = evaluation.reader.bytesRead
        lock()
        reading = false
        bytesRead = read
        broadcast()
        if let readError {
            readAll = true
            taken += 1
            done[k] = .failure(readError)
            writeDue()
            return nil
        }
        guard let build else {
            readAll = true
            return nil
        }
        taken += 1
        unlock()
        return build
    }

    /// Builds and evaluates one batch (no lock held).
    private func evaluate(_ build: @Sendable () throws -> RecordBatch, index k: Int)
        -> Result<Evaluation.BatchOutput, any Error>
    {
        let evaluation = self.evaluation
        return asEngineWork {
            do {
                return .success(try evaluation.process(build(), first: k == 0))
            } catch {
                return .failure(error)
            }
        }
    }

    /// With the lock held: unless another thread is writing, writes the batches due in file order (the
    /// lock released while each is written), then wakes the threads waiting for the window.
    private func writeDue() {
        guard !writing else { return }
        writing = true
        while failure == nil, let result = done.removeValue(forKey: written) {
            let index = written
            let read = bytesRead
            unlock()
            var stopped: (any Error)?
            do {
                try evaluation.write(result, into: writer, accumulators: &accumulators, batchIndex: index)
                stopped = evaluation.shouldStop?()
                evaluation.reportProgress(started: started, lastProgress: &lastProgress, bytesRead: read)
            } catch {
                stopped = error
            }
            lock()
            written += 1
            if let stopped { failure = stopped }
        }
        if failure != nil { done.removeAll() }
        writing = false
        broadcast()
    }
}
