import EddyHostTestSupport
import Foundation
import Testing

@Suite struct CLITests {
    @Test func onlyTheColumnsAQueryNamesAreReadAndExplainSaysWhich() throws {
        let dir = ScratchDirectory()
        // Column b has a value that is not an integer past the first batch (so b is inferred i64);
        // a query that does not name b never parses it.
        let rows = (0..<300).map { "\($0),\($0 == 250 ? "oops" : String($0 * 2)),n\($0 % 7)" }
        for (name, reader) in [
            ("t.csv", "a,b,name\n" + rows.joined(separator: "\n") + "\n"),
            (
                "t.jsonl",
                rows.map { r -> String in
                    let f = r.split(separator: ",")
                    return
                        "{\"a\": \(f[0]), \"b\": \(f[1] == "oops" ? "\"oops\"" : String(f[1])), \"name\": \"\(f[2])\"}"
                }.joined(separator: "\n") + "\n"
            ),
        ] {
            let f = dir.write(name, reader)
            let counted = try Eddy.run([
                "eval", f, "--select", "count(*)", "--format", "csv", "--batch-rows", "100",
                "--explain",
            ])
            #expect(counted.status == 0, "\(name): \(counted.stderr)")
            #expect(counted.stdout == "count(*)\n300\n")
            #expect(
                counted.stderr.contains("== columns read: none (0 of 3; the others are not typed or built); threads: 1")
            )
            let named = try Eddy.run([
                "eval", f, "--where", "name = 'n3'", "--select", "sum(a)", "--format", "csv",
                "--batch-rows", "100", "--explain",
            ])
            #expect(named.status == 0, "\(name): \(named.stderr)")
            #expect(named.stdout == "sum(a)\n\(stride(from: 3, to: 300, by: 7).reduce(0, +))\n")
            #expect(named.stderr.contains("== columns read: a, name (2 of 3;"), "\(named.stderr)")
            // Naming b reads it, and its bad value is the error it always was.
            let bad = try Eddy.run(["eval", f, "--select", "sum(b)", "--batch-rows", "100"])
            #expect(bad.status != 0 && bad.stderr.contains("oops"), "\(name): \(bad.stderr)")
        }
    }

    @Test func batchesOnSeveralThreadsGiveTheSameRowsInTheSameOrder() throws {
        let dir = ScratchDirectory()
        let rows = (0..<5_000).map { i in
            "\(i),\(["Lyon", "Nice", "Brest"][i % 3]),\(Double(i % 97) / 7.0),\(i % 11 == 0 ? "" : String(i % 13))"
        }
        let f = dir.write("t.csv", "id,city,fare,tip\n" + rows.joined(separator: "\n") + "\n")
        for query in [
            ["--where", "city = 'Nice' and fare > 3", "--select", "id, fare * 2 as twice, tip"],
            ["--select", "count(*), count(tip), sum(fare), mean(fare), min(city), max(tip)"],
            ["--where", "tip is null", "--select", "sum(id)"],
        ] {
            let one = try Eddy.run(["eval", f, "--format", "csv", "--batch-rows", "97", "--threads", "1"] + query)
            let four = try Eddy.run(["eval", f, "--format", "csv", "--batch-rows", "97", "--threads", "4"] + query)
            #expect(one.status == 0 && four.status == 0, "\(one.stderr)\(four.stderr)")
            #expect(one.stdout == four.stdout, "\(query)")
            #expect(one.stdout.split(separator: "\n").count > 1)
        }
        // A bad value in a later batch is the same error, and the rows before it are written, on any thread count.
        let bad = dir.write(
            "bad.csv", "a\n" + (0..<1_000).map { $0 == 700 ? "x" : "\($0)" }.joined(separator: "\n") + "\n")
        let b1 = try Eddy.run(["eval", bad, "--select", "a", "--format", "csv", "--batch-rows", "50", "--threads", "1"])
        let b4 = try Eddy.run(["eval", bad, "--select", "a", "--format", "csv", "--batch-rows", "50", "--threads", "4"])
        #expect(
            b1.status == 1 && b4.status == 1 && b1.stderr == b4.stderr && b1.stdout == b4.stdout,
            "\(b1.stderr)\(b4.stderr)")
        let ragged = dir.write(
            "ragged.csv", "a,b\n" + (0..<1_000).map { $0 == 700 ? "1" : "\($0),1" }.joined(separator: "\n") + "\n")
        let r1 = try Eddy.run([
            "eval", ragged, "--select", "a", "--format", "csv", "--batch-rows", "50", "--threads", "1",
        ])
        let r4 = try Eddy.run([
            "eval", ragged, "--select", "a", "--format", "csv", "--batch-rows", "50", "--threads", "4",
        ])
        #expect(r1.status == 1 && r1.stderr == r4.stderr && r1.stdout == r4.stdout, "\(r1.stderr)\(r4.stderr)")
        let explain = try Eddy.run(["eval", f, "--select", "count(*)", "--threads", "3", "--explain"])
        #expect(explain.stderr.contains("threads: 1"), "\(explain.stderr)")
    }

    @Test func aCRLFAfterAQuoteAtTheEndOfTheReadBufferIsNotAnError() throws {
        // Rows of 7 bytes after a 5-byte header: row 149,795 starts at byte 1,048,570, so the CR after its
        // closing quote is the last byte of the first 1 MiB read and its LF the first of the next.
        let dir = ScratchDirectory()
        let f = dir.write("crlf.csv", "a,b\r\n" + String(repeating: "k,\"v\"\r\n", count: 150_000))
        let r = try Eddy.run(["eval", f, "--select", "count(*), count(b)", "--format", "csv"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "count(*),count(b)\n150000,150000\n")
    }

    /// Lines ending with a carriage return alone read as one header line: refused by name, never `count(*)` 0.
    @Test func aTableNeverSendsTheDatasControlCharactersToTheTerminal() throws {
        let dir = ScratchDirectory()
        let file = dir.write("ctl.csv", "a,b\n\"x\u{1b}[31my\",1\n")
        let table = try Eddy.run(["eval", file])
        #expect(table.status == 0 && table.stdout.contains("x\\u{1b}[31my"), "\(table.stdout)")
        #expect(!table.stdout.contains("\u{1b}"), "\(table.stdout)")
        // The machine formats keep the value as it is.
        let csv = try Eddy.run(["eval", file, "--format", "csv"])
        #expect(csv.stdout == "a,b\nx\u{1b}[31my,1\n", "\(csv.stdout)")
    }

    @Test func integersMetByNumbersTheirTypeCannotHoldCompareExactly() throws {
        let dir = ScratchDirectory()
        // Past 2^53 two integers are one f64; a u64 past 2^63 is no i64.
        let big = dir.write("big.csv", "i\n9007199254740993\n9007199254740992\n5\n\n")
        let u = dir.write("u.csv", "u\n18446744073709551615\n5\n\n")
        func count(_ file: String, _ predicate: String, _ extra: [String] = []) throws -> String {
            let r = try Eddy.run(
                ["eval", file, "--where", predicate, "--select", "count(*)", "--format", "csv"] + extra)
            #expect(r.status == 0, "\(predicate): \(r.stderr)")
            return r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        }
        for (predicate, expected) in [
            ("i > 9007199254740992.0", "1"), ("i = 9007199254740992.0", "1"), ("i >= 4.5", "3"), ("i < 5.5", "1"),
            ("i = 5.5", "0"), ("i != 5.5", "3"), ("5.5 < i", "2"), ("i > 1e30", "0"), ("i != 1e30", "3"),
        ] {
            #expect(try count(big, predicate) == expected, "\(predicate)")
        }
        for (predicate, expected) in [
            ("u > -1", "2"), ("u < -1", "0"), ("u = -1", "0"), ("u != -1", "2"), ("u > -0.5", "2"),
            ("u < 18446744073709551616.0", "2"),
        ] {
            #expect(try count(u, predicate, ["--schema", "u:u64"]) == expected, "\(predicate)")
        }
    }

    @Test func aFileWithCarriageReturnLineEndsIsRefusedNotReadAsEmpty() throws {
        let dir = ScratchDirectory()
        let f = dir.write("cr.csv", "a,b\r1,2\r3,4\r")
        for select in ["count(*)", "a, b"] {
            let r = try Eddy.run(["eval", f, "--select", select, "--format", "csv"])
            #expect(r.status == 1 && r.stdout.isEmpty, "\(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("cr.csv:1:2: a carriage return inside column name 'b\\r1'"), "\(r.stderr)")
        }
        let ok = try Eddy.run(["eval", dir.write("crlf.csv", "a,b\r\n1,2\r\n"), "--select", "count(*)"])
        #expect(ok.status == 0 && ok.stdout.contains("1"), "\(ok.stderr)")
    }

    @Test func evaluatesACSVFile() throws {
        let dir = ScratchDirectory()
        let f = dir.write("t.csv", "a,b,name\n1,2.5,x\n-3,,\"y, z\"\n10,4,\"multi\nline\"\n")
        let r = try Eddy.run(["eval", f, "--where", "a > 0", "--select", "a, b * 2 as twice, name", "--format", "csv"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "a,twice,name\n1,5.0,x\n10,8.0,\"multi\nline\"\n")
        // A bad choice is refused with eval's usage, as every other option's is.
        for (option, value) in [("--format", "bogus"), ("--compression", "bogus")] {
            let bad = try Eddy.run(["eval", f, option, value])
            #expect(bad.status == 64 && bad.stderr.contains("unknown \(option) 'bogus'"), "\(bad.stderr)")
            #expect(bad.stderr.contains("Usage: eddy eval"), "\(option): \(bad.stderr)")
        }
    }

    @Test func jsonLinesInputAndJSONOutput() throws {
        let dir = ScratchDirectory()
        let f = dir.write(
            "t.jsonl",
            "{\"id\": 1, \"tag\": \"a\", \"x\": 1.5}\n{\"id\": 2, \"tag\": null}\n\n{\"id\": 3, \"tag\": \"\\u00e9\", \"x\": -2}\n"
        )
        let r = try Eddy.run(["eval", f, "--where", "id >= 2", "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(
            r.stdout == "[\n  {\"id\": 2, \"tag\": null, \"x\": null},\n  {\"id\": 3, \"tag\": \"é\", \"x\": -2.0}\n]\n"
        )
    }

    @Test func aggregatesStreamAcrossBatches() throws {
        let dir = ScratchDirectory()
        var text = "k,v\n"
        for i in 0..<5000 { text += "\(i % 7),\(i % 3 == 0 ? "" : String(i))\n" }
        let f = dir.write("t.csv", text)
        let select = "count(*), count(v), sum(v), min(v), max(v), mean(k)"
        let small = try Eddy.run(["eval", f, "--select", select, "--format", "csv", "--batch-rows", "100"])
        let large = try Eddy.run(["eval", f, "--select", select, "--format", "csv"])
        #expect(small.status == 0 && large.status == 0, "\(small.stderr)\(large.stderr)")
        #expect(small.stdout == large.stdout)
        let expectedSum = (0..<5000).filter { $0 % 3 != 0 }.reduce(0, +)
        #expect(small.stdout.contains("5000,3333,\(expectedSum),1,4999,"))
    }

    @Test(arguments: [
        ("unclosed.csv", "a,b\n1,\"open\n2,3\n", "unclosed.csv:2:2: quoted field is not closed"),
        ("fields.csv", "a,b\n1,2\n3\n", "fields.csv:3:2: expected 2 fields, found 1"),
        ("badvalue.csv", "a\n1\n2\nabc\n", "badvalue.csv:4:1: column 'a': 'abc' is not an integer"),
        ("quote.csv", "a,b\n1,x\"y\n", "quote.csv:2:2: unexpected quote inside an unquoted field"),
        ("empty.csv", "", "empty.csv:1:1: empty file"),
        ("bad.jsonl", "{\"a\": 1}\n{\"a\": 2,}\n", "bad.jsonl:2:9: expected a string key"),
        ("bad2.jsonl", "{\"a\": tru}\n", "bad2.jsonl:1:7: expected 'true'"),
    ])
    func malformedInputNamesFileLineAndColumn(file: String, text: String, message: String) throws {
        let dir = ScratchDirectory()
        let f = dir.write(file, text)
        let r = try Eddy.run(["eval", f, "--batch-rows", "2"])
        #expect(r.status == 1)
        #expect(r.stderr.contains(message), "\(r.stderr)")
    }

    @Test(arguments: [
        ("a >", "expected a value, a column or '(' but found end of expression", "     ^"),
        ("nope = 1", "unknown column 'nope'", "  ^"),
        ("a = 'x'", "type mismatch: i64 and utf8", "    ^"),
        ("(a > 1", "expected ')'", "        ^"),
        ("a + 1", "--where must be a bool expression", "  ^"),
        ("sum(a) > 1", "aggregate sum() is only allowed at the top of a select item", "  ^"),
        ("name like 5", "like needs a 'pattern' string", "            ^"),
    ])
    func badExpressionsPointAtThePosition(expr: String, message: String, caret: String) throws {
        let dir = ScratchDirectory()
        let f = dir.write("t.csv", "a,name\n1,x\n")
        let r = try Eddy.run(["eval", f, "--where", expr])
        #expect(r.status == 2)
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(r.stderr.contains("\n" + caret + "\n") || r.stderr.hasSuffix("\n" + caret + "\n"), "\(r.stderr)")
    }

    /// Hostile names and characters in an expression come back escaped and cut short: a control
    /// character is named, not printed (the caret line shows it as a space), and a very long
    /// column name does not make a very long error.
    @Test func expressionErrorsShowHostileTextSafely() throws {
        let dir = ScratchDirectory()
        let f = dir.write("t.csv", "a,name\n1,x\n")
        let control = try Eddy.run(["eval", f, "--where", "a \u{1B}[2J = 1"])
        #expect(control.status == 2)
        #expect(control.stderr.contains("unexpected character '\\u{1b}'"), "\(control.stderr)")
        #expect(!control.stderr.contains("\u{1B}"), "\(control.stderr.debugDescription)")
        let long = String(repeating: "n", count: 100_000)
        let unknown = try Eddy.run(["eval", f, "--where", long + " = 1"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("unknown column 'nnnn"), "\(unknown.stderr.prefix(300))")
        #expect(unknown.stderr.utf8.count < 2_000, "\(unknown.stderr.utf8.count) bytes of error")
        // One character carrying 50,000 combining marks: cut by scalars, not characters.
        let heavy = try Eddy.run(["eval", f, "--where", "a" + String(repeating: "\u{301}", count: 50_000) + " = 1"])
        #expect(heavy.status == 2 && heavy.stderr.contains("unknown column"), "\(heavy.stderr.prefix(300))")
        #expect(heavy.stderr.utf8.count < 2_000, "\(heavy.stderr.utf8.count) bytes of error")
        // A right-to-left override or a zero-width space is escaped in the message and blanked
        // under the caret.
        for invisible in ["\u{202E}", "\u{200B}"] {
            let r = try Eddy.run(["eval", f, "--where", "a\(invisible)b = 1"])
            #expect(r.status == 2 && !r.stderr.contains(invisible), "\(r.stderr.debugDescription)")
        }
    }

    @Test func overflowAndDivisionByZeroNameTheRow() throws {
        let dir = ScratchDirectory()
        let f = dir.write("t.csv", "a,b\n1,1\n9223372036854775807,0\n")
        let overflow = try Eddy.run(["eval", f, "--select", "a + 1"])
        #expect(overflow.status == 1)
        #expect(overflow.stderr.contains("integer overflow in row 1"), "\(overflow.stderr)")
        let div = try Eddy.run(["eval", f, "--select", "a / b"])
        #expect(div.status == 1)
        #expect(div.stderr.contains("division by zero in row 1"), "\(div.stderr)")
        // Past the first batch, the message says where its row numbers start.
        var many = "a\n"
        for i in 0..<100_000 { many += i == 80_000 ? "0\n" : "1\n" }
        let late = try Eddy.run(["eval", dir.write("late.csv", many), "--select", "sum(10 / a)"])
        #expect(
            late.status == 1 && late.stderr.contains("in row 4464: 10 / 0 (rows counted from 0 at input line 75538)"),
            "\(late.stderr)")
        let cast = try Eddy.run(["eval", f, "--select", "cast(a as i8)"])
        #expect(cast.status == 1 && cast.stderr.contains("cannot cast 9223372036854775807 to i8"), "\(cast.stderr)")
    }

    @Test func schemaOverrideChangesTheType() throws {
        let dir = ScratchDirectory()
        let f = dir.write("t.csv", "zip,n\n01234,1\n99999,2\n")
        let r = try Eddy.run(["eval", f, "--schema", "zip:utf8", "--where", "zip like '0%'", "--format", "csv"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "zip,n\n01234,1\n")
        let bad = try Eddy.run(["eval", f, "--schema", "zip:money"])
        #expect(bad.status == 1 && bad.stderr.contains("cannot read schema entry 'zip:money'"), "\(bad.stderr)")
        // A number past f32's range is refused, not read as an infinity (DuckDB: "out of range for the
        // destination type FLOAT"); the largest f32 and a number too small for it (-0.0) are read.
        let floats = dir.write("f.csv", "x\n3.4028234e38\n-1e-50\n")
        let fits = try Eddy.run(["eval", floats, "--schema", "x:f32", "--format", "csv"])
        #expect(fits.status == 0 && fits.stdout == "x\n3.4028235e+38\n-0.0\n", "\(fits.stdout)\(fits.stderr)")
        let past = dir.write("g.csv", "x\n1e39\n")
        let over = try Eddy.run(["eval", past, "--schema", "x:f32"])
        #expect(over.status == 1 && over.stderr.contains("'1e39' is not a f32"), "\(over.stderr)")
        let cast = try Eddy.run(["eval", past, "--select", "cast(x as f32)"])
        #expect(cast.status == 1 && cast.stderr.contains("cannot cast 1e+39 to f32 (row 0)"), "\(cast.stderr)")
        let infinite = try Eddy.run(["eval", dir.write("h.csv", "x\ninf\n"), "--select", "cast(x as f32)"])
        #expect(infinite.status == 0 && infinite.stdout.contains("inf"), "\(infinite.stderr)")
    }

    /// `_` is one character and a literal a whole character, also when the character is not ASCII
    /// (the answers are DuckDB's on the same file). Under `--compression storage` the column is a dictionary,
    /// so the dictionary's like kernel is held to the same answers.
    @Test(arguments: ["auto", "storage"])
    func likeMatchesNonASCIICharactersAfterAWildcard(compression: String) throws {
        let dir = ScratchDirectory()
        var text = "s\n"
        for _ in 0..<40 { text += "axé\nxé\naéé\né\nab\n_é\nnaïve café\n" }
        let f = dir.write("u.csv", text)
        func rows(_ pattern: String) throws -> [Substring] {
            let r = try Eddy.run(
                [
                    "eval", f, "--where", "s like '\(pattern)'", "--select", "s", "--format", "csv", "--compression",
                    compression,
                ])
            #expect(r.status == 0, "\(r.stderr)")
            return Array(Set(r.stdout.split(separator: "\n").dropFirst())).sorted()
        }
        #expect(try rows("a%é") == ["axé", "aéé"].sorted())
        #expect(try rows("_é") == ["_é", "xé"])
        #expect(try rows("n%é") == ["naïve café"])
        #expect(try rows("%ï_e%") == ["naïve café"])
        #expect(try rows("a_é") == ["axé", "aéé"].sorted())
        let not = try Eddy.run(
            [
                "eval", f, "--where", "not (s like 'a%é')", "--select", "count(*)", "--format", "csv", "--compression",
                compression,
            ])
        #expect(not.stdout == "count(*)\n200\n", "\(not.stdout) \(not.stderr)")
    }

    @Test func explainShowsEncodingsTraceAndOwners() throws {
        let dir = ScratchDirectory()
        var text = "city,fare\n"
        for i in 0..<2000 { text += "\(["Lyon", "Paris", "Nice"][i % 3]),\(i % 50)\n" }
        let f = dir.write("t.csv", text)
        let r = try Eddy.run(["eval", f, "--where", "city = 'Lyon'", "--select", "count(*)", "--explain"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("eddy.dict(utf8?, len=2000)"))
        #expect(r.stderr.contains("execute-parent eddy.compare compare over dictionary values [builtin]"))
        #expect(r.stdout.contains("667"))
    }
}
