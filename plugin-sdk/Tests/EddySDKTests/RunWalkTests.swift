@_spi(Host) import Eddy
import EddyTestSupport
import EddyTesting
import Testing

/// The DocC article's six-concept kernel (the `RunEndCompare` fixture's code), here so that the
/// conformance kit can run it on every dtype and on sliced run-ends (`offset` inside a run).
enum SixConceptRunEndCompare: EddyPlugin {
    static let name = "six-concept-run-end-compare"
    static let version = "1.0.0"

    static func register(into registrar: PluginRegistrar) throws {
        registrar.compare(on: RunEndArray.self, name: "compare once per run") { array, op, constant, ctx in
            let perRun = try Compare.evaluate(array.values, op, constant, in: ctx)
            var result = BoolArray.Builder(capacity: array.count)
            try array.forEachRun(ctx) { run, rows in
                try result.append(perRun.value(at: run), count: rows.count)
            }
            return result.finish()
        }
    }
}

/// The article's aggregate in six concepts: `sum` of an `i64` run-end column as value × run length,
/// with EddyPlugin, PluginRegistrar, ExecutionCtx, RunEndArray, PrimitiveArray and ScalarValue. Other
/// value types, and a sum past 64 bits, decline: the engine's own path answers (or raises the error).
enum SixConceptRunEndSum: EddyPlugin {
    static let name = "six-concept-run-end-sum"
    static let version = "1.0.0"

    static func register(into registrar: PluginRegistrar) throws {
        registrar.aggregate(.sum, on: RunEndArray.self, name: "sum value times run length") { array, ctx in
            guard let values = try ctx.execute(array.values) as? PrimitiveArray,
                let perRun = try? values.values(Int64.self)
            else { return nil }
            var total: Int64 = 0
            var valid = 0
            var overflow = false
            try array.forEachRun(ctx) { run, rows in
                guard values.validity.isValid(run), !overflow else { return }
                let (product, o1) = perRun[run].multipliedReportingOverflow(by: Int64(rows.count))
                let (sum, o2) = total.addingReportingOverflow(product)
                (total, overflow, valid) = (sum, o1 || o2, valid + 1)
            }
            if overflow { return nil }
            return valid == 0 ? .null : .int(total)
        }
    }
}

@Suite struct RunWalkTests {
    @Test func theSixConceptKernelsPassTheKit() throws {
        for report in [
            try PluginConformance.check(
                SixConceptRunEndCompare.self, options: ConformanceOptions(inputsPerKey: 200, timingRows: 50_000)),
            try PluginConformance.check(
                SixConceptRunEndSum.self, options: ConformanceOptions(inputsPerKey: 300, timingRows: 50_000)),
        ] {
            print(report)
            #expect(report.passed, "\(report)")
        }
    }

    @Test(arguments: [(0, 300), (1, 10), (63, 65), (64, 64), (130, 170), (299, 1), (17, 0)])
    func forEachRunCoversTheRowsOfASliceRunByRun(offset: Int, count: Int) throws {
        let ends = PrimitiveArray([UInt16(1), 64, 65, 128, 129, 200, 300])
        let values = PrimitiveArray((0..<7).map { Int32($0 * 10) })
        let array = try RunEndArray(ends: ends, values: values, offset: offset, count: count)
        let ctx = Session().makeContext()
        var next = 0
        try array.forEachRun(ctx) { run, rows in
            #expect(rows.lowerBound == next && !rows.isEmpty, "run \(run): \(rows)")
            for row in rows {
                let value = try array.scalar(at: row).value
                #expect(value == .int(Int64(run * 10)), "row \(row)")
            }
            next = rows.upperBound
        }
        #expect(next == count)
    }

    @Test func forEachRunRefusesEncodedEndsThatDoNotIncrease() throws {
        // Ends behind a slice are not checked when the array is made; the walk must not trust them.
        let ends = try SliceArray(PrimitiveArray([Int64(5), 3, 9, 2]), start: 0, length: 4)
        let array = try RunEndArray(ends: ends, values: PrimitiveArray([Int8(1), 2, 3, 4]), count: 9)
        #expect(throws: EddyError.self) { try array.forEachRun(Session().makeContext()) { _, _ in } }
        let short = try RunEndArray(
            ends: try SliceArray(PrimitiveArray([Int64(2), 4]), start: 0, length: 2),
            values: PrimitiveArray([Int8(1), 2]), count: 10)
        #expect(throws: EddyError.self) { try short.forEachRun(Session().makeContext()) { _, _ in } }
    }
}
