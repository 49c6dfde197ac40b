import EddyHostTestSupport
import Foundation
import Testing

/// `eddy eval` and `eddy serve` (its workers) open a table one way (`InputFormat`, `openTable`): the
/// same queries on the same files give the same answers both ways, and the same refusals.
@Suite(.serialized) struct OnePipelineTests {
    /// The trips table with a nullable text column, as CSV, as JSON Lines and converted to `.eddy`.
    static func tables(_ work: ScratchDirectory) throws -> [String] {
        let cities = ["Lyon", "Paris", "Nice", "Lille", "Brest", "Zürich"]
        var csv = "trip_id,city,fare,tip,note\n"
        var jsonl = ""
        for i in 0..<2_000 {
            let city = cities[(i * 7 + i / 3) % cities.count]
            let fare = Double(i % 97) / 4
            let tip = i % 9 == 0 ? nil : i % 13
            let note = i % 5 == 0 ? nil : "n\(i % 11)"
            csv += "\(100_000 + i),\(city),\(fare),\(tip.map(String.init) ?? ""),\(note ?? "")\n"
            jsonl +=
                "{\"trip_id\": \(100_000 + i), \"city\": \"\(city)\", \"fare\": \(fare), \"tip\": "
                + "\(tip.map(String.init) ?? "null"), \"note\": \(note.map { "\"\($0)\"" } ?? "null")}\n"
        }
        let csvPath = work.write("trips.csv", csv)
        let jsonlPath = work.write("trips.jsonl", jsonl)
        let eddyPath = work.path + "/trips.eddy"
        let converted = try Eddy.run(["convert", csvPath, eddyPath])
        guard converted.status == 0 else { throw EddyTestError("convert failed: \(converted.stderr)") }
        return [csvPath, jsonlPath, eddyPath]
    }

    /// (where, select) on the trips table.
    static let tripQueries: [(String?, String)] = [
        (nil, "count(*)"),
        (nil, "count(*), sum(fare), min(fare), max(fare)"),
        ("city = 'Lyon'", "count(*), sum(tip)"),
        ("city = 'Zürich' and fare > 10", "trip_id, fare"),
        ("tip is null", "count(*)"),
        ("note is not null and tip > 6", "count(note), min(note), max(note)"),
        ("city like 'L%'", "count(city), min(city), max(note)"),
        ("fare * 2 > 40 or tip = 0", "count(*), mean(fare)"),
        ("trip_id >= 101990", "trip_id, city, fare, tip, note"),
        ("not (city = 'Paris' or city = 'Nice')", "count(*), sum(trip_id)"),
        ("city != 'Brest' and note = 'n3'", "trip_id, fare + tip as total"),
        (nil, "min(city), max(city), count(tip), sum(tip)"),
    ]

    /// (where, select) on the committed Parquet fixtures' columns (id, k, s, f, b, u).
    static let parquetQueries: [(String?, String)] = [
        (nil, ParquetFixtures.query),
        ("k > 2", "count(*), sum(id)"),
        ("s = 'beta'", "count(*), min(id), max(id)"),
        ("s is null", "count(*)"),
        ("id < 10", "id, k, s, f"),
        ("f >= 20 and b", "count(*), sum(u)"),
        ("s like '%a'", "count(s), max(s), sum(f)"),
    ]

    /// A result as CSV, lines sorted (rows may come in another order from more threads).
    static func lines(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard let header = lines.first else { return [] }
        return [header] + lines.dropFirst().sorted()
    }

    @Test func theSameQueriesGiveTheSameAnswersThroughEvalAndServe() throws {
        let work = ScratchDirectory()
        let tables = try Self.tables(work)
        var cases: [(String, String?, String)] = []
        for file in tables {
            for (predicate, select) in Self.tripQueries { cases.append((file, predicate, select)) }
        }
        for name in ParquetFixtures.names.prefix(2) {
            for (predicate, select) in Self.parquetQueries {
                cases.append((ParquetFixtures.path(name), predicate, select))
            }
        }
        #expect(cases.count == 50)
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [work.path, ParquetFixtures.path("")],
            arguments: ["--workers", "1"])
        defer { server.stop() }
        var compared = 0
        for (file, predicate, select) in cases {
            var arguments = ["eval", file, "--select", select, "--format", "csv"]
            if let predicate { arguments += ["--where", predicate] }
            let cli = try Eddy.run(arguments)
            #expect(cli.status == 0, "\(file) \(predicate ?? "") \(select): \(cli.stderr)")
            var body: [String: Any] = ["path": file, "select": select, "format": "csv"]
            if let predicate { body["where"] = predicate }
            let (status, response) = try server.request("POST", "/eval", json: body)
            #expect(status == 200, "\(file) \(predicate ?? "") \(select): \(response)")
            let served = response["result"] as? String ?? ""
            #expect(
                Self.lines(cli.stdout) == Self.lines(served),
                "\(file) where \(predicate ?? "-") select \(select)\ncli:\n\(cli.stdout)\nserve:\n\(served)")
            if cli.status == 0 && status == 200 { compared += 1 }
        }
        #expect(compared == cases.count)
    }

    @Test func inputFormatsAreNamedAndRefusedAlikeByEvalAndServe() throws {
        let work = ScratchDirectory()
        let tables = try Self.tables(work)
        let jsonl = tables[1]
        // A JSON Lines file under a name that says nothing: named `json`, `jsonl` or `ndjson` both ways.
        let plain = work.path + "/trips.data"
        try FileManager.default.copyItem(atPath: jsonl, toPath: plain)
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [work.path], arguments: ["--workers", "1"])
        defer { server.stop() }
        for name in ["json", "jsonl", "ndjson"] {
            let cli = try Eddy.run(
                ["eval", plain, "--input-format", name, "--select", "count(*), sum(tip)", "--format", "csv"])
            #expect(cli.status == 0 && cli.stdout == "count(*),sum(tip)\n2000,10654\n", "\(name): \(cli.stderr)")
            let (status, response) = try server.request(
                "POST", "/eval",
                json: ["path": plain, "input_format": name, "select": "count(*), sum(tip)", "format": "csv"])
            #expect(status == 200, "\(name): \(response)")
            #expect(response["result"] as? String == cli.stdout, "\(name): \(response)")
        }
        // A name that is no format: refused both ways, with the same list of formats.
        let cli = try Eddy.run(["eval", plain, "--input-format", "orc", "--select", "count(*)"])
        #expect(cli.status != 0 && cli.stderr.contains("unknown input format 'orc'; use csv, jsonl, eddy or parquet"))
        let (status, response) = try server.request(
            "POST", "/eval", json: ["path": plain, "input_format": "orc", "select": "count(*)"])
        #expect(status == 400)
        #expect(
            (response["error"] as? String ?? "").contains(
                "unknown input_format 'orc'; use csv, jsonl, eddy or parquet"),
            "\(response)")
    }
}
