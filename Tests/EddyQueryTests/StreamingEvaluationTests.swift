@_spi(Host) import Eddy
import EddyHostTestSupport
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Batches stream through an evaluation's threads (``Evaluation/run(into:)``): the reader is called by
/// one thread at a time, batches finish in any order, and what comes out is still in file order, stops
/// at the first failing batch in file order, and never runs far ahead of what is written.
@Suite struct StreamingEvaluationTests {
    /// What the scripted reader's builders saw, shared across threads.
    final class Watch: Sendable {
        let readersAtOnce = Atomic<Int>(0)
        let readersOverlapped = Atomic<Bool>(false)
        /// The highest batch index written so far (from the writer), and how far a build ran ahead of it.
        let lastWritten = Atomic<Int>(-1)
        let mostAhead = Atomic<Int>(0)
    }

    /// Batch k holds `rows(k)` values k * 1,000,000 + i; building it takes up to 2 ms (a pseudo-random
    /// pause, so that batches finish out of order). Reading batch `readFailsAt` throws; building batch
    /// `buildFailsAt` throws.
    final class ScriptedReader: TableReader {
        let schema = Schema([StructField("n", .primitive(.int64, .nonNullable))])
        let path = "scripted"
        let batches: Int
        let readFailsAt: Int?
        let buildFailsAt: Int?
        let watch: Watch
        var taken = 0
        var bytesRead = 0
        var fileSize: Int { batches }

        init(batches: Int, readFailsAt: Int? = nil, buildFailsAt: Int? = nil, watch: Watch) {
            self.batches = batches
            self.readFailsAt = readFailsAt
            self.buildFailsAt = buildFailsAt
            self.watch = watch
        }

        static func rows(_ k: Int) -> Int { 1 + (k * 37) % 50 }

        func scan(_ request: ScanRequest) {}

        func next() throws -> RecordBatch? { try nextDeferred()?() }

        func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)? {
            if watch.readersAtOnce.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue > 1 {
                watch.readersOverlapped.store(true, ordering: .sequentiallyConsistent)
            }
            defer { watch.readersAtOnce.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
            guard taken < batches else { return nil }
            let k = taken
            if k == readFailsAt { throw IOError(file: path, line: k, column: 1, message: "read failed at batch \(k)") }
            taken += 1
            bytesRead += 1
            let (schema, watch, buildFailsAt) = (self.schema, self.watch, self.buildFailsAt)
            return {
                let ahead = k - watch.lastWritten.load(ordering: .sequentiallyConsistent)
                _ = watch.mostAhead.max(ahead, ordering: .sequentiallyConsistent)
                usleep(UInt32((k * 7919) % 2000))
                if k == buildFailsAt {
                    throw IOError(file: "scripted", line: k, column: 1, message: "build failed at batch \(k)")
                }
                let values = (0..<Self.rows(k)).map { Int64(k * 1_000_000 + $0) }
                return RecordBatch(schema: schema, columns: [PrimitiveArray(values)], count: values.count)
            }
        }
    }

    /// Runs `select n` over `reader` on `threads` threads: the CSV written, and the error thrown.
    static func run(_ reader: ScriptedReader, threads: Int) throws -> (text: String, error: (any Error)?) {
        let e = try Evaluation(reader: reader, whereText: nil, selectText: "n", context: Session().makeContext())
        e.threads = threads
        var out = ""
        let watch = reader.watch
        let writer = ResultWriter(format: .csv, names: e.names) { piece in
            out += piece
            if let last = piece.split(separator: "\n").last, let n = Int(last) {
                watch.lastWritten.store(n / 1_000_000, ordering: .sequentiallyConsistent)
            }
        }
        do {
            try e.run(into: writer)
            return (out, nil)
        } catch {
            return (out, error)
        }
    }

    /// The rows of batches `0..<end`, as the CSV writes them after its header.
    static func expected(_ end: Int) -> String {
        "n\n" + (0..<end).flatMap { k in (0..<ScriptedReader.rows(k)).map { "\(k * 1_000_000 + $0)\n" } }.joined()
    }

    @Test func rowsComeOutInFileOrderWhateverOrderBatchesFinishIn() throws {
        for threads in [1, 2, 4] {
            let watch = Watch()
            let (text, error) = try Self.run(ScriptedReader(batches: 120, watch: watch), threads: threads)
            #expect(error == nil, "\(threads) threads: \(String(describing: error))")
            #expect(text == Self.expected(120), "\(threads) threads: rows out of order or lost")
            let overlapped = watch.readersOverlapped.load(ordering: .sequentiallyConsistent)
            #expect(!overlapped, "the reader was called concurrently")
            // A row query takes at most 4 batches per thread ahead of the one written next.
            let ahead = watch.mostAhead.load(ordering: .sequentiallyConsistent)
            #expect(ahead <= threads * 4 + 1, "\(threads) threads: a batch was built \(ahead) ahead of the writer")
        }
    }

    /// A batch that fails to build (at 37), or a read that fails (at 52): the rows of the batches before
    /// it, then its error, on any thread count.
    @Test(arguments: [(37, false, "build failed at batch 37"), (52, true, "read failed at batch 52")])
    func aFailureEndsTheRunAfterTheRowsBeforeIt(at: Int, reading: Bool, message: String) throws {
        for threads in [1, 3] {
            let reader =
                reading
                ? ScriptedReader(batches: 80, readFailsAt: at, watch: Watch())
                : ScriptedReader(batches: 80, buildFailsAt: at, watch: Watch())
            let (text, error) = try Self.run(reader, threads: threads)
            #expect(text == Self.expected(at), "\(threads) threads: rows after the failing batch, or lost before it")
            #expect("\(String(describing: error))".contains(message), "\(String(describing: error))")
        }
    }

    @Test func aStopAskedForEndsTheRunBetweenBatches() throws {
        let reader = ScriptedReader(batches: 200, watch: Watch())
        let e = try Evaluation(reader: reader, whereText: nil, selectText: "n", context: Session().makeContext())
        e.threads = 3
        let written = Atomic<Int>(0)
        e.shouldStop = {
            written.load(ordering: .sequentiallyConsistent) >= 10 ? EvaluationStopped(.deadline, "stop here") : nil
        }
        var out = ""
        let writer = ResultWriter(format: .csv, names: e.names) { piece in
            out += piece
            written.wrappingAdd(1, ordering: .sequentiallyConsistent)
        }
        #expect(throws: EvaluationStopped.self) { try e.run(into: writer) }
        // Stopped once ten pieces were written: what was written is whole batches from the first, in order.
        let lines = out.split(separator: "\n").dropFirst().compactMap { Int($0) }
        let batches = Set(lines.map { $0 / 1_000_000 })
        #expect(!batches.isEmpty && batches.count < 200, "\(batches.count) batches written")
        #expect(lines == Array(Self.expected(batches.count).split(separator: "\n").dropFirst().compactMap { Int($0) }))
        #expect(reader.taken < 200, "the reader was read to its end after the stop")
    }
}
