import DeltaEncodingPlugin
import Eddy
import EddyHostTestSupport
import EddyTesting
import Testing

/// `KernelBenchmark`, the public harness: a real plugin's kernels timed against the engine alone.
@Suite struct KernelBenchmarkTests {
    @Test func generatedInputsRunWithThePluginsKernelsAndTheEngineAlone() throws {
        let inputs = try KernelBenchmark.inputs(for: DeltaPlugin.self, rows: 5_000, seed: 3)
        #expect(inputs.count >= 3, "one input per key the plugin registers")
        let results = try KernelBenchmark.compare(DeltaPlugin.self, on: inputs, repetitions: 2)
        #expect(results.count == inputs.count)
        for r in results {
            print(r)
            #expect(r.problem == nil, "\(r)")
            #expect(r.input.contains("← ") && r.input.contains("ext.delta"), "\(r.input)")
            #expect(r.rows == 5_000, "\(r)")
            #expect(r.withPlugin > 0 && r.builtInsOnly > 0 && r.decodeThenCompute > 0, "\(r)")
            #expect(r.vsBuiltIns != nil && r.vsDecodeThenCompute != nil)
            // Inputs made for the plugin's keys fire its kernels, named with their owner.
            #expect(r.pluginFired, "\(r)")
            #expect(r.fired.contains { $0.isPlugin && $0.owner == "plugin delta@1.0.0" }, "\(r.fired)")
            #expect(r.description.contains("built-ins") && !r.description.contains("no kernel of the plugin fired"))
        }
    }

    @Test func anInputThePluginHasNoKernelForSaysSo() throws {
        // A compare over a plain dictionary: only the engine's kernel fires.
        let dict = try DictArray(codes: PrimitiveArray([UInt8(0), 1, 0, 1]), values: PrimitiveArray([Int64(5), 9]))
        let input = try CompareFunction.make(
            dict, .eq, ConstantArray(Scalar(.int(9), .primitive(.int64, .nonNullable)), count: 4))
        let results = try KernelBenchmark.compare(DeltaPlugin.self, on: [input], repetitions: 1)
        let r = try #require(results.first)
        #expect(!r.pluginFired && r.fired.contains { !$0.isPlugin && $0.owner == "builtin" }, "\(r)")
        #expect(r.description.contains("no kernel of the plugin fired"), "\(r)")
        #expect(r.problem == nil, "\(r)")
    }
}
