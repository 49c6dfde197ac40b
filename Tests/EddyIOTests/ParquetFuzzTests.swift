@_spi(Host) import Eddy
import EddyHostTestSupport
import EddyTesting
import Foundation
import Testing

@testable import EddyIO

/// Mutated Parquet files: every mutant is read completely or refused with an error naming the file;
/// none traps, none hangs. `EDDY_FUZZ_ITERATIONS` and `EDDY_FUZZ_SEED` as in ELFFuzzTests (and
/// Tests/fuzz-long.sh, which runs this suite too).
@Suite struct ParquetFuzzTests {
    /// The committed fixtures and two hand-built files (plain and Snappy).
    static func seeds() throws -> [[UInt8]] {
        try ParquetFixtures.names.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: ParquetFixtures.path($0)))) }
            + [HandBuiltParquet().bytes(), HandBuiltParquet(codec: 1).bytes()]
    }

    /// Where the footer lies (from the trailer's length), or the whole file if that is not sensible.
    static func footerRange(_ f: [UInt8]) -> Range<Int> {
        guard f.count >= 12 else { return 0..<f.count }
        let n = Int(f[f.count - 8]) | Int(f[f.count - 7]) << 8 | Int(f[f.count - 6]) << 16 | Int(f[f.count - 5]) << 24
        guard n > 0, n <= f.count - 12 else { return 0..<f.count }
        return (f.count - 8 - n)..<(f.count - 8)
    }

    /// Rewrites the trailer's footer length after the footer changed size.
    static func fixTrailer(_ f: inout [UInt8], footerStart: Int) {
        let n = f.count - 8 - footerStart
        for k in 0..<4 { f[f.count - 8 + k] = UInt8(truncatingIfNeeded: n >> (8 * k)) }
    }

    static func mutate(_ base: [UInt8], _ g: inout ArrayGenerator) -> [UInt8] {
        var f = base
        let footer = footerRange(base)
        let interesting: [UInt8] = [0, 1, 0x0F, 0x15, 0x19, 0x1C, 0x7F, 0x80, 0xF9, 0xFE, 0xFF]
        switch g.int(0...9) {
        case 0:  // bytes changed anywhere (page headers, page data, footer)
            for _ in 0..<g.int(1...8) {
                let at = g.int(0...(f.count - 1))
                f[at] = g.chance(0.5) ? g.pick(interesting) : UInt8(truncatingIfNeeded: g.next())
            }
        case 1:  // truncated
            f = Array(f.prefix(g.int(0...(f.count - 1))))
        case 2, 3, 4:  // footer bytes changed: the Thrift decoder and the footer's checks
            for _ in 0..<g.int(1...6) {
                let at = g.int(footer.lowerBound...(footer.upperBound - 1))
                f[at] = g.chance(0.5) ? g.pick(interesting) : UInt8(truncatingIfNeeded: g.next())
            }
        case 5:  // footer bytes inserted or removed, the trailer's length fixed
            let at = g.int(footer.lowerBound...(footer.upperBound - 1))
            if g.chance(0.5) {
                f.insert(contentsOf: (0..<g.int(1...16)).map { _ in UInt8(truncatingIfNeeded: g.next()) }, at: at)
            } else {
                f.removeSubrange(at..<Swift.min(at + g.int(1...16), footer.upperBound))
            }
            fixTrailer(&f, footerStart: footer.lowerBound)
        case 6, 7:  // a varint of the footer made extreme (counts, offsets, sizes)
            let at = g.int(footer.lowerBound...(footer.upperBound - 1))
            let extreme: [UInt8] = g.pick([
                [0xFF, 0xFF, 0xFF, 0xFF, 0x0F], [0xFE, 0xFF, 0xFF, 0xFF, 0x0F], [0x80, 0x80, 0x80, 0x80, 0x10],
                [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], [0x01], [0x00],
            ])
            f.replaceSubrange(at..<Swift.min(at + g.int(1...3), footer.upperBound), with: extreme)
            fixTrailer(&f, footerStart: footer.lowerBound)
        default:  // bytes changed in the column data (page headers and bodies)
            guard footer.lowerBound > 4 else { break }
            for _ in 0..<g.int(1...4) {
                let at = g.int(4...(footer.lowerBound - 1))
                f[at] = g.chance(0.5) ? g.pick(interesting) : UInt8(truncatingIfNeeded: g.next())
            }
        }
        return f
    }

    /// Reads every column of every row group and runs it through the executor.
    static func readAll(_ path: String, _ ctx: ExecutionCtx) throws -> Int {
        // Small limits: a mutant claiming millions of rows is refused rather than decoded.
        let file = try ParquetFile(path: path, limits: ParquetLimits(maxRowGroupRows: 1 << 16, maxPageBytes: 1 << 22))
        let reader = ParquetTableReader(file: file)
        var rows = 0
        while let batch = try reader.next() {
            for column in batch.columns {
                guard column.count == batch.count else { throw EddyTestError("a column of the wrong length") }
                let canonical = try ctx.execute(column)
                guard canonical.count == batch.count else { throw EddyTestError("length changed") }
                if column.dtype.ptype != nil || column.dtype.isUTF8 {
                    _ = try? ctx.execute(AggregateArray(AggregateFunction(.sum), column))
                    _ = try ctx.execute(AggregateArray(AggregateFunction(.max), column))
                }
            }
            rows += batch.count
        }
        return rows
    }

    /// Reads with the filter `id >= 150` (column 0) judged by the statistics, as a query does: row groups,
    /// and pieces of them by their pages' bounds (page index or headers), are skipped; the other columns
    /// are built late, of every other row the batch holds. Returns the rows of the batches read.
    static func readFiltered(_ path: String, _ ctx: ExecutionCtx) throws -> Int {
        let file = try ParquetFile(path: path, limits: ParquetLimits(maxRowGroupRows: 1 << 16, maxPageBytes: 1 << 22))
        let reader = ParquetTableReader(file: file)
        reader.scan(
            ScanRequest(filterColumns: [0]) { chunk in
                guard let max = chunk.columns.first?.stats.max, case .int(let v) = max.value else { return false }
                return v < 150
            })
        var rows = 0
        while let batch = try reader.next() {
            for column in batch.columns {
                guard column.count == batch.count else { throw EddyTestError("a column of the wrong length") }
                _ = try ctx.execute(column)
            }
            let keep = Bitmap(count: batch.count) { $0 % 2 == 0 }
            for (_, build) in batch.late {
                let column = try build(keep)
                guard column.count == keep.trueCount else { throw EddyTestError("a late column of the wrong length") }
                _ = try ctx.execute(column)
            }
            rows += batch.count
        }
        return rows
    }

    @Test func mutatedParquetFilesGiveErrorsNeverATrap() throws {
        let seeds = try Self.seeds()
        let scratch = ScratchDirectory()
        let ctx = Session().makeContext(options: ExecutionOptions(iterationLimit: 100_000))
        for (k, seed) in seeds.enumerated() {
            let path = scratch.path + "/seed\(k).parquet"
            FileManager.default.createFile(atPath: path, contents: Data(seed))
            #expect(try Self.readAll(path, ctx) == (k < ParquetFixtures.names.count ? 200 : 100))
            _ = try Self.readFiltered(path, ctx)
        }
        let seed = fuzzSeed(20_261_206)
        var g = ArrayGenerator(seed: seed)
        let iterations = fuzzIterations(100_000)
        var outcomes: [String: Int] = [:]
        let path = scratch.path + "/mutant.parquet"
        for i in 0..<iterations {
            let bytes = Self.mutate(seeds[i % seeds.count], &g)
            let tmp = path + ".new"
            FileManager.default.createFile(atPath: tmp, contents: Data(bytes))
            _ = rename(tmp, path)
            do {
                _ = try Self.readAll(path, ctx)
                // The page index is read only for a filter: again with one (most mutants fail above).
                _ = try Self.readFiltered(path, ctx)
                outcomes["read", default: 0] += 1
            } catch let e as IOError {
                if !"\(e)".contains(path) {
                    Issue.record("iteration \(i) (seed \(seed)): error without the file: \(e)")
                }
                outcomes["file error", default: 0] += 1
            } catch {
                outcomes["engine error", default: 0] += 1
            }
        }
        print("parquet fuzz: \(iterations) mutated files (seed \(seed)): \(outcomes.sorted { $0.key < $1.key })")
        #expect(outcomes.values.reduce(0, +) == iterations)
        // The mutations reach the footer's checks and the page decoders, and many files still read.
        #expect((outcomes["file error"] ?? 0) > iterations / 4)
        #expect((outcomes["read"] ?? 0) > iterations / 50)
    }
}
