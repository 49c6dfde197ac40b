import EddyHostTestSupport
import Foundation
import Testing

/// `eddy kernels --costs`: every key measured or said not to be, in a shape tools can read. Timings
/// are printed, never asserted.
@Suite struct KernelCostsTests {
    /// The `parent ← child` keys `eddy kernels` lists.
    func listedKeys(_ dir: String) throws -> Set<String> {
        let r = try Eddy.run(["kernels", "--plugin-dir", dir])
        #expect(r.status == 0, "\(r.stderr)")
        return Set(r.stdout.split(separator: "\n").filter { !$0.hasPrefix(" ") && $0.contains(" ← ") }.map(String.init))
    }

    @Test func costsListEveryKeyWithNumbersAndThePluginKernelsWithTheirOwner() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let keys = try listedKeys(dir.path)
        #expect(keys.contains("eddy.compare ← ext.delta"), "\(keys)")

        let r = try Eddy.run([
            "kernels", "--costs", "--rows", "2000", "--seed", "7", "--plugin-dir", dir.path, "--json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(object["command"] as? String == "eddy kernels --costs --rows 2000 --seed 7 --plugin-dir \(dir.path)")
        let rows = try #require(object["keys"] as? [[String: Any]])
        var seen = Set<String>()
        var pluginFired = false
        for row in rows {
            let key = "\(row["parent"] as? String ?? "?") ← \(row["child"] as? String ?? "?")"
            seen.insert(key)
            let fired = row["fired"] as? [[String: String]] ?? []
            if row["not_measured"] is NSNull {
                // A measured key has both costs, positive, and their ratio.
                let kernels = row["kernels_ns_per_row"] as? Double ?? -1
                let decode = row["decode_ns_per_row"] as? Double ?? -1
                #expect(kernels > 0 && decode > 0 && row["ratio"] is Double, "\(key): \(row)")
                #expect(row["rows"] as? Int == 2000, "\(key): \(row)")
            } else {
                #expect(row["not_measured"] is String, "\(key): \(row)")
            }
            if key.hasSuffix("ext.delta"), fired.contains(where: { $0["owner"] == "plugin delta@1.0.0" }) {
                pluginFired = true
            }
        }
        #expect(seen == keys, "listed but not measured: \(keys.subtracting(seen)); extra: \(seen.subtracting(keys))")
        #expect(pluginFired, "\(rows.filter { ($0["child"] as? String) == "ext.delta" })")
        // The built-in compare over dictionaries fires on its own key.
        let dict = rows.first { $0["parent"] as? String == "eddy.compare" && $0["child"] as? String == "eddy.dict" }
        #expect(
            (dict?["fired"] as? [[String: String]])?.contains { $0["owner"] == "builtin" } == true, "\(dict ?? [:])")
    }

    @Test func theTableNamesTheCommandThatReproducesItAndOneLinePerKey() throws {
        let dir = ScratchDirectory()
        let keys = try listedKeys(dir.path)
        let r = try Eddy.run(["kernels", "--costs", "--rows", "1000", "--plugin-dir", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(
            lines.first == "eddy kernels --costs --rows 1000 --seed 1 --plugin-dir \(dir.path)", "\(lines.first ?? "")")
        let header = try #require(lines.first { $0.hasPrefix("key ") })
        #expect(header.contains("kernels ns/row") && header.contains("decode ns/row") && header.contains("ratio"))
        for key in keys {
            let line = try #require(lines.first { $0.hasPrefix(key + " ") }, "\(key) missing")
            if !line.contains("not measured") {
                // The last three columns are numbers (the ratio with its ×).
                let cells = line.split(separator: " ").suffix(3).map(String.init)
                #expect(Double(cells[0]) != nil && Double(cells[1]) != nil, "\(line)")
                #expect(cells[2].hasSuffix("×") && Double(cells[2].dropLast()) != nil, "\(line)")
            }
        }
        let bad = try Eddy.run(["kernels", "--json"])
        #expect(bad.status != 0 && bad.stderr.contains("--json goes with --costs"), "\(bad.stderr)")
    }
}
