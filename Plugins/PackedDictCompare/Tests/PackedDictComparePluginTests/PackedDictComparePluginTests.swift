import EddyTesting
import PackedDictComparePlugin
import Testing

@Test func theKernelAgreesWithDecodeThenCompute() throws {
    // Inputs generated for the key the plugin registers (`eddy.compare ← eddy.dict`), among them
    // dictionaries over bit-packed codes of every width it takes; the report times the kernel against
    // the built-in one it replaces.
    let report = try PluginConformance.check(PackedDictComparePlugin.self)
    if report.passed { print(report) }
    #expect(report.passed, "\(report)")
}
