import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `--verify`: the real `eddy` binary checks what each new plugin computes before its kernels serve a
/// query. Each of issue 21's five planted bugs in the Decimal fixture is refused at load with a report
/// naming the plugin; the clean build is verified once and then remembered.
@Suite(.serialized) struct VerifyAtLoadTests {
    /// Decimal-looking f64 values with nulls: what the fixture's hook encodes.
    static let csv: String = {
        var text = "id,x\n"
        let values = ["12.34", "0.1", "12.35", "100.25", "", "-3.5", "7", "0.07", "19.99", "12.34"]
        for i in 0..<4000 { text += "\(i),\(values[(i * 7 + i / 10) % values.count])\n" }
        return text
    }()
    static let queries: [[String]] = [
        ["--select", "sum(x), min(x), max(x), count(x)"],
        ["--where", "x = 12.345", "--select", "count(*)"],
        ["--where", "x > 12.34", "--select", "count(*), sum(x)"],
    ]

    /// A time limit no loaded test machine reaches (the default, 10 s at quick, could be cut short on a
    /// machine running the whole suite, and a check not reached refuses the plugin).
    static let unhurried = ["--verify-time-limit", "120"]

    /// A private-copy directory of the test's own (0700, as the host requires): a fresh one runs the
    /// probe, and with it the verification.
    static func copies() -> ScratchDirectory {
        let d = ScratchDirectory()
        chmod(d.path, 0o700)
        return d
    }

    /// `eddy plugins --json` on a directory holding only `plugin`, with its own private-copy directory.
    func scan(_ plugin: String, _ extra: [String] = [], shadow: ScratchDirectory) throws -> (Eddy.Result, [String: Any])
    {
        let dir = ScratchDirectory()
        try dir.copy(plugin, as: "decimal.so")
        let r = try Eddy.run(
            ["plugins", "--plugin-dir", dir.path, "--json"] + Self.unhurried + extra,
            environment: ["EDDY_SHADOW_DIR": shadow.path])
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let files = object?["files"] as? [[String: Any]] ?? []
        return (r, files.first ?? [:])
    }

    /// Each query on the prices CSV without plugins, and with `plugin` in a plugin directory.
    func answers(_ plugin: String, _ extra: [String] = [], shadow: ScratchDirectory) throws -> [(
        query: [String], expected: Eddy.Result, got: Eddy.Result
    )] {
        let data = ScratchDirectory()
        let file = data.write("prices.csv", Self.csv)
        let plugins = ScratchDirectory()
        try plugins.copy(plugin, as: "decimal.so")
        return try Self.queries.map { q in
            let expected = try Eddy.run(["eval", file] + q + ["--format", "csv"])
            let got = try Eddy.run(
                ["eval", file, "--plugin-dir", plugins.path] + extra + Self.unhurried + q + ["--format", "csv"],
                environment: ["EDDY_SHADOW_DIR": shadow.path])
            return (q, expected, got)
        }
    }

    @Test(arguments: DecimalFixture.Bug.allCases)
    func eachPlantedBugIsRefusedAtLoadAndNoQuerySeesIt(bug: DecimalFixture.Bug) throws {
        let plugin = try DecimalFixture.plugin(bug)
        let shadow = Self.copies()
        let (r, row) = try scan(plugin, shadow: shadow)
        #expect(r.status == 1, "\(bug): \(r.stdout) \(r.stderr)")
        #expect(row["status"] as? String == "rejected", "\(bug): \(row)")
        let reason = row["reason"] as? String ?? ""
        #expect(
            reason.contains("refused by verification (--verify quick): plugin decimal 0.1.0: wrong answer"),
            "\(bug): \(reason)")
        // What failed, with how to reproduce it.
        let what: String
        switch bug {
        case .roundedConstant: what = "eddy.compare|fixture.decimal"
        case .exponent, .shortRead: what = "storage of fixture.decimal"
        case .negativeZero: what = "compressor hook 'decimal floats' of plugin decimal@0.1.0 changed the data"
        case .exactSum: what = "eddy.agg.sum|fixture.decimal"
        }
        #expect(reason.contains(what) && reason.contains("reproduce: ConformanceOptions(seed: 21"), "\(bug): \(reason)")
        #expect(row["verified_inputs"] == nil)
        // The probe read the manifest before refusing: the row names the plugin.
        #expect(row["plugin"] as? String == "decimal" && row["version"] as? String == "0.1.0", "\(row)")

        // eval with the buggy build in its directory: a warning naming the file and the refusal, and
        // the engine's own answers.
        for (q, expected, got) in try answers(plugin, shadow: shadow) {
            #expect(expected.status == 0 && got.status == 0, "\(bug): \(got.stderr)")
            #expect(got.stdout == expected.stdout, "\(bug): \(q)")
            #expect(got.stderr.contains("decimal.so rejected: refused by verification"), "\(bug): \(got.stderr)")
        }
    }

    @Test func theCleanBuildIsVerifiedOnceThenRememberedAndItsKernelsServe() throws {
        let plugin = try DecimalFixture.plugin()
        let shadow = Self.copies()
        let (first, row) = try scan(plugin, shadow: shadow)
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        #expect(row["status"] as? String == "loaded" && row["probe"] as? String == "ran", "\(row)")
        let inputs = row["verified_inputs"] as? Int ?? 0
        // Five keys (compare, filter, sum, min, max), a budget of 48 inputs each at quick.
        #expect(inputs >= 150, "\(row)")
        let (second, again) = try scan(plugin, shadow: shadow)
        #expect(second.status == 0)
        #expect(again["probe"] as? String == "passed earlier", "\(again)")
        #expect(again["verified_inputs"] as? Int == inputs, "\(again)")

        // The fixture's hook is a storage hook (the SDK's default purpose): --compression auto never asks
        // it about a CSV read once, so the query asks for storage compression to put its encoding in play.
        for (q, expected, got) in try answers(plugin, ["--explain", "--compression", "storage"], shadow: shadow) {
            #expect(got.status == 0, "\(got.stderr)")
            #expect(got.stdout.hasPrefix(expected.stdout), "\(q): \(got.stdout)")
            #expect((got.stdout + got.stderr).contains("[plugin decimal@0.1.0]"), "\(q): no kernel of the plugin fired")
        }
    }

    /// A wrong answer found at one level (here `eddy plugins --verify full`) holds at every level and in
    /// both programs: `eddy eval` with `--verify off` does not load the same bytes either.
    @Test func aWrongAnswerFoundOnceIsNeverLoadedAgain() throws {
        let plugin = try DecimalFixture.plugin(.roundedConstant)
        let shadow = Self.copies()
        let (full, fullRow) = try scan(plugin, ["--verify", "full"], shadow: shadow)
        #expect(full.status == 1 && fullRow["status"] as? String == "rejected", "\(fullRow)")
        let (off, offRow) = try scan(plugin, ["--verify", "off"], shadow: shadow)
        let why = offRow["reason"] as? String ?? ""
        #expect(off.status == 1 && offRow["status"] as? String == "rejected", "\(offRow)")
        #expect(
            why.contains("wrong answer") && why.contains("not loaded again at any --verify level")
                && offRow["probe"] as? String == "refused earlier", "\(offRow)")
        for (q, expected, got) in try answers(plugin, ["--verify", "off"], shadow: shadow) {
            #expect(got.status == 0 && got.stdout == expected.stdout, "\(q): \(got.stderr)")
            #expect(got.stderr.contains("not loaded again at any --verify level"), "\(q): \(got.stderr)")
        }
        // Other bytes (the clean build) are probed and load.
        let (clean, cleanRow) = try scan(try DecimalFixture.plugin(), shadow: shadow)
        #expect(clean.status == 0 && cleanRow["status"] as? String == "loaded", "\(cleanRow)")
    }

    @Test func verifyOffLoadsWithoutCheckingAndNoProbeVerifiesInTheHost() throws {
        let plugin = try DecimalFixture.plugin(.roundedConstant)
        let (off, row) = try scan(plugin, ["--verify", "off"], shadow: Self.copies())
        #expect(off.status == 0 && row["status"] as? String == "loaded", "\(row)")
        #expect(row["verified_inputs"] == nil)
        let (inHost, refused) = try scan(plugin, ["--no-probe"], shadow: Self.copies())
        #expect(inHost.status == 1)
        #expect((refused["reason"] as? String ?? "").contains("refused by verification (--verify quick)"), "\(refused)")
        let (full, fullRow) = try scan(plugin, ["--verify", "full"], shadow: Self.copies())
        #expect(full.status == 1)
        #expect((fullRow["reason"] as? String ?? "").contains("refused by verification (--verify full)"), "\(fullRow)")
        let bad = try Eddy.run(["plugins", "--verify", "sometimes"])
        #expect(bad.status != 0 && bad.stderr.contains("verify"), "\(bad.stderr)")
        let limit = try Eddy.run(["plugins", "--verify-time-limit", "0"])
        #expect(limit.status != 0 && limit.stderr.contains("--verify-time-limit must be"), "\(limit.stderr)")
        // A time limit too short for every check: a check not reached is not passed (a plugin slow on
        // its first inputs must not serve with keys nobody checked); a refusal is not remembered.
        let clean = try DecimalFixture.plugin()
        let shadow = Self.copies()
        let (short, cut) = try scan(clean, ["--verify-time-limit", "0.001"], shadow: shadow)
        let why = cut["reason"] as? String ?? ""
        #expect(short.status == 1 && why.contains("verification did not finish"), "\(cut)")
        #expect(why.contains("checks were not reached") && why.contains("raise --verify-time-limit"), "\(why)")
        let (_, again) = try scan(clean, ["--verify-time-limit", "0.001"], shadow: shadow)
        #expect(again["probe"] as? String == "ran", "\(again)")
    }
}
