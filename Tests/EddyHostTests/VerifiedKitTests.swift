@_spi(Host) import Eddy
@_spi(Host) import EddyHost
import EddyHostTestSupport
@_spi(Host) import EddyTesting
import Foundation
import Testing

/// Issue 21's kit: the Decimal fixture (an f64 plugin encoding with a compressor hook, `.eddy` storage
/// and kernels) built clean passes the conformance kit with default options; each of the five planted
/// bugs is caught, and the failure points at the part that is wrong (a kernel, the hook, the storage).
/// Serialized: two tests building the same fixture variant at once would write the same file.
@Suite(.serialized) struct VerifiedKitTests {
    /// The fixture built with `bug` (nil: clean), loaded in-process into a fresh session, checked by the
    /// kit as a host checks a loaded plugin.
    static func check(_ bug: DecimalFixture.Bug?, options: ConformanceOptions = ConformanceOptions()) throws
        -> ConformanceReport
    {
        let file = try DecimalFixture.plugin(bug)
        let dir = ScratchDirectory()
        let path = dir.path + "/decimal.so"
        try FileManager.default.copyItem(atPath: file, toPath: path)
        let session = Session()
        let host = PluginHost(session: session, probe: nil, policy: PluginLoadPolicy(registrationTimeout: 3600))
        let row = host.load(path)
        try #require(row.status == .loaded, "\(row)")
        return PluginConformance.check(loadedPlugin: "decimal", in: session, options: options)
    }

    @Test func theCleanFixturePassesEveryCheck() throws {
        let report = try Self.check(nil)
        print(report)
        #expect(report.passed, "\(report)")
        // Every part was exercised: each kernel key, the hook and the storage got inputs of their own.
        for key in [
            "eddy.compare|fixture.decimal", "eddy.filter|fixture.decimal", "eddy.agg.sum|fixture.decimal",
            "eddy.agg.min|fixture.decimal", "eddy.agg.max|fixture.decimal", "hook:decimal floats",
            "storage:fixture.decimal",
        ] {
            let k = report.keys.first { $0.key == key }
            #expect((k?.inputs ?? 0) >= 250, "\(key): \(String(describing: k))")
        }
        #expect(report.stoppedAfter == nil && report.notReached.isEmpty)
    }

    /// What each bug's failures must name: the check, the key, and words of the problem.
    static func expected(_ bug: DecimalFixture.Bug) -> (check: KernelConformance.Check, key: String, words: String) {
        switch bug {
        case .roundedConstant: (.kernel, "eddy.compare|fixture.decimal", "reference")
        case .exponent: (.storage, "storage:fixture.decimal", "read back")
        case .shortRead: (.storage, "storage:fixture.decimal", "reading back what it wrote failed")
        case .negativeZero: (.compressorHook, "hook:decimal floats", "-0.0")
        case .exactSum: (.kernel, "eddy.agg.sum|fixture.decimal", "reference")
        }
    }

    @Test(arguments: DecimalFixture.Bug.allCases)
    func eachPlantedBugIsCaughtWhereItIs(bug: DecimalFixture.Bug) throws {
        let report = try Self.check(bug)
        print("\(bug):\n\(report)")
        #expect(!report.passed, "\(bug) passed:\n\(report)")
        let (check, key, words) = Self.expected(bug)
        let hits = report.failures.filter { $0.check == check && $0.key == key }
        #expect(!hits.isEmpty, "\(bug): no \(check) failure on \(key):\n\(report)")
        #expect(hits.contains { $0.problem.contains(words) }, "\(bug):\n\(report)")
        // A failure says how to make its input again, and names the plugin part at fault.
        let first = try #require(hits.first)
        #expect(first.problem.contains("reproduce: ConformanceOptions(seed: 1, onlyKey: \"\(key)\", onlyInput: "))
        switch check {
        case .compressorHook: #expect(first.problem.contains("compressor hook 'decimal floats'"))
        case .storage: #expect(first.problem.contains("storage of fixture.decimal"))
        case .kernel: #expect(first.problem.contains("element 0") || first.problem.contains("element "))
        }
        // The other parts are not blamed for it.
        let others = report.failures.filter { $0.check != check }
        #expect(
            others.isEmpty,
            "\(bug) blamed another part:\n\(others.prefix(2).map(\.description).joined(separator: "\n"))")
        // The failure reproduces on its own, from what it prints.
        let index = try #require(
            first.problem.split(separator: "onlyInput: ").last.flatMap { Int($0.prefix { $0 != ")" }) })
        let again = try Self.check(bug, options: ConformanceOptions(onlyKey: key, onlyInput: index))
        #expect(again.failures.contains { $0.check == check && $0.key == key }, "\(bug): \(again)")
    }

    @Test func aQuickCheckStopsAtItsTimeLimitAndSaysWhatItReached() throws {
        let quick = try Self.check(
            nil,
            options: ConformanceOptions(seed: 21, inputsPerKey: 48, twoThreads: false, timingRows: 0, timeLimit: 0.8))
        print("quick, limited to 0.8 s:\n\(quick)")
        #expect(quick.failures.isEmpty, "\(quick)")
        #expect(quick.inputs > 0 && quick.inputs <= 7 * 48, "\(quick)")
        // No time at all: nothing checked, every key visibly not reached, and no failure.
        let none = try Self.check(nil, options: ConformanceOptions(inputsPerKey: 48, timeLimit: 0))
        #expect(none.inputs == 0 && none.stoppedAfter != nil)
        #expect(Set(none.notReached) == Set(none.keys.map(\.key)) && none.keys.count == 7, "\(none)")
        #expect(none.failures.isEmpty && none.passed, "\(none)")
        #expect(none.description.contains("not reached: "))
    }

    @Test func sampleColumnsOfThePluginAreEncodedAndChecked() throws {
        // A 1,000-row column of the plugin's own (the generator makes at most 300 rows) with -0.0 every
        // 40 rows: the negative-zero bug is caught on slices of it longer than any generated column.
        var b = ArrayBuilder(dtype: .primitive(.float64, .nullable), capacity: 1000)
        for i in 0..<1000 {
            b.append(i % 9 == 0 ? .null : .float(i % 40 == 1 ? -0.0 : Double(i * 7919 % 100_000) / 100_000))
        }
        let sample = try b.finish()
        let report = try Self.check(
            .negativeZero,
            options: ConformanceOptions(
                inputsPerKey: 60, twoThreads: false, timingRows: 0, onlyKey: "hook:decimal floats",
                sampleColumns: [sample]))
        let lengths = report.failures.filter { $0.check == .compressorHook }.compactMap { f in
            f.input.split(separator: "len=").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
        }
        #expect(lengths.contains { $0 > 300 }, "\(lengths)\n\(report)")
    }

    /// A sum over a frame of reference that adds 16-bit packed deltas in a UInt32 (an author's "a batch
    /// is at most 64 Ki rows") agrees on every small input and on data-like large ones; the kit's large
    /// input of integers at the top of their span (past 65,536 rows) catches it, and not the same sum
    /// kept in a UInt64.
    @Test func aSumTooNarrowForALargeInputIsCaughtAndARightOneIsNot() throws {
        let options = ConformanceOptions(inputsPerKey: 30, twoThreads: false)
        let right = try PluginConformance.check(NarrowPackedSum.self, options: options)
        #expect(right.failures.isEmpty, "\(right)")
        let wrong = try PluginConformance.check(NarrowPackedSum.Wrapping.self, options: options)
        #expect(
            wrong.failures.contains {
                $0.problem.contains("integers at the top of their span") && $0.key == "eddy.agg.sum|eddy.for"
            }, "\(wrong)")
    }

    @Test func answersCompareBitForBitNegativeZeroAndTheLastBitOfASum() throws {
        let rows: [Double?] = [0.1, 0.2, -0.0, nil, 0.3]
        let column = PrimitiveArray(rows)
        let inputs: [any ArrayNode] = [
            try AggregateFunction(.sum).make(column), try AggregateFunction(.min).make(PrimitiveArray([-0.0, 0.0])),
        ]
        // Right: the engine's own answers pass.
        let right = try KernelConformance.check(RowOrderFloats.self, on: inputs)
        #expect(right.failures.isEmpty && right.neverFired.isEmpty, "\(right)")
        // A sum one bit off (pairwise instead of row order) and a min of +0.0 for -0.0 both fail.
        let report = try KernelConformance.check(AlmostRightFloats.self, on: inputs)
        #expect(report.failures.count == 2, "\(report)")
        #expect(report.failures.contains { $0.problem.contains("0.6000000000000001") }, "\(report)")
        #expect(report.failures.contains { $0.problem.contains("element 0: 0.0, reference -0.0") }, "\(report)")
    }
}

/// Float sum and min over plain f64 columns as the engine computes them.
enum RowOrderFloats: EddyPlugin {
    static let name = "row-order-floats"
    static let version = "1.0.0"
    static func register(into registrar: PluginRegistrar) throws {
        AlmostRightFloats.register(into: registrar, exact: true)
    }
}

/// Float sum and min over plain f64 columns, each wrong in a way only a bit-for-bit comparison sees:
/// the sum pairs values (0.1 + (0.2 + 0.3)), the min forgets the sign of zero.
enum AlmostRightFloats: EddyPlugin {
    static let name = "almost-right-floats"
    static let version = "1.0.0"
    static func register(into registrar: PluginRegistrar) throws { register(into: registrar, exact: false) }

    static func register(into registrar: PluginRegistrar, exact: Bool) {
        registrar.aggregate(.sum, on: PrimitiveArray.self) { array, _ in
            guard array.ptype == .float64 else { return nil }
            let v = try values(array)
            guard !v.isEmpty else { return .null }
            if exact { return .float(v.reduce(0, +)) }
            return .float(v[0] + v.dropFirst().reduce(0, +))
        }
        registrar.aggregate(.min, on: PrimitiveArray.self) { array, _ in
            guard array.ptype == .float64 else { return nil }
            var extremes: Double?
            for x in try values(array) where extremes.map({ x < $0 }) ?? true { extremes = x }
            return extremes.map { .float(exact ? $0 : abs($0)) } ?? .null
        }
    }

    /// The valid values of a plain f64 column, in row order.
    static func values(_ array: PrimitiveArray) throws -> [Double] {
        try array.withValues(Double.self) { v in (0..<v.count).filter(array.validity.isValid).map { v[$0] } }
    }
}

/// A sum over a frame of reference whose packed child has at most 16 bits: reference × valid rows plus
/// the deltas, added in a UInt64 (``Wrapping``: in a UInt32, as if no array passed 65,536 rows).
enum NarrowPackedSum: EddyPlugin {
    static let name = "narrow-packed-sum"
    static let version = "1.0.0"
    static func register(into registrar: PluginRegistrar) throws { register(into: registrar, wraps: false) }

    enum Wrapping: EddyPlugin {
        static let name = "narrow-packed-sum-wrapping"
        static let version = "1.0.0"
        static func register(into registrar: PluginRegistrar) throws {
            NarrowPackedSum.register(into: registrar, wraps: true)
        }
    }

    static func register(into registrar: PluginRegistrar, wraps: Bool) {
        registrar.aggregate(.sum, on: FoRArray.self, name: "sum of narrow deltas") { array, _ in
            guard let packed = array.child as? BitPackedArray, packed.ptype.isUnsignedInteger, packed.bitWidth <= 16,
                case .int(let reference) = array.reference.value,
                !packed.patchIndices.contains(where: { $0 >= packed.offset && $0 < packed.offset + packed.count })
            else { return nil }
            var wide: UInt64 = 0
            var narrow: UInt32 = 0
            var valid = 0
            for i in 0..<packed.count where packed.validity.isValid(i) {
                let v = packed.packedValue(at: packed.offset + i)
                wide &+= v
                narrow &+= UInt32(truncatingIfNeeded: v)
                valid += 1
            }
            guard valid > 0 else { return .null }
            let deltas = wraps ? UInt64(narrow) : wide
            let (base, o1) = reference.multipliedReportingOverflow(by: Int64(valid))
            let (total, o2) = base.addingReportingOverflow(Int64(truncatingIfNeeded: deltas))
            return o1 || o2 ? nil : .int(total)
        }
    }
}
