@_spi(Host) import Eddy
import EddyHostTestSupport
import Foundation
import Testing

@testable import EddyIO

/// Page statistics: where a file has a page index, the pieces of a row group that its pages' bounds rule
/// out are not read, the answer is what reading everything gives, and an index that lies is refused.
@Suite struct ParquetPageIndexTests {
    /// 200 rows in row groups of 128 and 72, pages of 16 rows for the sorted `id` (see make-fixtures.py).
    static let fixture = ParquetFixtures.path("pageindex-dict-v1.parquet")
    /// The same rows and pages without a page index: the bounds come from the data page headers.
    static let withPageIndexOrHeaders = ["pageindex-dict-v1.parquet", "headerstats-plain-v2.parquet"]

    static func ids(_ table: String) -> [Int] {
        table.split(separator: "\n").dropFirst(2).dropLast().compactMap {
            Int($0.split(separator: "│")[0].trimmingCharacters(in: .whitespaces))
        }
    }

    @Test(arguments: withPageIndexOrHeaders)
    func pagesOfASortedColumnOutsideTheFilterAreNotRead(_ name: String) throws {
        let query = ["eval", ParquetFixtures.path(name), "--where", "id >= 100 and id < 120", "--select", "id, k, s"]
        let r = try Eddy.run(query + ["--explain"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("== row groups: 1 read, 1 skipped by their statistics (of 2;"), "\(r.stderr)")
        // Ids 100..<120 lie in id's pages 96..<112 and 112..<128: the rest of row group 0 is ruled out, and
        // no column's pages wholly in it are decompressed.
        #expect(r.stderr.contains("skipped by their statistics (96 rows of the row groups read ruled out)"))
        let skipped = r.stderr.split(separator: "\n").first { $0.hasPrefix("== pages: ") }.flatMap {
            Int($0.split(separator: ",")[1].split(separator: " ")[0])
        }
        #expect((skipped ?? 0) >= 6, "\(r.stderr)")
        #expect(Self.ids(r.stdout) == Array(100..<120), "\(r.stdout)")
        let all = try Eddy.run(query + ["--no-zone-maps", "--explain"])
        #expect(all.stdout == r.stdout)
        #expect(all.stderr.contains("== pages: none skipped"), "\(all.stderr)")
    }

    @Test func anErrorInARowSaysItsRowIsCountedAmongThoseThePagesLeft() throws {
        let r = try Eddy.run([
            "eval", Self.fixture, "--where", "id >= 100 and id < 120 and id * 92233720368547758 > 0", "--select", "id",
        ])
        #expect(r.status == 1, "\(r.stdout)")
        // Row 5 of the batch is file row 101: the batch holds rows 96..<128 of the row group at row 0.
        #expect(
            r.stderr.contains(
                "in row 5: 101 * 92233720368547758 does not fit i64 (rows counted among those the page statistics left "
                    + "in the row group that starts at file row 0 of \(Self.fixture))"), "\(r.stderr)")
    }

    /// Filters over the sorted id, nulls (`k`, `s`), strings and unsorted columns, alone and together: the
    /// same rows, in the same order, and the same aggregates as reading every page.
    @Test(arguments: [
        "id >= 100 and id < 120", "id < 20 or id >= 190", "id = 77", "k is null and id < 50", "id > 60 and s = 'beta'",
        "s is null", "s is not null and id < 40", "id >= 120 and id < 136", "u > 100 and id < 150", "k = 3 or id = 5",
        "id < 0", "not (id < 150)",
    ])
    func theAnswerIsWhatReadingEveryPageGives(_ predicate: String) throws {
        for name in Self.withPageIndexOrHeaders {
            try sameAnswer(ParquetFixtures.path(name), predicate)
        }
    }

    func sameAnswer(_ path: String, _ predicate: String) throws {
        for select in ["id, k, s, f, b, u", "count(*), sum(k), count(s), min(s), max(f), sum(u)", "s, id"] {
            let query = ["eval", path, "--where", predicate, "--select", select, "--format", "csv"]
            let pages = try Eddy.run(query)
            let all = try Eddy.run(query + ["--no-zone-maps"])
            #expect(pages.status == 0 && all.status == 0, "\(predicate): \(pages.stderr) \(all.stderr)")
            #expect(pages.stdout == all.stdout, "\(predicate) | \(select)")
        }
    }

    // MARK: Hostile indexes

    /// Where column `id`'s offset index lies in row group 0, and the byte ranges of each page location's
    /// three varints (offset, size, first row), found by walking its Thrift bytes.
    static func idOffsetIndex(_ bytes: [UInt8]) throws -> [[Range<Int>]] {
        let c = bytes.count
        let n = Int(bytes[c - 8]) | Int(bytes[c - 7]) << 8 | Int(bytes[c - 6]) << 16 | Int(bytes[c - 5]) << 24
        let footer = Array(bytes[(c - 8 - n)..<(c - 8)])
        let meta = try footer.withUnsafeBytes { try ParquetFileMetaData.decode($0) }
        var pos = Int(try #require(meta.rowGroups[0].columns[0].offsetIndexOffset))
        func varint() -> Range<Int> {
            let start = pos
            while bytes[pos] & 0x80 != 0 { pos += 1 }
            pos += 1
            return start..<pos
        }
        try #require(bytes[pos] == 0x19)  // field 1, a list
        pos += 1
        let count = Int(bytes[pos] >> 4)
        try #require(bytes[pos] & 0x0F == 12 && count < 15)  // of structs, a short count
        pos += 1
        var pages: [[Range<Int>]] = []
        for _ in 0..<count {
            var fields: [Range<Int>] = []
            while bytes[pos] != 0 {
                pos += 1
                fields.append(varint())
            }
            pos += 1
            pages.append(fields)
        }
        return pages
    }

    /// `v` zigzag-encoded as a varint of exactly `length` bytes (a longer form than needed is still valid).
    static func varint(_ v: Int64, length: Int) -> [UInt8] {
        let z = UInt64(bitPattern: (v << 1) ^ (v >> 63))
        return (0..<length).map { i in
            UInt8(truncatingIfNeeded: z >> UInt64(7 * i)) & 0x7F | (i < length - 1 ? 0x80 : 0)
        }
    }

    static func zigzag(_ bytes: ArraySlice<UInt8>) -> Int64 {
        let z = bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element & 0x7F) << UInt64(7 * $1.offset) }
        return Int64(bitPattern: (z >> 1) ^ (0 &- (z & 1)))
    }

    /// Each lie in the id column's offset index: the query that would judge rows by it is refused with the
    /// check that failed, naming the file; reading without statistics does not read the index.
    @Test(arguments: [
        ("first row shifted", "the offset index disagrees with the pages"),
        ("rows out of order", "the offset index starts page 2 at row"),
        ("page before the one it follows", "the offset index puts page 1 at bytes 4..<"),
        ("first page not at row 0", "the first page starts at row 0"),
    ])
    func anOffsetIndexThatLiesIsRefused(_ kind: String, _ expected: String) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.fixture)))
        let pages = try Self.idOffsetIndex(bytes)
        try #require(pages.count >= 3 && pages.allSatisfy { $0.count == 3 })
        func set(_ page: Int, _ field: Int, _ value: Int64) {
            let r = pages[page][field]
            bytes.replaceSubrange(r, with: Self.varint(value, length: r.count))
        }
        switch kind {
        case "first row shifted": set(2, 2, Self.zigzag(bytes[pages[2][2]]) + 1)
        case "rows out of order": set(2, 2, Self.zigzag(bytes[pages[1][2]]))
        case "page before the one it follows": set(1, 0, 4)
        default: set(0, 2, 1)
        }
        let scratch = ScratchDirectory()
        let path = scratch.path + "/\(kind.replacingOccurrences(of: " ", with: "-")).parquet"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let query = ["eval", path, "--where", "id >= 100 and id < 120", "--select", "id, s"]
        let r = try Eddy.run(query)
        #expect(r.status == 1, "\(kind): \(r.stdout)")
        #expect(r.stderr.contains(path), "\(kind): \(r.stderr)")
        #expect(r.stderr.contains(expected), "\(kind): \(r.stderr)")
        let all = try Eddy.run(query + ["--no-zone-maps"])
        #expect(all.status == 0 && Self.ids(all.stdout) == Array(100..<120), "\(kind): \(all.stderr)")
    }

    @Test func aColumnIndexWhoseListsDisagreeWithTheOffsetIndexIsRefused() throws {
        let rows = 48
        var offsets = ThriftWriter()
        offsets.list(1, elementType: 12, count: 3) { w in
            for p in 0..<3 {
                w.i64(1, Int64(100 + 20 * p))
                w.i32(2, 20)
                w.i64(3, Int64(16 * p))
                w.stop()
            }
        }
        offsets.stop()
        var index = try offsets.bytes.withUnsafeBytes { try ParquetPageIndex.offsets($0, rows: rows, chunk: 100..<160) }
        #expect(index.pages.map(\.firstRow) == [0, 16, 32])
        #expect(index.rows(2, of: rows) == 32..<48)
        // The same pages in a chunk that ends earlier: the last page lies past it.
        #expect(throws: ParquetProblem.self) {
            try offsets.bytes.withUnsafeBytes { try ParquetPageIndex.offsets($0, rows: rows, chunk: 100..<150) }
        }
        // More pages than rows.
        #expect(throws: ParquetProblem.self) {
            try offsets.bytes.withUnsafeBytes { try ParquetPageIndex.offsets($0, rows: 2, chunk: 100..<160) }
        }
        func columnIndex(mins: Int, maxs: Int?) -> [UInt8] {
            var w = ThriftWriter()
            w.list(1, elementType: 2, count: 3) { $0.bytes += [2, 1, 2] }
            w.list(2, elementType: 8, count: mins) { l in for _ in 0..<mins { l.bytes += [1, 7] } }
            if let maxs { w.list(3, elementType: 8, count: maxs) { l in for _ in 0..<maxs { l.bytes += [1, 9] } } }
            w.i32(4, 0)
            w.stop()
            return w.bytes
        }
        var bad = index
        do {
            try columnIndex(mins: 2, maxs: 3).withUnsafeBytes { try bad.bounds($0, rows: rows) }
            Issue.record("two min_values for three pages were taken")
        } catch let p as ParquetProblem {
            #expect(p.message == "the column index has 2 min_values for the offset index's 3 pages")
        }
        do {
            try columnIndex(mins: 3, maxs: nil).withUnsafeBytes { try bad.bounds($0, rows: rows) }
            Issue.record("a column index without max_values was taken")
        } catch let p as ParquetProblem {
            #expect(p.message.contains("lacks null_pages, min_values or max_values"), "\(p.message)")
        }
        try columnIndex(mins: 3, maxs: 3).withUnsafeBytes { try index.bounds($0, rows: rows) }
        #expect(index.nulls.map { $0 == .all } == [false, true, false])
        #expect(index.minValues == [[7], nil, [7]] && index.maxValues == [[9], nil, [9]])
    }
}
