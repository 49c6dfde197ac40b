import DeltaEncodingPlugin
import EddyTesting
import Testing

@Test func theKernelsAgreeWithDecodeThenCompute() throws {
    // Inputs generated for every key the plugin registers (its compare and min/max kernels over
    // `ext.delta`), its compressor hook and its storage: empty, one row, all null, sliced, nested and
    // malformed children; two threads at once; a seed and input index on failure.
    let report = try PluginConformance.check(DeltaPlugin.self)
    if report.passed { print(report) }
    #expect(report.passed, "\(report)")
}
