import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// The fault table of the trust boundary: each case drives the real `eddy` binary or a real
// `eddy serve`, and checks the status, the message, that the process that should live is alive, and
// that no secret bytes leak into a response.

@Suite struct InputTrustTests {
    @Test(arguments: HostileExpressions.table.keys.sorted())
    func hostileExpressionsAreErrorsWithCarets(name: String) throws {
        let (expression, message) = try #require(HostileExpressions.table[name])
        let work = ScratchDirectory()
        let r = try Eddy.run(["eval", tripsCSV(work, rows: 20), "--where", expression, "--select", "count(*)"])
        #expect(r.status == 2, "\(r.stderr.prefix(400))")
        #expect(r.stderr.contains(message) && r.stderr.contains("^"), "\(r.stderr.prefix(400))")
        #expect(r.stderr.count < 2_000, "a long expression is shown as a window")
    }

    @Test(arguments: [("and", 5_000), ("or", 3_000)])
    func longAndOrChainsEvaluate(op: String, terms: Int) throws {
        let work = ScratchDirectory()
        let expression = (0..<terms).map { op == "and" ? "fare >= 0" : "trip_id = \(100_000 + $0 * 2)" }
            .joined(separator: " \(op) ")
        let r = try Eddy.run([
            "eval", tripsCSV(work, rows: 3000), "--where", expression, "--select", "count(*)",
            "--format", "csv",
        ])
        #expect(r.status == 0, "\(r.stderr.prefix(300))")
        #expect(r.stdout == "count(*)\n\(op == "and" ? 3000 : 1500)\n")
    }

    @Test func valuesThatStartWithAMinusAreExpressions() throws {
        let work = ScratchDirectory()
        let r = try Eddy.run([
            "eval", tripsCSV(work, rows: 100), "--where", "-fare < -20", "--select", "-fare",
            "--format", "csv",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("-fare\n-2"), "\(r.stdout.prefix(100))")
    }

    @Test(arguments: [
        ("/", "is a directory"),
        ("/dev/zero", "is a character device"),
        ("/dev/null", "is a character device"),
    ])
    func onlyRegularFilesAndPipesAreRead(path: String, message: String) throws {
        let r = try Eddy.run(["eval", path, "--input-format", "jsonl"])
        #expect(r.status == 1 && r.stderr.contains(message), "\(r.stderr)")
    }

    @Test func aPipeIsReadButAnEndlessLineIsRefused() throws {
        let dir = ScratchDirectory()
        let fifo = dir.path + "/in.jsonl"
        mkfifo(fifo, 0o600)
        signal(SIGPIPE, SIG_IGN)  // the reader stops early on purpose
        let writer = Thread {
            let fd = open(fifo, O_WRONLY)
            let line = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
            for _ in 0..<8 { _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
            close(fd)
        }
        writer.start()
        let r = try Eddy.run(["eval", fifo, "--max-record-bytes", "1000000"])
        #expect(r.status == 1 && r.stderr.contains("line is longer than 1000000 bytes"), "\(r.stderr)")
        let csv = dir.write("long.csv", "a\n" + String(repeating: "y", count: 3_000_000) + "\n")
        let c = try Eddy.run(["eval", csv, "--max-record-bytes", "1000000"])
        #expect(c.status == 1 && c.stderr.contains("record is longer than 1000000 bytes"), "\(c.stderr)")
    }

    @Test func integersPastI64AreErrorsUnlessReadAsF64() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("big.csv", "a,b\n9223372036854775807,1\n9223372036854775808,2\n")
        let r = try Eddy.run(["eval", csv, "--where", "a = 9223372036854775807"])
        #expect(
            r.status == 1
                && r.stderr.contains("big.csv:3:1: column 'a': '9223372036854775808' is out of range for i64"),
            "\(r.stderr)")
        #expect(r.stderr.contains("--schema a:f64"))
        let f = try Eddy.run(["eval", csv, "--schema", "a:f64", "--select", "count(*)", "--format", "csv"])
        #expect(f.status == 0 && f.stdout == "count(*)\n2\n", "\(f.stderr)")
        let jsonl = dir.write("big.jsonl", "{\"a\": 1}\n{\"a\": 99999999999999999999}\n")
        let j = try Eddy.run(["eval", jsonl])
        #expect(
            j.status == 1 && j.stderr.contains("big.jsonl:2:1") && j.stderr.contains("out of range for i64"),
            "\(j.stderr)")
    }

    @Test func floatsPastF64AreErrors() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("inf.csv", "a\n1.5\n1e400\n")
        let r = try Eddy.run(["eval", csv])
        #expect(
            r.status == 1 && r.stderr.contains("inf.csv:3:1: column 'a': '1e400' is out of range for f64"),
            "\(r.stderr)")
        let jsonl = dir.write("inf.jsonl", "{\"a\": -1e999}\n")
        let j = try Eddy.run(["eval", jsonl])
        #expect(j.status == 1 && j.stderr.contains("out of range for f64"), "\(j.stderr)")
        // inf spelled out stays infinity.
        let named = dir.write("named.csv", "a\ninf\n-inf\n")
        #expect(try Eddy.run(["eval", named, "--format", "csv"]).stdout == "a\ninf\n-inf\n")
    }

    @Test func aNULByteNeverEndsANumberEarly() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("nul.csv", "a,b\n1\u{0}abc,2\n2,3\n")
        let r = try Eddy.run(["eval", csv, "--schema", "a:f64"])
        #expect(r.status == 1 && r.stderr.contains("is not a number (the type given by --schema)"), "\(r.stderr)")
        let inferred = try Eddy.run(["eval", csv, "--where", "a = '2'", "--select", "count(*)", "--format", "csv"])
        #expect(inferred.status == 0 && inferred.stdout == "count(*)\n1\n", "text, not 1.0: \(inferred.stderr)")
    }

    @Test func aByteOrderMarkIsNotPartOfTheFirstName() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("bom.csv", "\u{FEFF}a,b\n1,2\n")
        #expect(try Eddy.run(["eval", csv, "--select", "a", "--format", "csv"]).stdout == "a\n1\n")
        let jsonl = dir.write("bom.jsonl", "\u{FEFF}{\"a\": 1}\n")
        #expect(try Eddy.run(["eval", jsonl, "--format", "csv"]).stdout == "a\n1\n")
    }

    @Test func csvHeadersAreUnescapedLikeFields() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("h.csv", "\"we\"\"ird\",\"a,b\"\n1,2\n")
        let r = try Eddy.run(["eval", csv, "--format", "csv"])
        #expect(r.status == 0 && r.stdout == "\"we\"\"ird\",\"a,b\"\n1,2\n", "\(r.stdout) \(r.stderr)")
    }

    @Test func wideHeadersAreLinearAndBounded() throws {
        let dir = ScratchDirectory()
        let n = 50_000
        let header = (0..<n).map { "c\($0)" }.joined(separator: ",")
        let row = (0..<n).map { String($0 % 10) }.joined(separator: ",")
        let csv = dir.write("wide.csv", header + "\n" + row + "\n")
        let r = try Eddy.run(["eval", csv, "--select", "count(*), sum(c49999)", "--format", "csv"])
        #expect(r.status == 0 && r.stdout == "count(*),sum(c49999)\n1,9\n", "\(r.stderr.prefix(300))")
        let tooWide = dir.write("too-wide.csv", (0..<100_001).map { "c\($0)" }.joined(separator: ",") + "\n")
        let w = try Eddy.run(["eval", tooWide])
        #expect(w.status == 1 && w.stderr.contains("more than the limit of 100000"), "\(w.stderr.prefix(300))")
    }
}
