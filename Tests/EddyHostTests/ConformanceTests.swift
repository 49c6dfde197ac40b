import DeltaEncodingPlugin
@_spi(Host) import Eddy
import EddyHostTestSupport
import EddyTesting
import PackedDictComparePlugin
import Testing

/// `count(column)` over plain i64 columns, wrong by one past 1,000 rows.
enum WrongWhenLarge: EddyPlugin {
    static let name = "wrong-when-large"
    static let version = "1.0.0"
    static func register(into registrar: PluginRegistrar) throws {
        registrar.aggregate(.countAll, on: PrimitiveArray.self) { array, _ in
            .int(Int64(array.count + (array.count > 1_000 ? 1 : 0)))
        }
    }
}

/// A sum over plain i64 columns that zeroes the values it reads, then sums the zeros.
enum MutatesInput: EddyPlugin {
    static let name = "mutates-input"
    static let version = "1.0.0"
    static func register(into registrar: PluginRegistrar) throws {
        registrar.aggregate(.sum, on: PrimitiveArray.self) { array, _ in
            guard array.ptype == .int64, array.count > 0 else { return nil }
            let p = UnsafeMutableRawPointer(mutating: array.buffer.baseAddress)
            for i in 0..<array.count { p.storeBytes(of: Int64(0), toByteOffset: 8 * i, as: Int64.self) }
            return .int(0)
        }
    }
}

/// A `like` over a dictionary, once per distinct value, as a plugin author would write it: with the
/// SDK's ``DictArray/mapCodes(through:_:)``, or (`plantOffByOne`) by hand with a table of per-value
/// results rounded up to whole 64-bit words and a bounds check `<=` where `<` was meant: a code equal
/// to the number of values then reads the table's padding instead of failing.
enum DictLikePlugin: EddyPlugin {
    static let name = "dict-like"
    static let version = "1.0.0"
    nonisolated(unsafe) static var plantOffByOne = false

    static func register(into registrar: PluginRegistrar) throws {
        let offByOne = plantOffByOne
        registrar.like(on: DictArray.self) { dict, pattern, ctx in
            guard let values = try ctx.execute(dict.values) as? VarBinArray else { return nil }
            guard offByOne else {
                // The SDK's way: the pattern once per distinct value, mapped back through the codes.
                let perValue = try BoolArray(
                    bits: Bitmap(count: values.count) { v in values.withBytes(at: v) { pattern.matches(utf8: $0) } },
                    validity: values.validity, nullability: values.dtype.nullability)
                return try dict.mapCodes(through: perValue, ctx)
            }
            guard let codes = try ctx.execute(dict.codes) as? PrimitiveArray, codes.ptype == .uint32,
                case .allValid = codes.validity
            else { return nil }
            let padded = (values.count + 63) / 64 * 64
            var table = [Bool](repeating: false, count: padded)
            for v in 0..<values.count { table[v] = values.withBytes(at: v) { pattern.matches(utf8: $0) } }
            let rows = try codes.values(UInt32.self)
            for c in rows where Int(c) > values.count {  // the planted bug: should be >=
                throw EddyError(.outOfBounds, "dictionary code \(c) out of bounds for \(values.count) values")
            }
            let valid = Bitmap(count: rows.count) {
                values.validity.isValid(Int(rows[$0])) || Int(rows[$0]) >= values.count
            }
            let validity: Validity = values.validity.nullCount(values.count) == 0 ? .allValid : .bitmap(valid)
            return try BoolArray(
                bits: Bitmap(count: rows.count) { table[Int(rows[$0])] }, validity: validity,
                nullability: dict.dtype.nullability)
        }
    }
}

/// `sum` over bit-packed unsigned values, off by one when the width is under 8 (as the third-party
/// author's trial planted it): widths 1 to 7 are what the compressor writes for small values.
enum WrongUnderEightBits: EddyPlugin {
    static let name = "wrong-under-eight-bits"
    static let version = "1.0.0"
    static func register(into registrar: PluginRegistrar) throws {
        registrar.aggregate(.sum, on: BitPackedArray.self) { packed, ctx in
            guard packed.patchIndices.isEmpty, packed.bitWidth < 8,
                let plain = try ctx.execute(packed) as? PrimitiveArray
            else { return nil }
            let values = plain.int128Values()
            var total: Int128 = 0
            var any = false
            for i in 0..<plain.count where plain.validity.isValid(i) {
                total += values[i]
                any = true
            }
            return any ? .uint(UInt64(clamping: total) + 1) : .null
        }
    }
}

/// A comparison over a dictionary with bit-packed codes as the third-party author's trial first wrote it:
/// each row's code read from the start of the packed buffer (`packedValue(at: i)`) instead of from the
/// view's offset (`codes.offset + i`), and null codes read as codes. Right on every dictionary whose codes
/// start their buffer and have no nulls, which were the only ones the kit generated.
enum DictCompareIgnoringOffset: EddyPlugin {
    static let name = "dict-compare-ignoring-offset"
    static let version = "1.0.0"
    static func register(into registrar: PluginRegistrar) throws {
        registrar.compare(on: DictArray.self) { dict, op, scalar, ctx in
            guard let codes = dict.codes as? BitPackedArray, codes.patchIndices.isEmpty else { return nil }
            let values = try ctx.execute(dict.values)
            let perValue = try ctx.execute(CompareFunction.make(values, op, ConstantArray(scalar, count: values.count)))
            guard let answers = perValue as? BoolArray, case .allValid = answers.validity else { return nil }
            let rows = (0..<codes.count).map { Int(codes.packedValue(at: $0)) }  // the bug: at offset + i
            guard rows.allSatisfy({ $0 < answers.count }) else { return nil }
            return try BoolArray(
                bits: Bitmap(count: rows.count) { answers.bits[rows[$0]] },
                validity: dict.dtype.isNullable ? .bitmap(Bitmap(repeating: true, count: rows.count)) : .allValid,
                nullability: dict.dtype.nullability)
        }
    }
}

/// `min` over sparse f64 columns as the second third-party author's trial planted it: the best patch
/// against the fill, where a tie (0.0 filling most rows, -0.0 in a patch) keeps the patch instead of
/// whichever comes first in row order, as the engine does. The edge columns held each zero once among
/// the infinities, so a zero was never the minimum; the kit, `--verify quick` and `full` passed it.
enum SparseMinPreferringPatches: EddyPlugin {
    static let name = "sparse-min-preferring-patches"
    static let version = "1.0.0"
    static func register(into registrar: PluginRegistrar) throws {
        registrar.aggregate(.min, on: SparseArray.self) { sparse, ctx in
            guard case .primitive(.float64, _) = sparse.dtype,
                let patches = try ctx.execute(sparse.values) as? PrimitiveArray
            else { return nil }
            let values = try patches.values(Double.self)
            let validity = patches.validity
            var best: Double?
            for (i, x) in values.enumerated() where validity.isValid(i) {
                if x.isNaN { return nil }
                if best.map({ x < $0 }) ?? true { best = x }
            }
            if sparse.count > values.count {
                guard case .float(let fill) = sparse.fill.value, !fill.isNaN else { return nil }
                if best.map({ fill < $0 }) ?? true { best = fill }  // the bug: a tie keeps the patch
            }
            return best.map { .float($0) } ?? .null
        }
    }
}

/// The example plugins' kernels through the SDK's conformance harness, as a plugin author would run it.
@Suite struct ConformanceTests {
    @Test func theExamplePluginsPassTheKit() throws {
        for report in [
            try PluginConformance.check(PackedDictComparePlugin.self),
            try PluginConformance.check(DeltaPlugin.self),
        ] {
            print(report)
            #expect(report.passed, "\(report)")
        }
    }

    @Test func theKitTimesAPluginAgainstTheBuiltInKernelItReplaces() throws {
        // eddy.compare|eddy.dict has a built-in kernel; the delta plugin's keys (ext.delta) have none.
        let packed = try PluginConformance.check(
            PackedDictComparePlugin.self, options: ConformanceOptions(inputsPerKey: 40, timingRows: 50_000))
        let dict = try #require(packed.keys.first { $0.key == "eddy.compare|eddy.dict" }, "\(packed)")
        #expect(dict.builtInRatio != nil && dict.speedRatio != nil, "\(packed)")
        #expect(dict.description.contains("vs the built-in kernel"), "\(packed)")
        let delta = try PluginConformance.check(
            DeltaPlugin.self, options: ConformanceOptions(inputsPerKey: 40, timingRows: 50_000))
        #expect(delta.keys.contains { $0.speedRatio != nil }, "\(delta)")
        #expect(delta.keys.allSatisfy { $0.builtInRatio == nil }, "\(delta)")
        // What a slower plugin is told (the flag itself, not a clock).
        var slow = KeyReport(key: "eddy.compare|eddy.dict")
        slow.builtInRatio = 2
        var fast = KeyReport(key: "eddy.compare|eddy.runend")
        fast.builtInRatio = 0.5
        let report = ConformanceReport(keys: [slow, fast])
        #expect(slow.description.contains("SLOWER than the built-in kernel it replaces"))
        #expect(!fast.description.contains("SLOWER"))
        #expect(report.slowerThanBuiltIn == ["eddy.compare|eddy.dict"])
        #expect(report.description.contains("slower than the built-in kernels they replace: eddy.compare|eddy.dict"))
    }

    @Test func theBuiltinKernelsPassTheKit() throws {
        let report = PluginConformance.checkBuiltins(options: ConformanceOptions(inputsPerKey: 120, timingRows: 0))
        print(report)
        #expect(report.passed, "\(report)")
        #expect(report.keys.count > 20)
    }

    @Test func theKitCatchesAnOffByOneInABoundsCheck() throws {
        DictLikePlugin.plantOffByOne = false
        let good = try PluginConformance.check(DictLikePlugin.self, options: ConformanceOptions(timingRows: 0))
        #expect(good.passed, "\(good)")
        DictLikePlugin.plantOffByOne = true
        defer { DictLikePlugin.plantOffByOne = false }
        let planted = try PluginConformance.check(DictLikePlugin.self, options: ConformanceOptions(timingRows: 0))
        #expect(!planted.passed)
        let first = try #require(planted.failures.first)
        #expect(first.problem.contains("the reference failed where kernels did not"))
        #expect(
            first.problem.contains(
                "reproduce: ConformanceOptions(seed: 1, onlyKey: \"eddy.like|eddy.dict\", onlyInput:"))
    }

    @Test func theKitGeneratesThePackedWidthsTheCompressorWrites() throws {
        let report = try PluginConformance.check(
            WrongUnderEightBits.self, options: ConformanceOptions(inputsPerKey: 300, timingRows: 0))
        // Caught as a wrong answer (with the old generator's widths, 8 and up, it never fired).
        #expect(report.failures.contains { $0.problem.contains("reference") }, "\(report)")
        #expect(!"\(report)".contains("never fired"), "\(report)")
    }

    @Test func theKitGeneratesDictionaryCodesAsFilesHoldThem() throws {
        // Codes that are a view at an offset into their buffer, and null codes: the trial's kernel ignored
        // both and passed the kit (286 inputs) and --verify full (374) before the generator made them.
        let report = try PluginConformance.check(
            DictCompareIgnoringOffset.self, options: ConformanceOptions(inputsPerKey: 300, timingRows: 0))
        #expect(report.failures.contains { $0.problem.contains("reference") }, "\(report)")
        // A failure shows the code the row holds and the value it names.
        #expect(report.failures.contains { $0.problem.contains(" of the input is code ") }, "\(report)")
        var generator = ArrayGenerator(seed: 3)
        var (offset, nullCodes, narrow) = (0, 0, 0)
        for _ in 0..<300 {
            let column = try generator.column(.utf8(.nullable), count: generator.int(1...200))
            guard let dict = try generator.encode(column, as: DictArray.id, depth: 1) as? DictArray else { continue }
            if let packed = dict.codes as? BitPackedArray, packed.offset > 0 { offset += 1 }
            if case .bitmap = (dict.codes as? PrimitiveArray)?.validity ?? (dict.codes as? BitPackedArray)?.validity {
                nullCodes += 1
            }
            if dict.codes.dtype.ptype == .uint8 { narrow += 1 }
        }
        #expect(offset > 10 && nullCodes > 10 && narrow > 10, "offset \(offset), null codes \(nullCodes), u8 \(narrow)")
    }

    @Test func edgeColumnsHoldEachEdgeOnceAndNeverInTheFirstRow() throws {
        var generator = ArrayGenerator(seed: 5)
        for count in [0, 3, 40, 4097] {
            for dtype: DType in [.primitive(.float64, .nullable), .primitive(.float32, .nonNullable)] {
                let column = try #require(try generator.edgeColumn(dtype, count: count))
                let values = try (0..<column.count).map { try column.scalar(at: $0).value }
                #expect(column.count >= count && column.count >= 20, "\(dtype) \(count)")
                #expect(!values[0].isIdentical(to: .float(.nan)))
                for edge: Double in [.nan, .infinity, -.infinity, -0.0, 0.0] {
                    let rows = values.indices.filter { values[$0].isIdentical(to: .float(edge)) }
                    #expect(rows.count == 1 && rows[0] > 0, "\(dtype) \(count): \(edge) at \(rows)")
                }
            }
            let ints = try #require(try generator.edgeColumn(.primitive(.int64, .nullable), count: count))
            let values = try (0..<ints.count).map { try ints.scalar(at: $0).value }
            #expect(
                values.contains { $0.isIdentical(to: .int(.min)) } && values.contains { $0.isIdentical(to: .int(.max)) }
            )
        }
        #expect(try generator.edgeColumn(.bool(.nullable), count: 10) == nil)
    }

    @Test func quickBudgetCatchesATieBetweenSignedZerosBrokenTheWrongWay() throws {
        // --verify quick's options: the edge inputs include columns whose minimum is a tie of 0.0 and -0.0.
        let report = try PluginConformance.check(
            SparseMinPreferringPatches.self,
            options: ConformanceOptions(seed: 21, inputsPerKey: 48, twoThreads: false, timingRows: 0))
        #expect(report.failures.contains { $0.problem.contains("reference") }, "\(report)")
        var generator = ArrayGenerator(seed: 9)
        let column = try #require(try generator.signedZerosColumn(.primitive(.float64, .nonNullable), count: 40))
        let values = try (0..<column.count).map { try column.scalar(at: $0).value }
        let zeros = values.filter { $0.isIdentical(to: .float(0.0)) || $0.isIdentical(to: .float(-0.0)) }
        #expect(zeros.count == values.count && values.count == 40)
        #expect(
            values.contains { $0.isIdentical(to: .float(-0.0)) } && values.contains { $0.isIdentical(to: .float(0.0)) })
    }

    @Test func theKitCatchesKernelsWrongOnlyOnLargeInputsOrThatChangeTheirInput() throws {
        // Wrong only past 1,000 rows: beyond the generated sizes, caught on the timing input.
        let large = try PluginConformance.check(WrongWhenLarge.self, options: ConformanceOptions(inputsPerKey: 60))
        #expect(large.failures.contains { $0.problem.contains("-row input:") }, "\(large)")
        // Zeroes its input's values, then answers for zeros.
        let mutating = try PluginConformance.check(
            MutatesInput.self, options: ConformanceOptions(inputsPerKey: 100, timingRows: 0))
        #expect(!mutating.passed, "\(mutating)")
    }

    @Test func packedDictionaryCompareOnEveryPackedWidth() throws {
        var generator = ArrayGenerator(seed: 7)
        var inputs: [any ArrayNode] = []
        for _ in 0..<400 { inputs.append(try generator.compareOverEncoded()) }
        // Dictionaries with bit-packed codes of every width the kernel takes, with odd lengths and slices.
        for width in 1...7 {
            let n = generator.int(1...700)
            let values = VarBinArray((0..<(1 << width)).map { "v\($0)" })
            let codes = PrimitiveArray((0..<n).map { _ in UInt8(generator.int(0...((1 << width) - 1))) })
            let dict = try DictArray(codes: BitPackedArray.encode(codes, bitWidth: width), values: values)
            let start = generator.int(0...(n / 2))
            let sliced = try BitPackedArray.encode(codes, bitWidth: width).slice(start, n - start)
            for node in [dict, try DictArray(codes: sliced, values: values)] as [any ArrayNode] {
                inputs.append(try CompareFunction.make(node, .eq, ConstantArray(.utf8("v1"), count: node.count)))
            }
        }
        let report = try KernelConformance.check(PackedDictComparePlugin.self, on: inputs)
        #expect(report.passed, "\(report)")
        #expect((report.fired[PackedDictComparePlugin.kernelName] ?? 0) > 10)
    }

    @Test func theHarnessCatchesAWrongKernel() throws {
        // A kernel that answers "true" for every row of a dictionary comparison.
        let wrong = ExecuteParentKernel(
            "always true", owner: .plugin("bad", version: "1"), parent: CompareFunction.id,
            child: DictArray.id
        ) { parent, _, _, _ in
            try BoolArray(bits: Bitmap(repeating: true, count: parent.count), nullability: parent.dtype.nullability)
        }
        var generator = ArrayGenerator(seed: 3)
        let inputs = try (0..<50).map { _ in try generator.compareOverEncoded(dtypes: [.utf8(.nonNullable)]) }
        let report = KernelConformance.check([wrong], on: inputs)
        #expect(!report.failures.isEmpty)
    }
}
