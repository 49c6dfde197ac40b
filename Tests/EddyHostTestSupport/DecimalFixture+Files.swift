import Foundation
import Testing

/// The Decimal fixture's CSV and an `.eddy` file written with its clean build (issue 21's storage checks
/// and the server's suites that need a file in a plugin encoding).
extension DecimalFixture {
    package static let chunkRows = 1000

    /// Decimal-looking f64 values with nulls, 3,500 rows (chunks of 1,000: the last one short).
    package static let csv: String = {
        var text = "id,x\n"
        let values = ["12.34", "0.1", "100.25", "", "-3.5", "7", "0.07", "19.99", "250.5", "", "0.3"]
        for i in 0..<3500 { text += "\(i),\(values[(i * 7 + i / 13) % values.count])\n" }
        return text
    }()

    /// A directory holding only the fixture built with `bug` (nil: clean) as `decimal.so`.
    package static func pluginDirectory(_ bug: DecimalFixture.Bug?) throws -> ScratchDirectory {
        let dir = ScratchDirectory()
        try dir.copy(try DecimalFixture.plugin(bug), as: "decimal.so")
        return dir
    }

    /// The CSV, and the `.eddy` file `eddy convert` wrote from it with the clean plugin loaded.
    package static func files(in data: ScratchDirectory) throws -> (csv: String, eddy: String) {
        let csv = data.write("prices.csv", Self.csv)
        let eddy = data.path + "/prices.eddy"
        let clean = try pluginDirectory(nil)
        let converted = try Eddy.run([
            "convert", csv, eddy, "--chunk-rows", String(chunkRows), "--plugin-dir", clean.path,
        ])
        try #require(converted.status == 0, "\(converted.stderr)")
        let inspected = try Eddy.run(["inspect", eddy, "--plugin-dir", clean.path])
        try #require(inspected.status == 0, "\(inspected.stderr)")
        // The column is stored as the plugin's encoding, which the file records as the plugin's.
        try #require(inspected.stdout.contains("fixture.decimal from decimal 0.1.0"), "\(inspected.stdout)")
        try #require(inspected.stdout.contains("fixture.decimal(f64?)"), "\(inspected.stdout)")
        return (csv, eddy)
    }
}
