import EddyHostTestSupport
import Foundation
import Testing

/// What a careless or hostile user met in the query path (issue 27): a wide file that took minutes,
/// names that print alike merged or kept their quotes, a literal blamed on a row, and a failed query
/// that left part of its result on standard output as if it were all of it.
@Suite struct QueryHostileTests {
    /// `count` columns named c0…, one row of their indexes.
    static func wideCSV(_ dir: ScratchDirectory, columns count: Int) -> String {
        let header = (0..<count).map { "c\($0)" }.joined(separator: ",")
        let row = (0..<count).map { String($0) }.joined(separator: ",")
        return dir.write("wide.csv", header + "\n" + row + "\n")
    }

    @Test func aFileWithAHundredThousandColumnsIsReadInOnePass() throws {
        // The binder found each column by a linear search: 100,000 columns took 192 s. `timeout` is a
        // guard against a hang, not a speed target (the benchmark-free figure: ~2 s in a debug build).
        let dir = ScratchDirectory()
        let path = Self.wideCSV(dir, columns: 100_000)
        let r = try Eddy.run(
            ["eval", path, "--format", "csv", "--where", "c99999 = 99999"], launcher: ["/usr/bin/timeout", "120"])
        #expect(r.status == 0, "timed out or failed: \(r.status) \(r.stderr.prefix(300))")
        let lines = r.stdout.split(separator: "\n")
        try #require(lines.count == 2)
        let names = lines[0].split(separator: ",")
        let values = lines[1].split(separator: ",")
        #expect(names.count == 100_000 && values.count == 100_000)
        #expect(names.last == "c99999" && values[12_345] == "12345" && values.last == "99999")
    }

    @Test func wideUploadsDoNotHoldTheServersWorkers() throws {
        // Three 350 KB uploads of 40,000 columns held every worker until the eval timeout; now each is
        // answered, and with a 60 s eval timeout (a guard, not a speed target) none times out.
        let header = (0..<40_000).map { "c\($0)" }.joined(separator: ",")
        let row = (0..<40_000).map { String($0 % 10) }.joined(separator: ",")
        let body = Data((header + "\n" + row + "\n").utf8)
        let server = try Server(
            pluginDir: ScratchDirectory().path, arguments: ["--workers", "2", "--eval-timeout", "60"])
        for _ in 0..<3 {
            let (status, reply) = try server.request(
                "POST", "/eval?select=count(*),sum(c39999)", body: body, contentType: "text/csv")
            #expect(status == 200, "\(reply)")
            let first = (reply["result"] as? [[String: Any]])?.first
            #expect(first?["count(*)"] as? Int == 1 && first?["sum(c39999)"] as? Int == 9, "\(reply)")
            let (all, whole) = try server.request("POST", "/eval?format=csv", body: body, contentType: "text/csv")
            #expect(all == 200, "\(whole)")
        }
    }

    @Test func jsonLinesKeysThatDifferOnlyInNormalizationAreRefusedNotMerged() throws {
        let dir = ScratchDirectory()
        // café in NFC (U+00E9) and in NFD (e U+0301): one Dictionary key, so one value was dropped.
        for (name, text) in [
            ("same-object.jsonl", "{\"caf\u{E9}\": 1, \"cafe\u{301}\": 2}\n"),
            ("two-lines.jsonl", "{\"caf\u{E9}\": 1}\n{\"cafe\u{301}\": 2}\n"),
        ] {
            let r = try Eddy.run(["eval", dir.write(name, text), "--select", "count(*)"])
            #expect(r.status == 1, "\(name): \(r.stdout)")
            #expect(r.stderr.contains("differ only in Unicode normalization"), "\(name): \(r.stderr)")
            #expect(r.stderr.contains("U+E9") && r.stderr.contains("U+301"), "\(name): \(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        // The same key written the same way twice in one object stays JSON's last-wins.
        let same = try Eddy.run([
            "eval", dir.write("dup.jsonl", "{\"caf\u{E9}\": 1, \"caf\u{E9}\": 2}\n"), "--format", "csv",
        ])
        #expect(same.status == 0 && same.stdout == "caf\u{E9}\n2\n", "\(same.stdout) \(same.stderr)")
        // CSV refused such a header already; it now says why two names that look different are one.
        let csv = try Eddy.run(["eval", dir.write("k.csv", "K,\u{212A}\n1,2\n")])
        #expect(csv.status == 1)
        #expect(csv.stderr.contains("duplicate column name") && csv.stderr.contains("U+212A"), "\(csv.stderr)")
    }

    @Test func aQuotedColumnIsNamedWithoutItsQuotes() throws {
        let dir = ScratchDirectory()
        let path = dir.write("q.csv", "a b,c\n1,2\n")
        let r = try Eddy.run([
            "eval", path, "--format", "json", "--select", "\"a b\", \"a b\" + 1, c as \"x y\", \"c\"",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "[\n  {\"a b\": 1, \"\\\"a b\\\" + 1\": 2, \"x y\": 2, \"c\": 2}\n]\n", "\(r.stdout)")
        let csv = try Eddy.run(["eval", path, "--format", "csv", "--select", "\"a b\""])
        #expect(csv.stdout == "a b\n1\n", "\(csv.stdout)")
    }

    @Test func aLiteralThatDoesNotFitIsNamedWithoutARow() throws {
        let dir = ScratchDirectory()
        let path = dir.write("p.csv", "passengers\n5\n6\n")
        // A comparison answers exactly (every i64 is below 2^63); arithmetic has no type to meet in.
        let compared = try Eddy.run(["eval", path, "--where", "passengers < 9223372036854775808", "--format", "csv"])
        #expect(
            compared.status == 0 && compared.stdout == "passengers\n5\n6\n", "\(compared.stdout) \(compared.stderr)")
        let r = try Eddy.run(["eval", path, "--select", "passengers + 9223372036854775808"])
        #expect(r.status == 2)
        #expect(!r.stderr.contains("row"), "\(r.stderr)")
        #expect(
            r.stderr.contains("the literal 9223372036854775808 does not fit i64 (the other operand is i64)"),
            "\(r.stderr)")
        let cast = try Eddy.run(["eval", path, "--select", "cast(300 as u8)"])
        #expect(cast.status == 2)
        #expect(
            cast.stderr.contains("the literal 300 does not fit u8") && !cast.stderr.contains("row"), "\(cast.stderr)")
        // A value read from the file still names its row.
        let column = try Eddy.run(["eval", path, "--select", "cast(passengers * 100 as i8)"])
        #expect(column.status == 1 && column.stderr.contains("row"), "\(column.stderr)")
    }

    /// `rows` rows of `id,x,pad`; x is an integer except at row `bad` (1-based, after the header).
    static func failingCSV(_ dir: ScratchDirectory, rows: Int, bad: Int, pad: Int) -> String {
        let padding = String(repeating: "p", count: pad)
        var text = "id,x,pad\n"
        text.reserveCapacity(rows * (pad + 16))
        for i in 1...rows { text += "\(i),\(i == bad ? "oops" : String(i)),\(padding)\n" }
        return dir.write("failing.csv", text)
    }

    @Test func aQueryThatFailsLateLeavesNoRowsWhenItsResultIsSmall() throws {
        let dir = ScratchDirectory()
        let path = Self.failingCSV(dir, rows: 250_000, bad: 200_002, pad: 4)
        for format in ["csv", "json", "table"] {
            let r = try Eddy.run([
                "eval", path, "--format", format, "--select", "id, x + 1", "--threads", "1", "--batch-rows", "4096",
            ])
            #expect(r.status == 1, "\(format)")
            #expect(r.stderr.contains("oops"), "\(format): \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(format): \(r.stdout.prefix(200))")
        }
    }

    @Test func aQueryThatFailsAfterRowsWentOutSaysTheOutputIsIncomplete() throws {
        let dir = ScratchDirectory()
        // ~120 bytes a row: past the 16 MiB held back before row 200,002 fails.
        let path = Self.failingCSV(dir, rows: 250_000, bad: 200_002, pad: 100)
        for format in ["csv", "json"] {
            let r = try Eddy.run([
                "eval", path, "--format", format, "--select", "id, x + 1, pad", "--threads", "1", "--batch-rows",
                "4096",
            ])
            #expect(r.status == 1, "\(format)")
            let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
            #expect(last.hasPrefix("eddy: error: output incomplete"), "\(format): \(last.prefix(300))")
            #expect(last.contains("oops"), "\(format): \(last.prefix(300))")
            #expect(r.stdout.utf8.count > 16 << 20, "\(format)")
        }
    }
}
