import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `--verify quick` (the default) meets each key's edge values in its first inputs: the `NaNMax`
/// fixture — an f64 `max` folded with `Swift.max`, which drops a NaN that comes after a number — passed
/// the 48 random inputs of quick and made `eddy eval` print 1.5 where the engine prints nan. Now the
/// real binary refuses it at load and every answer is the engine's; the fixed build loads and serves.
@Suite(.serialized) struct EdgeInputVerifyTests {
    /// The fixture built with `swiftc -O` (`fixed`: with the engine's order), once per test run.
    static func build(fixed: Bool) throws -> String {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/NaNMax/NaNMaxPlugin.swift").path
        let tag = fixed ? "fixed" : "buggy"
        let out = NSTemporaryDirectory() + "eddy-nan-max-\(tag)-\(getpid()).so"
        if FileManager.default.fileExists(atPath: out) { return out }
        let build = PluginFiles.buildDirectory
        try compile(
            ["swiftc", "-O", "-emit-library", "-module-name", "NaNMax_\(tag)"] + (fixed ? ["-D", "NAN_MAX_FIXED"] : [])
                + [source, "-I", build + "/Modules", "-L", build, "-lEddy", "-o", out], naming: "NaNMax (\(tag))")
        return out
    }

    /// A column whose NaN comes after numbers, with nulls; and one without NaN.
    static let csv = "id,x,y\n1,1.5,2\n2,nan,3\n3,,4.5\n4,-2.25,-0.5\n5,inf,1\n6,0.5,\n"
    static let queries: [[String]] = [
        ["--select", "max(x), max(y), min(x), count(x)"],
        ["--where", "id > 1", "--select", "max(x)"],
        ["--where", "id <> 2", "--select", "max(x), max(y)"],
    ]

    /// The data directory (kept alive by the caller), the data file, a plugin directory holding `plugin`
    /// and a private-copy directory of the test's own.
    func setUp(_ plugin: String) throws -> (
        dir: ScratchDirectory, data: String, plugins: ScratchDirectory, shadow: ScratchDirectory
    ) {
        let dir = ScratchDirectory()
        let data = dir.write("nan.csv", Self.csv)
        let plugins = ScratchDirectory()
        try plugins.copy(plugin, as: "nan-max.so")
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o700)
        return (dir, data, plugins, shadow)
    }

    @Test func aMaxThatDropsNaNIsRefusedByTheDefaultVerifyAndNoAnswerChanges() throws {
        let (dir, data, plugins, shadow) = try setUp(try Self.build(fixed: false))
        let env = ["EDDY_SHADOW_DIR": shadow.path]
        let scan = try Eddy.run(
            ["plugins", "--plugin-dir", plugins.path, "--json", "--verify-time-limit", "120"], environment: env)
        let object = try JSONSerialization.jsonObject(with: Data(scan.stdout.utf8)) as? [String: Any]
        let row = (object?["files"] as? [[String: Any]])?.first ?? [:]
        #expect(scan.status == 1 && row["status"] as? String == "rejected", "\(scan.stdout) \(scan.stderr)")
        let reason = row["reason"] as? String ?? ""
        #expect(
            reason.contains("refused by verification (--verify quick): plugin nan-max 0.1.0: wrong answer"), "\(reason)"
        )
        #expect(reason.contains("eddy.agg.max|eddy.primitive") && reason.contains("'f64 max in one pass'"), "\(reason)")
        for q in Self.queries {
            let expected = try Eddy.run(["eval", data] + q + ["--format", "csv"])
            let got = try Eddy.run(
                ["eval", data, "--plugin-dir", plugins.path, "--verify-time-limit", "120"] + q + ["--format", "csv"],
                environment: env)
            #expect(expected.status == 0 && got.status == 0, "\(q): \(got.stderr)")
            #expect(got.stdout == expected.stdout, "\(q): \(got.stdout) against \(expected.stdout)")
            #expect(got.stderr.contains("nan-max.so rejected: refused by verification"), "\(got.stderr)")
        }
        withExtendedLifetime(dir) {}
        // The engine's answer: NaN is above every number.
        let first = try Eddy.run(["eval", data] + Self.queries[0] + ["--format", "csv"])
        #expect(first.stdout.split(separator: "\n").last?.hasPrefix("nan,4.5,") == true, "\(first.stdout)")
    }

    @Test func theFixedBuildIsVerifiedAndItsKernelAnswersAsTheEngine() throws {
        let (dir, data, plugins, shadow) = try setUp(try Self.build(fixed: true))
        let env = ["EDDY_SHADOW_DIR": shadow.path]
        for q in Self.queries {
            let expected = try Eddy.run(["eval", data] + q + ["--format", "csv"])
            let got = try Eddy.run(
                ["eval", data, "--plugin-dir", plugins.path, "--verify-time-limit", "120", "--explain"] + q
                    + ["--format", "csv", "--plugin-min-rows", "0"], environment: env)
            #expect(got.status == 0 && !got.stderr.contains("rejected"), "\(q): \(got.stderr)")
            #expect(got.stdout.hasPrefix(expected.stdout), "\(q): \(got.stdout) against \(expected.stdout)")
            #expect((got.stdout + got.stderr).contains("[plugin nan-max@0.1.0]"), "\(q): the kernel did not fire")
        }
        withExtendedLifetime(dir) {}
    }
}
