import DeltaEncodingPlugin
import Eddy
import PackedDictComparePlugin
import Testing

/// The example plugins' kernels through the SDK's conformance harness, as a plugin author would run it.
@Suite struct ConformanceTests {
    @Test func packedDictionaryCompareAgreesWithDecodeThenCompute() throws {
        let registrar = PluginRegistrar(owner: .plugin("packed-dict-compare", version: "test"))
        try PackedDictComparePlugin.register(into: registrar)
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
        let report = KernelConformance.check(registrar.kernels, on: inputs)
        #expect(report.passed, "\(report)")
        #expect((report.fired[PackedDictComparePlugin.kernelName] ?? 0) > 10)
    }

    @Test func deltaKernelsAgreeWithDecodeThenCompute() throws {
        let registrar = PluginRegistrar(owner: .plugin("delta", version: "test"))
        try DeltaPlugin.register(into: registrar)
        var generator = ArrayGenerator(seed: 11)
        var inputs: [any ArrayNode] = []
        for _ in 0..<300 {
            var v = Int64(generator.int(-1000...1000))
            let values = (0..<generator.int(1...400)).map { _ -> Int64 in
                v += Int64(generator.int(0...3))
                return v
            }
            let column = PrimitiveArray(values)
            guard let delta = DeltaArray.encode(column) else { continue }
            let needle = values[generator.int(0...(values.count - 1))] + Int64(generator.int(-2...2))
            let op = CompareOperator.allCases[generator.int(0...5)]
            inputs.append(try CompareFunction.make(delta, op, ConstantArray(.int64(needle), count: delta.count)))
            inputs.append(try AggregateFunction(generator.chance(0.5) ? .min : .max).make(delta))
        }
        let report = KernelConformance.check(registrar.kernels, on: inputs)
        #expect(report.passed, "\(report)")
    }

    @Test func theHarnessCatchesAWrongKernel() throws {
        // A kernel that answers "true" for every row of a dictionary comparison.
        let wrong = ExecuteParentKernel("always true", owner: .plugin("bad", version: "1"), parent: CompareFunction.id,
                                        child: DictArray.id) { parent, _, _, _ in
            BoolArray(bits: Bitmap(repeating: true, count: parent.count), nullability: parent.dtype.nullability)
        }
        var generator = ArrayGenerator(seed: 3)
        let inputs = try (0..<50).map { _ in try generator.compareOverEncoded(dtypes: [.utf8(.nonNullable)]) }
        let report = KernelConformance.check([wrong], on: inputs)
        #expect(!report.failures.isEmpty)
    }
}
