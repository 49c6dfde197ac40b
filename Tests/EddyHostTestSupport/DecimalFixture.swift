import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The `Decimal` fixture (Tests/Fixtures/Decimal): issue 21's third-party f64 encoding with a hook,
/// storage and kernels, built clean or with one realistic bug planted, as a real plugin `.so`.
package enum DecimalFixture {
    /// The bugs the fixture can be built with (`-D DECIMAL_BUG_<rawValue>`).
    package enum Bug: String, CaseIterable, Sendable, CustomStringConvertible {
        /// compare scales the constant to the nearest integer: `x = 12.345` matches 12.35.
        case roundedConstant = "ROUNDED_CONSTANT"
        /// The storage reader's exponent is off by one.
        case exponent = "EXPONENT"
        /// The storage reader drops the last row.
        case shortRead = "SHORT_READ"
        /// The hook accepts -0.0 and decodes it as +0.0.
        case negativeZero = "NEGATIVE_ZERO"
        /// sum adds the integers exactly, where the engine sums doubles in row order.
        case exactSum = "EXACT_SUM"

        package var description: String { rawValue.lowercased() }
    }

    /// The built `.so` of each variant (nil: clean), built once per test run with `swiftc -O`.
    private static let built = Mutex<[String: String]>([:])

    /// The fixture built with `bug` planted (nil: clean), as a `.so` in a temporary directory. Each
    /// variant has its own module name, so several can be loaded into one test process.
    package static func plugin(_ bug: Bug? = nil) throws -> String {
        // One build at a time: two tests asking for the same variant at once would write one file.
        try building.withLock { _ in try build(bug) }
    }

    private static let building = Mutex<Void>(())

    /// Version 0.2.0 of the clean fixture, whose sum kernel traps (`-D DECIMAL_CRASH`): a newer build
    /// that crashes its worker on `sum(x)` over a decimal column.
    package static func crashingPlugin() throws -> String {
        try building.withLock { _ in try build(nil, tag: "CRASH", defines: ["DECIMAL_CRASH"]) }
    }

    /// Version 0.2.0 of the fixture (`-D DECIMAL_V2`), clean or with `bug` planted: a new build for the
    /// server's canary.
    package static func version2(_ bug: Bug? = nil) throws -> String {
        try building.withLock { _ in try build(bug, tag: "V2_" + (bug?.rawValue ?? "CLEAN"), defines: ["DECIMAL_V2"]) }
    }

    private static func build(_ bug: Bug?, tag explicitTag: String? = nil, defines: [String] = []) throws -> String {
        let tag = explicitTag ?? bug?.rawValue ?? "CLEAN"
        if let path = built.withLock({ $0[tag] }) { return path }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/Decimal/DecimalPlugin.swift").path
        let out = NSTemporaryDirectory() + "eddy-decimal-\(tag.lowercased())-\(getpid()).so"
        let build = PluginFiles.buildDirectory
        try compile(
            ["swiftc", "-O", "-emit-library", "-module-name", "Decimal_\(tag)", "-D", "DECIMAL_SO"]
                + (bug.map { ["-D", "DECIMAL_BUG_\($0.rawValue)"] } ?? []) + defines.flatMap { ["-D", $0] } + [
                    source, "-I", build + "/Modules", "-L", build, "-lEddy", "-o", out,
                ], naming: "the Decimal fixture (\(tag))")
        built.withLock { $0[tag] = out }
        return out
    }
}
