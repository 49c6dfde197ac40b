@_spi(Host) import Eddy
import EddyHostTestSupport
@_spi(Host) import EddyIO
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A plugin encoding read from an `.eddy` file, through the real `eddy` binary: the Decimal fixture's
/// clean build gives the CSV's answers; a build whose storage reader gets the file wrong (the exponent
/// off by one, the last row dropped) is an error naming the plugin, its version and the check of the
/// footer's statistics that failed — never a wrong answer with exit status 0.
///
/// The buggy builds run with `--verify off`: verification at load refuses them before any query, and
/// these tests are about what the reader checks when a bug gets past that (a sampled check does not
/// prove a plugin right).
@Suite(.serialized) struct PluginStorageChecksTests {
    static let queries: [[String]] = [
        ["--select", "sum(x), min(x), max(x), count(x)"],
        ["--where", "x > 12.34", "--select", "count(*), sum(x)"],
        ["--where", "x < 1", "--select", "id, x"],
    ]

    func eval(_ file: String, _ query: [String], plugins: String?, _ extra: [String] = []) throws -> Eddy.Result {
        try Eddy.run(
            ["eval", file] + query + ["--format", "csv", "--batch-rows", String(DecimalFixture.chunkRows)]
                + (plugins.map { ["--plugin-dir", $0] } ?? []) + extra)
    }

    @Test func theCleanPluginReadsTheFileWithTheCSVsAnswers() throws {
        let data = ScratchDirectory()
        let (csv, eddy) = try DecimalFixture.files(in: data)
        let clean = try DecimalFixture.pluginDirectory(nil)
        for q in Self.queries {
            let expected = try eval(csv, q, plugins: nil)
            let got = try eval(eddy, q, plugins: clean.path)
            #expect(expected.status == 0 && got.status == 0, "\(q): \(got.stderr)")
            #expect(expected.stdout.split(separator: "\n").count > 1, "\(q): \(expected.stdout)")
            #expect(got.stdout == expected.stdout, "\(q)")
        }
    }

    /// The exponent off by one decodes every value ten times too small: the chunk's min and max
    /// contradict the footer. The error names the plugin, its version, the file and the check.
    @Test func aReaderWithTheExponentOffByOneIsAnErrorNamingThePluginAndTheStatistics() throws {
        let data = ScratchDirectory()
        let (csv, eddy) = try DecimalFixture.files(in: data)
        let buggy = try DecimalFixture.pluginDirectory(.exponent)
        for q in Self.queries {
            let expected = try eval(csv, q, plugins: nil)
            let got = try eval(eddy, q, plugins: buggy.path, ["--verify", "off"])
            #expect(got.status != 0, "\(q): exit 0 with \(got.stdout)")
            #expect(got.stderr.contains("plugin decimal 0.1.0"), "\(q): \(got.stderr)")
            #expect(got.stderr.contains(eddy), "\(q): \(got.stderr)")
            #expect(got.stderr.contains("of column 'x'"), "\(q): \(got.stderr)")
            #expect(
                got.stderr.contains("the file's statistics say")
                    && (got.stderr.contains("(min check)") || got.stderr.contains("(max check)")),
                "\(q): \(got.stderr)")
            // No result line at all, so none that differs from the CSV's.
            let lines = got.stdout.split(separator: "\n")
            #expect(lines.count <= 1, "\(q): \(got.stdout)")
            #expect(lines.dropFirst().allSatisfy { expected.stdout.contains($0) })
        }
    }

    /// The last row dropped: the chunk decodes to one row fewer than the footer's row count.
    @Test func aReaderThatDropsTheLastRowIsAnErrorNamingThePluginAndTheRowCount() throws {
        let data = ScratchDirectory()
        let (_, eddy) = try DecimalFixture.files(in: data)
        let buggy = try DecimalFixture.pluginDirectory(.shortRead)
        for q in Self.queries {
            let got = try eval(eddy, q, plugins: buggy.path, ["--verify", "off"])
            #expect(got.status != 0, "\(q): exit 0 with \(got.stdout)")
            #expect(
                got.stderr.contains(
                    "plugin decimal 0.1.0: chunk 0 of column 'x' decoded to 999 rows, "
                        + "the file's statistics say 1000 (row count check)"),
                "\(q): \(got.stderr)")
            #expect(got.stderr.contains(eddy), "\(q): \(got.stderr)")
            #expect(got.stdout.split(separator: "\n").count <= 1, "\(q): \(got.stdout)")
        }
    }

    /// A hook that stores -0.0 as 0.0 (issue 21's fourth bug) writes a file whose statistics say min
    /// -0.0: reading it back with no -0.0 among the values is an error, not min(1/x) = inf.
    @Test func aZeroOfTheWrongSignIsCaughtByTheMinCheck() throws {
        let data = ScratchDirectory()
        var text = "id,x\n"
        // Many distinct positive cents (so the plugin's encoding wins over a dictionary) and one -0.0,
        // which is then the column's min.
        for i in 0..<1500 {
            let cents = (i * 37) % 5000 + 1
            text += "\(i),\(i == 700 ? "-0.0" : "\(cents / 100).\(cents % 100 < 10 ? "0" : "")\(cents % 100)")\n"
        }
        let csv = data.write("zeros.csv", text)
        let eddy = data.path + "/zeros.eddy"
        let buggy = try DecimalFixture.pluginDirectory(.negativeZero)
        let converted = try Eddy.run(["convert", csv, eddy, "--plugin-dir", buggy.path, "--verify", "off"])
        try #require(converted.status == 0, "\(converted.stderr)")
        let inspected = try Eddy.run(["inspect", eddy, "--plugin-dir", buggy.path, "--verify", "off"])
        try #require(inspected.stdout.contains("fixture.decimal(f64?)"), "\(inspected.stdout)")
        let truth = try eval(csv, ["--select", "min(x), min(1 / x)"], plugins: nil)
        #expect(truth.stdout.contains("-0.0") && truth.stdout.contains("-inf"), "\(truth.stdout)")
        let got = try eval(eddy, ["--select", "min(x), min(1 / x)"], plugins: buggy.path, ["--verify", "off"])
        #expect(got.status != 0, "exit 0 with \(got.stdout)")
        #expect(
            got.stderr.contains("plugin decimal 0.1.0") && got.stderr.contains("(min check)"), "\(got.stderr)")
        #expect(got.stdout.split(separator: "\n").count <= 1, "\(got.stdout)")
    }

    /// A chunk the query does not read is not decoded to be checked: `id` alone reads no plugin chunk,
    /// and count(*) alone is the footer's.
    @Test func aQueryThatReadsNoPluginChunkIsNotChecked() throws {
        let data = ScratchDirectory()
        let (csv, eddy) = try DecimalFixture.files(in: data)
        let buggy = try DecimalFixture.pluginDirectory(.exponent)
        for q in [["--select", "sum(id), count(*)"], ["--select", "count(*)"]] {
            let expected = try eval(csv, q, plugins: nil)
            let got = try eval(eddy, q, plugins: buggy.path, ["--verify", "off"])
            #expect(got.status == 0, "\(q): \(got.stderr)")
            #expect(got.stdout == expected.stdout, "\(q)")
        }
    }

    /// What the check recomputes from a decoded chunk equals what `eddy convert` wrote for the same
    /// column — NaN, infinities, signed zeros, nulls, all nulls, f32 — so a clean file never fails it.
    @Test func theCheckRecomputesTheWritersStatistics() throws {
        let columns: [any ArrayNode] = [
            PrimitiveArray([12.34, nil, 0.1, -3.5, nil] as [Double?]),
            PrimitiveArray([1.0, .nan, -2.0] as [Double]),
            PrimitiveArray([Double.nan, .nan] as [Double]),
            PrimitiveArray([-0.0, 0.0, .infinity, nil, -.infinity] as [Double?]),
            PrimitiveArray([nil, nil] as [Double?]),
            PrimitiveArray([Float(2.5), nil, .nan, -1] as [Float?]),
            PrimitiveArray([Int64(7), nil, -9] as [Int64?]),
        ]
        let ctx = Session().makeContext()
        // As the reader compares bounds: floats as numbers, NaN equal to NaN.
        func same(_ a: ScalarValue, _ b: ScalarValue) -> Bool {
            if case .float(let x) = a, case .float(let y) = b { return x == y || (x.isNaN && y.isNaN) }
            return a == b
        }
        for column in columns {
            let written = try EddyConvert.statistics(column, ctx: ctx)
            let found = try ChunkStatistics.of(column)
            #expect(found.nulls == written.nullCount, "\(column.treeDescription())")
            for (claimed, value) in [(written.min, found.min), (written.max, found.max)] {
                #expect(
                    claimed.map { same($0.value, value) } ?? value.isNull,
                    "\(column.treeDescription()): wrote \(String(describing: claimed)), recomputed \(value)")
            }
        }
    }

    /// `--explain` labels the decode step of the plugin's encoding with the plugin, as kernel steps are.
    @Test func explainLabelsThePluginEncodingsDecodeStepWithThePlugin() throws {
        let data = ScratchDirectory()
        let (_, eddy) = try DecimalFixture.files(in: data)
        let clean = try DecimalFixture.pluginDirectory(nil)
        let r = try eval(eddy, ["--select", "x * 2"], plugins: clean.path, ["--explain"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("execute fixture.decimal [plugin decimal@0.1.0]"), "\(r.stderr)")
        #expect(!r.stderr.contains("fixture.decimal [builtin]"), "\(r.stderr)")
    }
}
