import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Hostile plugins written in C against libEddy.so (see Tests/Fixtures/HostileC/hostile.c), built
/// once per test run.
package enum HostileFixtures {
    package enum Mode: Int, CaseIterable, Sendable {
        case exit = 1, loop = 2, crash = 3, outsideProbe = 4, good = 5, plant = 6, destructor = 7, forge = 8, shrink = 9
        case raise = 10
        package var name: String {
            ["", "exit", "loop", "crash", "outside", "good", "plant", "dtor", "forge", "shrink", "raise"][rawValue]
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var built: [Int: String] = [:]  // guarded by `lock`

    package static func build(_ mode: Mode) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let path = built[mode.rawValue] { return path }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/HostileC/hostile.c").path
        let out = NSTemporaryDirectory() + "eddy-hostile-\(getpid())-\(mode.name).so"
        try compile(
            [
                "cc", "-shared", "-fPIC", "-DMODE=\(mode.rawValue)", "-DMODE_NAME=\"\(mode.name)\"", source,
                "-L" + PluginFiles.buildDirectory, "-Wl,--no-as-needed", "-lEddy", "-o", out,
            ], naming: "\(mode.name)")
        built[mode.rawValue] = out
        return out
    }
}

/// A secret the tests try to read: its bytes must never appear in a response.
package let secretMarker = "EDDY-SECRET-\(UInt32.random(in: 0...UInt32.max))"

/// Hostile query expressions, for the CLI (``InputTrustTests``) and the server (``ServeTrustTests``).
package enum HostileExpressions {
    /// Hostile expressions by name (the names keep test logs short), with the message each gets.
    package static let table: [String: (expression: String, message: String)] = [
        "a superscript digit": ("fare > 2.5²", "unexpected character '²'"),
        "minus minus i64 min": ("- -9223372036854775808 < fare", "-(-9223372036854775808) is out of range for i64"),
        "negated i64 min": ("-(-9223372036854775808) < fare", "is out of range for i64"),
        "1e400": ("fare > 1e400", "number 1e400 is out of range for f64"),
        "an integer past u64": ("fare > 99999999999999999999999", "is out of range"),
        "10,000 parentheses": (
            String(repeating: "(", count: 10_000) + "fare" + String(repeating: ")", count: 10_000) + " > 1",
            "nested too deeply"
        ),
        "5,000 nots": (String(repeating: "not ", count: 5_000) + "true", "nested too deeply"),
        "5,000 minuses": (String(repeating: "- ", count: 5_000) + "fare > 0", "nested too deeply"),
        "a 300-term sum": (Array(repeating: "fare", count: 300).joined(separator: " + ") + " > 0", "nested too deeply"),
    ]
}
