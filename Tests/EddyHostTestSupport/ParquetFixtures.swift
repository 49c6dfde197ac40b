import Foundation

/// The committed Parquet fixtures (Tests/Fixtures/parquet, written by its make-fixtures.py): 200 rows.
package enum ParquetFixtures {
    package static let names = [
        "dict-snappy-v1.parquet", "plain-zstd-v2.parquet", "delta-gzip.parquet", "pageindex-dict-v1.parquet",
        "headerstats-plain-v2.parquet",
    ]

    package static func path(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/parquet/\(name)").path
    }

    /// `count(*), sum(id), count(k), sum(k), count(s), min(s), max(s), sum(f), count(b), sum(u)` as CSV.
    package static let answer = "200,19900,160,474,181,alpha,gamma,4975.0,200,19900"
    package static let query = "count(*), sum(id), count(k), sum(k), count(s), min(s), max(s), sum(f), count(b), sum(u)"
}
