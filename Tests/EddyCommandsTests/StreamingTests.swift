import EddyHostTestSupport
import Foundation
import Testing

@Suite struct StreamingTests {
    @Test func memoryStaysBoundedAsTheFileGrows() throws {
        func peak(rows: Int) throws -> Int {
            let dir = ScratchDirectory()
            var text = "id,city,fare,note\n"
            text.reserveCapacity(rows * 40)
            for i in 0..<rows {
                text += "\(i),\(["Lyon", "Paris", "Nice"][i % 3]),\(Double(i % 1000) / 8),row number \(i)\n"
            }
            let f = dir.write("big.csv", text)

            let r = try Eddy.run([
                "eval", f, "--where", "city = 'Nice'", "--select", "count(*), sum(fare)", "--format", "csv",
                "--batch-rows", "5000", "--report-memory",
            ])
            #expect(r.status == 0, "\(r.stderr)")
            let line = r.stderr.split(separator: "\n").first { $0.hasPrefix("peak resident memory:") } ?? ""
            return Int(line.split(separator: " ")[3]) ?? -1
        }
        let small = try peak(rows: 40_000)
        let large = try peak(rows: 320_000)  // 8× the rows (about 11 MB of CSV)

        #expect(small > 0 && large > 0)
        // Batches are read, compressed, evaluated and dropped: the peak does not follow the file size.
        #expect(large - small < 12_000, "peak RSS \(small) KiB for 40k rows, \(large) KiB for 320k rows")
        print("streaming: peak RSS \(small) KiB (40k rows) vs \(large) KiB (320k rows)")
    }
}
