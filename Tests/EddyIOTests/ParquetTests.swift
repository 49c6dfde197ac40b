@_spi(Host) import Eddy
import EddyHostTestSupport
@_spi(Host) import EddyQuery
import Foundation
import Testing

@testable import EddyIO

@Suite struct ParquetTests {
    @Test(arguments: ParquetFixtures.names)
    func fixturesGiveTheSameAnswerThroughTheBinary(_ name: String) throws {
        let r = try Eddy.run(["eval", ParquetFixtures.path(name), "--select", ParquetFixtures.query, "--format", "csv"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").last.map(String.init) == ParquetFixtures.answer, "\(r.stdout)")
    }

    /// Read unmapped (the server's own process, `--workers 0`), a file is copied when it is opened: cut
    /// short afterwards, its pages are still read (a mapping would end the process with SIGBUS); cut
    /// before it is opened, it is an error naming it.
    @Test(arguments: ParquetFixtures.names)
    func anUnmappedFileCutAfterItWasOpenedIsStillReadWhole(_ name: String) throws {
        let scratch = ScratchDirectory()
        let path = scratch.path + "/" + name
        try FileManager.default.copyItem(atPath: ParquetFixtures.path(name), toPath: path)
        let file = try ParquetFile(path: path, mapped: false)
        #expect(truncate(path, 0) == 0)
        let e = try Evaluation(
            reader: ParquetTableReader(file: file), whereText: nil, selectText: ParquetFixtures.query,
            context: Session().makeContext())
        var out = ""
        try e.run(into: ResultWriter(format: .csv, names: e.names) { out += $0 })
        #expect(out.split(separator: "\n").last.map(String.init) == ParquetFixtures.answer, "\(out)")
        #expect(throws: IOError.self) { try ParquetFile(path: path, mapped: false) }
    }

    @Test func dictionaryPagesBecomeDictionariesAndStatisticsSkipRowGroups() throws {
        let path = ParquetFixtures.path("dict-snappy-v1.parquet")
        let r = try Eddy.run(["eval", path, "--where", "id >= 150 and s = 'beta'", "--select", "id, s", "--explain"])
        #expect(r.status == 0, "\(r.stderr)")
        // 200 rows in row groups of 64: ids 150… lie in the third and fourth; the first two are skipped.
        #expect(r.stderr.contains("== row groups: 2 read, 2 skipped by their statistics (of 4;"), "\(r.stderr)")
        // The string column is the file's dictionary over its codes, not decoded per row.
        #expect(r.stderr.contains("eddy.dict(utf8?, len=64) distinct=3"), "\(r.stderr)")
        let ids = r.stdout.split(separator: "\n").dropFirst(2).dropLast().compactMap {
            Int($0.split(separator: "│")[0].trimmingCharacters(in: .whitespaces))
        }
        #expect(ids == (150..<200).filter { $0 % 3 == 1 && $0 % 11 != 0 })
        let all = try Eddy.run([
            "eval", path, "--where", "id >= 150 and s = 'beta'", "--select", "id, s", "--no-zone-maps",
        ])
        #expect(all.stdout == r.stdout)
    }

    @Test func countAloneIsTheFootersRowCountsAndExplainSaysSo() throws {
        let path = ParquetFixtures.path("dict-snappy-v1.parquet")
        let r = try Eddy.run(["eval", path, "--select", "count(*)", "--format", "csv", "--explain"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").last == "200", "\(r.stdout)")
        #expect(
            r.stderr.contains(
                "== count(*): 200 rows, the sum of the row groups' row counts in the footer; no page read"),
            "\(r.stderr)")
        #expect(r.stderr.contains("== row groups: 0 read, 0 skipped"), "\(r.stderr)")
        // Not the CSV reader's wording: no record of a Parquet file is counted or checked for its fields.
        #expect(!r.stderr.contains("records counted in the file"), "\(r.stderr)")
    }

    @Test func anErrorInARowNamesTheFileAndTheRowNotALine() throws {
        let path = ParquetFixtures.path("plain-zstd-v2.parquet")
        let r = try Eddy.run(["eval", path, "--select", "id * 9223372036854775807"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("(rows counted from 0 at file row 0 of \(path))"), "\(r.stderr)")
        #expect(!r.stderr.contains("input line"), "\(r.stderr)")
    }

    @Test(arguments: ParquetFixtures.names)
    func convertCutsRowGroupsIntoChunksOfChunkRows(_ name: String) throws {
        let work = ScratchDirectory()
        let out = work.path + "/t.eddy"
        let r = try Eddy.run(["convert", ParquetFixtures.path(name), out, "--chunk-rows", "64"])
        #expect(r.status == 0, "\(r.stderr)")
        // 200 rows in chunks of 64: 64, 64, 64, 8 (row groups of a fixture are not cut across).
        #expect(r.stdout.contains(": 200 rows, ") && r.stdout.contains(" 4 chunks, "), "\(r.stdout)")
        let answer = try Eddy.run(["eval", out, "--select", ParquetFixtures.query, "--format", "csv"])
        #expect(answer.stdout.split(separator: "\n").last.map(String.init) == ParquetFixtures.answer, "\(answer)")
    }

    @Test(arguments: ParquetFixtures.names)
    func aConvertedFileKeepsTheNullsOfDictionaryColumns(_ name: String) throws {
        // The row groups stay whole (the default --chunk-rows): their dictionary columns' null counts go
        // into the chunk statistics that `is null` is answered from.
        let work = ScratchDirectory()
        let out = work.path + "/t.eddy"
        let r = try Eddy.run(["convert", ParquetFixtures.path(name), out])
        #expect(r.status == 0, "\(r.stderr)")
        for predicate in ["k is null", "s is null", "k is not null and s is null"] {
            let parquet = try Eddy.run(
                ["eval", ParquetFixtures.path(name), "--where", predicate, "--select", "count(*)", "--format", "csv"])
            let eddy = try Eddy.run(["eval", out, "--where", predicate, "--select", "count(*)", "--format", "csv"])
            #expect(parquet.status == 0 && parquet.stdout == eddy.stdout, "\(predicate): \(parquet) \(eddy)")
        }
        let nulls = try Eddy.run(["eval", out, "--where", "k is null", "--select", "count(*)", "--format", "csv"])
        #expect(nulls.stdout == "count(*)\n40\n", "\(nulls.stdout)")
    }

    @Test func onlyTheNamedColumnsAreDecoded() throws {
        let file = try ParquetFile(path: ParquetFixtures.path("plain-zstd-v2.parquet"))
        let reader = ParquetTableReader(file: file)
        reader.scan(ScanRequest(projection: [0]))
        let batch = try #require(try reader.next())
        #expect(batch.columns[0] is PrimitiveArray)
        // Columns not named are placeholders: their chunks are not read.
        #expect(batch.columns[1...].allSatisfy { $0 is ConstantArray })
    }

    /// Late materialisation: a chunk decoded for the rows a filter keeps holds what the full chunk holds
    /// at those rows, for every column, encoding and null pattern of the fixtures, and filters that keep
    /// nothing, everything, one row or a scatter.
    @Test(arguments: ParquetFixtures.names)
    func aChunkDecodedForTheRowsKeptEqualsTheFullChunkAtThoseRows(_ name: String) throws {
        let file = try ParquetFile(path: ParquetFixtures.path(name))
        var seed: UInt64 = 25
        for g in file.rowGroups.indices {
            let rows = file.rows(g)
            var masks: [[Bool]] = [
                Array(repeating: false, count: rows), Array(repeating: true, count: rows),
                (0..<rows).map { $0 == rows - 1 }, (0..<rows).map { $0 % 7 == 3 },
            ]
            for _ in 0..<4 {
                masks.append(
                    (0..<rows).map { _ in
                        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                        return seed >> 60 < 5
                    })
            }
            for k in file.schema.fields.indices {
                let full = try file.column(group: g, column: k)
                for mask in masks {
                    let late = try file.column(group: g, column: k, keep: Bitmap(mask))
                    let kept = mask.indices.filter { mask[$0] }
                    #expect(late.count == kept.count, "\(name) group \(g) column \(k)")
                    guard late.count == kept.count else { continue }
                    for (j, i) in kept.enumerated() {
                        #expect(try late.scalar(at: j) == full.scalar(at: i), "\(name) group \(g) column \(k) row \(i)")
                    }
                }
            }
        }
    }

    @Test func aHandBuiltFileReads() throws {
        let scratch = ScratchDirectory()
        for codec in [Int64(0), 1] {
            let path = scratch.path + "/x\(codec).parquet"
            FileManager.default.createFile(
                atPath: path, contents: Data(HandBuiltParquet(values: Array(0..<100), codec: codec).bytes()))
            let r = try Eddy.run(["eval", path, "--select", "count(*), sum(x), max(x)", "--format", "csv"])
            #expect(r.stdout == "count(*),sum(x),max(x)\n100,4950,99\n", "\(r.stderr)")
        }
    }

    /// Each hostile file: its error names the file and the check that failed; nothing traps.
    @Test(arguments: [
        ("truncated", "no PAR1 magic"),
        ("footer length", "the footer length is"),
        ("rows", "claims 1099511627776 rows"),
        ("offset", "column data lies in 4..<"),
        ("snappy", "snappy:"),
        ("page values", "a data page of 500 values where 100 remain"),
        ("nested", "column 'group' is nested"),
        ("deep", "nested deeper than 32"),
        ("huge list", "a list of 4294967295 elements"),
        ("page size", "more than the 1073741824 allowed"),
        ("short page", "an uncompressed page of 800 bytes claims 799"),
        ("v2 nulls", "a v2 data page claims 5 nulls; its definition levels hold 0"),
    ])
    func hostileFilesAreRefusedWithTheCheckThatFailed(_ kind: String, _ expected: String) throws {
        let scratch = ScratchDirectory()
        var p = HandBuiltParquet()
        switch kind {
        case "rows": p.rowGroupRows = 1 << 40
        case "offset": p.dataPageOffset = 1 << 40
        case "snappy":
            p.codec = 1
            p.body = [0xA0, 0x06, 0x00, 0x41, 0x09, 0xFF, 0x00]
        case "page values": p.pageValues = 500
        case "nested": p.nested = true
        case "deep":
            var w = ThriftWriter()
            for _ in 0..<1000 { w.field(99, 12) }
            p.footerTail = w.bytes
        case "huge list":
            var w = ThriftWriter()
            w.list(99, elementType: 5, count: Int(UInt32.max)) { _ in }
            p.footerTail = w.bytes
        case "page size":
            p.codec = 1
            p.uncompressedSize = Int64(Int32.max)
        case "short page": p.uncompressedSize = 799
        case "v2 nulls": p.v2Nulls = 5
        default: break
        }
        var bytes = p.bytes()
        if kind == "truncated" { bytes.removeLast(3) }
        if kind == "footer length" { bytes[bytes.count - 5] = 0x7F }
        let path = scratch.path + "/\(kind.replacingOccurrences(of: " ", with: "-")).parquet"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let r = try Eddy.run(["eval", path, "--select", "count(*), sum(x)"])
        #expect(r.status == 1, "\(kind): \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains(path) && r.stderr.contains(expected), "\(kind): \(r.stderr)")
    }

    @Test func snappyReadsCopiesAndRefusesBadOnes() throws {
        // "abcd" then a copy of 8 bytes from 4 back (overlapping): "abcdabcdabcd".
        let good: [UInt8] = [12, 0x0C, 0x61, 0x62, 0x63, 0x64, 0x11, 0x04]
        var out = [UInt8](repeating: 0, count: 12)
        let n = try good.withUnsafeBytes { input in
            try out.withUnsafeMutableBytes { try Snappy.decompress(input, into: $0) }
        }
        #expect(n == 12 && String(decoding: out, as: UTF8.self) == "abcdabcdabcd")
        let bad: [[UInt8]] = [
            [12, 0x0C, 0x61, 0x62, 0x63, 0x64, 0x11, 0x05],  // a copy from before the start
            [13, 0x0C, 0x61, 0x62, 0x63, 0x64, 0x11, 0x04],  // one byte short of the declared length
            [12, 0xFC, 0xFF, 0xFF, 0xFF, 0x7F],  // a literal longer than the input
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],  // a runaway length preamble
        ]
        for b in bad {
            var sink = [UInt8](repeating: 0, count: Int(b[0] & 0x7F))
            #expect(throws: ParquetProblem.self) {
                _ = try b.withUnsafeBytes { input in
                    try sink.withUnsafeMutableBytes { try Snappy.decompress(input, into: $0) }
                }
            }
        }
    }

    @Test func aServerAnswersAParquetPathAndUpload() throws {
        let path = ParquetFixtures.path("delta-gzip.parquet")
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let server = try Server(pluginDir: ScratchDirectory().path, dataDirs: [dir])
        let query: [String: Any] = ["path": path, "where": "k = 3", "select": "count(*), sum(id), min(s)"]
        let (status, byPath) = try server.request("POST", "/eval", json: query)
        #expect(status == 200, "\(byPath)")
        let row = (byPath["result"] as? [[String: Any]])?.first
        // k = 3: ids ≡ 3 (mod 7), not ≡ 0 (mod 5).
        let ids = (0..<200).filter { $0 % 7 == 3 && $0 % 5 != 0 }
        #expect(row?["count(*)"] as? Int == ids.count && row?["sum(id)"] as? Int == ids.reduce(0, +), "\(byPath)")
        let body = try Data(contentsOf: URL(fileURLWithPath: path))
        let (s2, uploaded) = try server.request(
            "POST", "/eval?where=k%20%3D%203&select=count(*)", body: body, contentType: "application/octet-stream")
        #expect(s2 == 200 && (uploaded["result"] as? [[String: Any]])?.first?["count(*)"] as? Int == ids.count)
    }
}
