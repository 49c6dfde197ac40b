import EddyHostTestSupport
import EddyIO
import EddyQuery
import Foundation
import Testing

/// `count(*)` alone counts a regular file's records in byte ranges on several threads, without
/// batches: on every shape of file it must agree with counting batches — the count, or the error
/// word for word — and fall back to the batches when a quote makes a range boundary unsafe.
@Suite struct CSVFastCountTests {
    /// Text of `rows` records of `columns` fields: LF and CRLF ends, blank and CR-only lines, records
    /// long and short, sometimes no final newline; with `flaw` one record has a field too many, is
    /// longer than the limit, or holds a quoted newline.
    static func text(seed: UInt64, rows: Int, columns: Int, flaw: Int) -> String {
        var g = CSVReaderTests.Generator(state: seed)
        var out = (0..<columns).map { "c\($0)" }.joined(separator: ",") + "\n"
        let flawAt = g.below(Swift.max(1, rows))
        for r in 0..<rows {
            switch g.below(20) {
            case 0: out += "\n"
            case 1: out += "\r\n"
            default: break
            }
            var fields = (0..<columns).map { _ in String(repeating: "x", count: g.below(g.below(8) == 0 ? 300 : 6)) }
            if r == flawAt {
                switch flaw {
                case 1: fields.append("extra")
                case 2: fields[0] = String(repeating: "y", count: 5000)
                case 3: fields[0] = "\"two\nlines\""
                default: break
                }
            }
            out += fields.joined(separator: ",")
            if r < rows - 1 || g.below(2) == 0 { out += g.below(3) == 0 ? "\r\n" : "\n" }
        }
        if g.below(4) == 0 { out += "\r" }
        return out
    }

    /// The count by batches (count(*) with no column), or the error's text.
    static func byBatches(_ path: String, limits: ReadLimits) -> String {
        do {
            let reader = try CSVReader(path: path, batchRows: 977, limits: limits)
            reader.scan(ScanRequest(projection: []))
            var n = 0
            while let batch = try reader.next() { n += batch.count }
            return "\(n)"
        } catch {
            return "\(error)"
        }
    }

    @Test func rangesAgreeWithBatches() throws {
        let dir = ScratchDirectory()
        let limits = ReadLimits(maxRecordBytes: 4096)
        var fellBack = 0
        for seed in UInt64(1)...60 {
            let flaw = Int(seed % 4)
            let path = dir.path + "/f\(seed).csv"
            try Self.text(seed: seed, rows: Int(seed * 7 % 400) + 1, columns: Int(seed % 5) + 1, flaw: flaw)
                .write(toFile: path, atomically: true, encoding: .utf8)
            let expected = Self.byBatches(path, limits: limits)
            for threads in [1, 2, 3, 8] {
                let got: String
                do {
                    let reader = try CSVReader(path: path, batchRows: 16, limits: limits)
                    reader.scan(ScanRequest(projection: []))
                    if let (n, _) = try reader.countRemaining(threads: threads, minimumRangeBytes: 1) {
                        got = "\(n)"
                    } else {
                        fellBack += 1
                        #expect(flaw == 3, "seed \(seed): no quote, yet no fast count")
                        var n = 0
                        while let batch = try reader.next() { n += batch.count }
                        got = "\(n)"
                    }
                } catch {
                    got = "\(error)"
                }
                #expect(got == expected, "seed \(seed), flaw \(flaw), \(threads) threads")
            }
        }
        #expect(fellBack > 0)
    }

    /// Records of 20–130 bytes, as real files have (the count reads 64-byte blocks, most holding one or
    /// two newlines): a flaw anywhere among them (a field too many or too few, a record past the limit,
    /// a blank or CR-only line, a one-byte record) is counted or reported exactly as the batches do it.
    @Test func blocksOfOrdinaryRecordsAgreeWithBatches() throws {
        let dir = ScratchDirectory()
        let limits = ReadLimits(maxRecordBytes: 100)
        for seed in UInt64(1)...40 {
            var g = CSVReaderTests.Generator(state: seed &* 7919)
            let columns = Int(seed % 4) + 1
            let rows = 300 + g.below(300)
            var text = (0..<columns).map { "c\($0)" }.joined(separator: ",") + "\n"
            let flawAt = g.below(rows)
            let flaw = Int(seed % 7)
            for r in 0..<rows {
                var fields = (0..<columns).map { _ in
                    String(repeating: "v", count: 20 / columns + g.below(30 / columns))
                }
                if r == flawAt {
                    switch flaw {
                    case 1: fields.append("extra")
                    case 2 where columns > 1: fields.removeLast()
                    case 3: fields[0] = String(repeating: "w", count: 101)
                    case 4: text += "\n"
                    case 5: text += "\r\n"
                    case 6 where columns == 1: fields[0] = "z"
                    default: break
                    }
                }
                text += fields.joined(separator: ",") + (g.below(5) == 0 ? "\r\n" : "\n")
            }
            let path = dir.path + "/o\(seed).csv"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let expected = Self.byBatches(path, limits: limits)
            for threads in [1, 2, 5] {
                let reader = try CSVReader(path: path, batchRows: 16, limits: limits)
                reader.scan(ScanRequest(projection: []))
                let got: String
                do {
                    let counted = try reader.countRemaining(threads: threads, minimumRangeBytes: 1)
                    got = counted.map { "\($0.records)" } ?? "none"
                } catch {
                    got = "\(error)"
                }
                #expect(got == expected, "seed \(seed), flaw \(flaw), \(threads) threads")
            }
        }
    }

    /// Both ways of counting report the first bad record in file order, whatever kind: a record with
    /// a field too few before one past --max-record-bytes in the same batch; and a last line ending
    /// in a CR without a newline counts that CR towards the limit.
    @Test func errorsComeInFileOrderOnBothPaths() throws {
        let dir = ScratchDirectory()
        let order = dir.write(
            "order.csv",
            "a,b\n" + String(repeating: "1,2\n", count: 20_000) + "3\n4," + String(repeating: "x", count: 100) + "\n"
                + String(repeating: "1,2\n", count: 10))
        let cr = dir.write("cr.csv", "a,b\n1,2\n12345,7\r")
        for (path, extra, message) in [
            (order, ["--max-record-bytes", "50"], "order.csv:20002:2: expected 2 fields, found 1"),
            (cr, ["--max-record-bytes", "7", "--batch-rows", "1"], "cr.csv:3:1: record is longer than 7 bytes"),
        ] {
            for path2 in [[], ["--where", "true"]] {
                let r = try Eddy.run(["eval", path, "--select", "count(*)"] + extra + path2)
                #expect(r.status == 1 && r.stderr.contains(message), "\(path2): \(r.stderr)")
            }
        }
    }

    /// Only a query of `count(*)` items without --where skips the reader's type inference.
    @Test func onlyCountStarQueriesReadNoColumn() {
        #expect(Evaluation.readsNoColumn(whereText: nil, selectText: "count(*)"))
        #expect(Evaluation.readsNoColumn(whereText: nil, selectText: "COUNT(*), count(*) as n"))
        #expect(!Evaluation.readsNoColumn(whereText: "true", selectText: "count(*)"))
        #expect(!Evaluation.readsNoColumn(whereText: nil, selectText: nil))
        #expect(!Evaluation.readsNoColumn(whereText: nil, selectText: "count(*), count(a)"))
        #expect(!Evaluation.readsNoColumn(whereText: nil, selectText: "count(*) + 1"))
        #expect(!Evaluation.readsNoColumn(whereText: nil, selectText: "count(*"))
    }

    @Test func theBinaryCountsALargeFileOnAllThreadsAndNamesTheBadLine() throws {
        let dir = ScratchDirectory()
        let path = dir.path + "/big.csv"
        let line = Array("12,345,six\n".utf8)
        var bytes = Array("a,b,c\n".utf8)
        bytes.reserveCapacity(line.count * 2_000_001)
        for _ in 0..<2_000_000 { bytes += line }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        var r = try Eddy.run(["eval", path, "--select", "count(*)", "--threads", "2", "--explain", "--format", "csv"])
        #expect(r.status == 0 && r.stdout == "count(*)\n2000000\n", "\(r.stderr)")
        #expect(r.stderr.contains("2000000 records counted in the file on 2 threads"), "\(r.stderr)")
        // A record with a field too many near the end: its line, as the batches would name it.
        bytes += Array("1,2,3,4\n".utf8) + line
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        r = try Eddy.run(["eval", path, "--select", "count(*)", "--threads", "2"])
        #expect(r.status != 0 && r.stderr.contains("big.csv:2000002:4: expected 3 fields, found 4"), "\(r.stderr)")
        // A quote anywhere: the batches count it (a quoted newline is one record).
        bytes.removeLast(line.count + 8)
        bytes += Array("\"x\ny\",1,2\n".utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        r = try Eddy.run(["eval", path, "--select", "count(*)", "--threads", "2", "--explain", "--format", "csv"])
        #expect(r.status == 0 && r.stdout == "count(*)\n2000001\n", "\(r.stderr)")
        #expect(!r.stderr.contains("records counted in the file"), "\(r.stderr)")
    }
}
