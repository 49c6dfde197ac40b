import EddyHostTestSupport
import EddyIO
import EddyQuery
import Foundation
import Testing

/// The CSV reader through the real binary: batch ends are found on one thread (newlines outside
/// quotes), records are split on others; whatever the batch size, read size or thread count, every
/// field reads back exactly as written.
@Suite struct CSVReaderTests {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// A file of `rows` records of three utf8 columns and the values it holds (nil for null): fields
    /// with commas, quotes ("" inside quotes), LF and CRLF inside quotes, non-ASCII text, quoted empty
    /// strings, empty (null) fields, CRLF and LF record ends, blank lines, one field longer than a read
    /// (256 KiB) full of newlines and quotes, and no newline after the last record.
    /// `quotes: false` leaves out every value that needs quoting (and quoted empty strings): the
    /// batches are then split by the quote-free path.
    static func file(rows: Int, seed: UInt64, quotes: Bool = true) -> (text: String, values: [[String?]]) {
        var g = Generator(state: seed)
        let pieces =
            quotes
            ? ["a", "b", "Lyon", " ", ",", "\"", "\n", "\r\n", "é", "日本", "x,y", "1", "-2.5", "\"\""]
            : ["a", "b", "Lyon", " ", "é", "日本", "1", "-2.5"]
        var text = "a,b,c\n"
        var values: [[String?]] = []
        for r in 0..<rows {
            var row: [String?] = []
            var fields: [String] = []
            for _ in 0..<3 {
                let kind = g.below(10)
                if kind == 0 {
                    row.append(nil)
                    fields.append("")
                    continue
                }
                if kind == 1 && quotes {
                    row.append("")
                    fields.append("\"\"")
                    continue
                }
                var v = ""
                let count = r == rows / 2 && fields.isEmpty ? 150_000 : 1 + g.below(6)
                for _ in 0..<count { v += pieces[g.below(pieces.count)] }
                row.append(v)
                let plain = !v.utf8.contains(where: { ",\"\n\r".utf8.contains($0) }) && !v.isEmpty
                let quoted = "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                fields.append(plain && (!quotes || g.below(3) != 0) ? v : quoted)
            }
            values.append(row)
            text += fields.joined(separator: ",")
            if r < rows - 1 {
                text += g.below(4) == 0 ? "\r\n" : "\n"
                if g.below(50) == 0 { text += "\n" }
            }
        }
        return (text, values)
    }

    static func read(_ path: String, _ extra: [String]) throws -> [[String?]] {
        let r = try Eddy.run(["eval", path, "--schema", "a:utf8,b:utf8,c:utf8", "--format", "json"] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []
        return rows.map { o in ["a", "b", "c"].map { o[$0] as? String } }
    }

    @Test func everyFieldReadsBackExactlyWhateverTheBatchAndThreads() throws {
        let dir = ScratchDirectory()
        let (text, values) = Self.file(rows: 12_000, seed: 11)
        #expect(text.utf8.count > 600_000)
        let path = dir.write("t.csv", text)
        for extra in [
            ["--threads", "1"], ["--threads", "2", "--batch-rows", "7"], ["--threads", "3", "--batch-rows", "1000"],
            ["--threads", "2", "--batch-rows", "1"],
        ] {
            let got = try Self.read(path, extra)
            #expect(got.count == values.count, "\(extra)")
            let firstDifference = zip(got, values).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(firstDifference == nil, "\(extra): row \(firstDifference ?? -1)")
        }
    }

    @Test func quoteFreeFilesReadBackExactlyWhateverTheBatchAndThreads() throws {
        let dir = ScratchDirectory()
        let (text, values) = Self.file(rows: 12_000, seed: 12, quotes: false)
        #expect(!text.contains("\""))
        let path = dir.write("t.csv", text)
        for extra in [
            ["--threads", "1"], ["--threads", "2", "--batch-rows", "7"], ["--threads", "3", "--batch-rows", "1"],
        ] {
            let got = try Self.read(path, extra)
            #expect(got.count == values.count, "\(extra)")
            let firstDifference = zip(got, values).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(firstDifference == nil, "\(extra): row \(firstDifference ?? -1)")
        }
        // A record with a field too few or too many, as the quoted path words it.
        for (bad, message) in [
            ("x,y\n", "t2.csv:4:3: expected 3 fields, found 2"),
            ("1,2,3,4,5\n", "t2.csv:4:4: expected 3 fields, found 5"),
        ] {
            let p2 = dir.write("t2.csv", "a,b,c\n1,2,3\r\n\n" + bad + "7,8,9\n")
            let r = try Eddy.run(["eval", p2, "--schema", "a:utf8,b:utf8,c:utf8"])
            #expect(r.status == 1 && r.stderr.contains(message), "\(r.stderr)")
        }
    }

    @Test func csvOutputReadsBackAsTheSameValues() throws {
        // Written by eddy (quoting by bytes: a CRLF inside a value is quoted too), read again by eddy.
        let dir = ScratchDirectory()
        let (text, values) = Self.file(rows: 3_000, seed: 5)
        let path = dir.write("t.csv", text)
        let out = try Eddy.run(["eval", path, "--schema", "a:utf8,b:utf8,c:utf8", "--format", "csv"])
        #expect(out.status == 0, "\(out.stderr)")
        let again = dir.write("again.csv", out.stdout)
        let got = try Self.read(again, [])
        #expect(got.count == values.count)
        let firstDifference = zip(got, values).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDifference == nil, "row \(firstDifference ?? -1)")
    }

    @Test func editorsFilesAndBigSumsReadAsOtherEnginesReadThem() throws {
        let dir = ScratchDirectory()
        func csv(_ name: String, _ text: String, _ args: [String] = []) throws -> Eddy.Result {
            try Eddy.run(["eval", dir.write(name, text), "--format", "csv"] + args)
        }
        // A byte-order mark before a quoted first name (Excel's "CSV UTF-8").
        #expect(try csv("bom.csv", "\u{FEFF}\"a\",b\n1,2\n").stdout == "a,b\n1,2\n")
        // Bools and numbers in one column are text, in CSV and JSON Lines.
        #expect(try csv("mixed.csv", "a\ntrue\n1\n").stdout == "a\ntrue\n1\n")
        let jsonl = dir.write("mixed.jsonl", "{\"a\": true}\n{\"a\": 1}\n")
        #expect(try Eddy.run(["eval", jsonl, "--format", "csv"]).stdout == "a\ntrue\n1\n")
        // A CR ending the file after a closing quote ends the record, as after an unquoted field.
        #expect(try csv("cr.csv", "a,b\n1,\"x\"\r").stdout == "a,b\n1,x\n")
        // Only the total of a sum must fit i64, not each batch's part of it.
        let big =
            "x\n" + String(repeating: "9223372036854775807\n", count: 2) + String(repeating: "0\n", count: 69_998)
            + String(repeating: "-9223372036854775807\n", count: 2)
        for args in [[], ["--batch-rows", "3"]] {
            let r = try csv("big.csv", big, ["--select", "sum(x), mean(x)"] + args)
            #expect(r.status == 0 && r.stdout == "sum(x),mean(x)\n0,0.0\n", "\(args): \(r.stdout)\(r.stderr)")
        }
        let over = try csv("over.csv", "x\n9223372036854775807\n9223372036854775807\n", ["--select", "sum(x)"])
        #expect(over.status == 1 && over.stderr.contains("sum 18446744073709551614 does not fit i64"), "\(over.stderr)")
        // A total belongs to no row: the message names the item and the input.
        let named = over.stderr.contains("(sum(x) over the 2 rows of ") && over.stderr.contains("over.csv)")
        #expect(named, "\(over.stderr)")
        // Infinities read signed or not, as the CSV output writes them ("-inf" was read as text).
        let inf = try csv("inf.csv", "f\n1.5\n-inf\n+Infinity\nNaN\n", ["--select", "f, f < 0 as neg"])
        #expect(
            inf.status == 0 && inf.stdout == "f,neg\n1.5,false\n-inf,true\ninf,false\nnan,false\n",
            "\(inf.stdout)\(inf.stderr)")
    }

    @Test func aStrayQuoteIsNamedWhereItIsNotReadAsTheStartOfAQuotedField() throws {
        let dir = ScratchDirectory()
        // Without a rule for quotes inside unquoted fields, the quote on line 40 would look like the start
        // of a quoted field running to the end of the file, and fail as a record too long.
        var text = "a,b\n"
        for i in 0..<60_000 { text += i == 38 ? "7,ab\"c\n" : "\(i),v\(i)\n" }
        let path = dir.write("t.csv", text)
        for extra in [[], ["--threads", "1", "--batch-rows", "10"], ["--max-record-bytes", "1000"]] {
            let r = try Eddy.run(["eval", path, "--select", "count(*)"] + extra)
            #expect(r.status == 1)
            #expect(r.stderr.contains("t.csv:40:2: unexpected quote inside an unquoted field"), "\(extra): \(r.stderr)")
        }
        // --max-record-bytes holds for each record, also one that fits in a single read.
        let long = dir.write("long.csv", "a,b\n1,2\n3," + String(repeating: "x", count: 500) + "\n5,6\n")
        let refused = try Eddy.run(["eval", long, "--max-record-bytes", "100"])
        #expect(refused.status == 1 && refused.stderr.contains("long.csv:3:1: record is longer than 100 bytes"))
        #expect(try Eddy.run(["eval", long, "--max-record-bytes", "1000", "--select", "count(*)"]).status == 0)
        // The limit counts a record's bytes without its line ending, LF or CRLF; the same for JSON Lines.
        for (name, text) in [("lf.csv", "a,b\n1,2\n3,xxxx\n5,6\n"), ("crlf.csv", "a,b\r\n1,2\r\n3,xxxx\r\n5,6\r\n")] {
            let f = dir.write(name, text)
            #expect(try Eddy.run(["eval", f, "--max-record-bytes", "6", "--select", "count(*)"]).status == 0)
            let r = try Eddy.run(["eval", f, "--max-record-bytes", "5", "--select", "count(*)"])
            #expect(r.status == 1 && r.stderr.contains("\(name):3:1: record is longer than 5 bytes"), "\(r.stderr)")
        }
        let lines = dir.write("j.jsonl", "{\"a\":1}\n{\"a\":12}\n{\"a\":3}\n")
        #expect(try Eddy.run(["eval", lines, "--max-record-bytes", "8", "--select", "count(*)"]).status == 0)
        let j = try Eddy.run(["eval", lines, "--max-record-bytes", "7", "--select", "count(*)"])
        #expect(j.status == 1 && j.stderr.contains("j.jsonl:2:1: line is longer than 7 bytes"), "\(j.stderr)")
        // A quote left open runs to the end of the file: named with the line it opened on.
        let open = dir.write("open.csv", "a,b\n1,2\n3,\"x\n4,5\n")
        let r = try Eddy.run(["eval", open, "--format", "csv"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("open.csv:3:2: quoted field is not closed before the end of the file"), "\(r.stderr)")
    }

    @Test func raggedRecordsAndBadValuesNameTheirLinePastManyBatches() throws {
        let dir = ScratchDirectory()
        var text = "n,s\n"
        for i in 0..<50_000 {
            text += i == 30_000 ? "\"multi\nline\",x\n" : "\(i),\"s\n\(i)\"\n"
        }
        text += "1,2,3\n"
        let path = dir.write("t.csv", text)
        // Every record before the last holds one newline inside quotes: line numbers count them.
        let r = try Eddy.run(["eval", path, "--select", "count(*)"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("t.csv:100002:3: expected 2 fields, found 3"), "\(r.stderr)")
        // Without quotes, count(*) checks shapes by counting commas per line: the same errors, blank
        // and CR-only lines skipped, a last line without a newline counted.
        var plain = "a,b,c\n"
        for i in 0..<100_000 { plain += i == 77_777 ? "1,2\n" : (i % 1000 == 5 ? "\r\n\n" : "") + "\(i),x,\(i % 7)\n" }
        let flat = dir.write("flat.csv", plain + "9,9,9")
        for extra in [[], ["--threads", "1", "--batch-rows", "500"]] {
            let c = try Eddy.run(["eval", flat, "--select", "count(*)"] + extra)
            let s = try Eddy.run(["eval", flat, "--select", "sum(a)"] + extra)
            #expect(c.status == 1 && s.status == 1)
            let shape = "flat.csv:77935:3: expected 3 fields, found 2"
            #expect(c.stderr.contains(shape) && s.stderr.contains(shape), "\(extra): \(c.stderr) \(s.stderr)")
        }
        let good = dir.write("good.csv", "a,b\n1,2\n\r\n\n3,4\r\n5,6")
        let g = try Eddy.run(["eval", good, "--select", "count(*)", "--format", "csv"])
        #expect(g.status == 0 && g.stdout == "count(*)\n3\n", "\(g.stdout)\(g.stderr)")
        // In an earlier batch than the ragged record (within one batch, a record's shape is checked first).
        let bad = try Eddy.run(["eval", path, "--select", "sum(n)", "--threads", "2", "--batch-rows", "1000"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("t.csv:60002:1: column 'n': 'multi\\nline' is not an integer"), "\(bad.stderr)")
    }
}
