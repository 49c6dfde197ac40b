import EddyHostTestSupport
import Foundation
import Testing

@testable import EddyServer

#if canImport(Glibc)
    import Glibc
#endif

/// `eddy serve --shadow-check RATE` (issue 21): answers in which a plugin's code took part are evaluated
/// again without it, and a plugin whose kernel answers wrongly is quarantined with its evidence kept —
/// while a plugin that answers right is left alone, even in the same query as a wrong one, and even when
/// a client writes to the file between its answer and the check.
@Suite(.serialized) struct ShadowCheckTests {
    final class Setup {
        let plugins = ScratchDirectory()
        let state = ScratchDirectory()
        let work = ScratchDirectory()
        let server: Server
        var copies: String { state.path + "/copies" }

        /// A server with `plugin` as `decimal.so` (and `others`, by file name), verification at load off
        /// (so that a buggy build reaches serving) unless `verify` says otherwise, and every sampled
        /// request checked.
        init(
            plugin: String, workers: String, rate: String = "1", verify: String = "off",
            others: [String: String] = [:], arguments: [String] = []
        ) throws {
            chmod(state.path, 0o700)
            server = try Server(
                pluginDir: plugins.path, rescan: "0.3", dataDirs: [work.path],
                arguments: ["--workers", workers, "--verify", verify, "--shadow-check", rate] + arguments,
                environment: ["EDDY_SHADOW_DIR": state.path + "/copies"])
            try plugins.copy(plugin, as: "decimal.so")
            for (name, file) in others { try plugins.copy(file, as: name) }
            for name in ["decimal.so"] + others.keys.sorted() {
                try server.waitForPlugin(name, timeout: 30) { $0?["status"] as? String == "loaded" }
            }
        }

        /// The value of a counter in `/metrics` (nil when it is not there).
        func metric(_ name: String) throws -> Double? {
            let (code, body) = try server.request("GET", "/metrics")
            #expect(code == 200)
            let text = body["text"] as? String ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
                return Double(line.dropFirst(name.count + 1))
            }
            return nil
        }

        /// Polls `/metrics` until `name` reaches `value`; its last value.
        @discardableResult
        func waitForMetric(_ name: String, atLeast value: Double, timeout: Double = 15) throws -> Double {
            let deadline = Date().addingTimeInterval(timeout)
            var last = 0.0
            while Date() < deadline {
                last = try metric(name) ?? 0
                if last >= value { return last }
                usleep(50_000)
            }
            return last
        }

        func quarantined() throws -> [[String: Any]] {
            let (_, report) = try server.request("GET", "/plugins")
            return report["quarantined"] as? [[String: Any]] ?? []
        }

        /// `count(*)` of the first row of a JSON result.
        static func count(_ body: [String: Any]) -> Int? {
            (body["result"] as? [[String: Any]])?.first?["count(*)"] as? Int
        }
    }

    /// 100 rows of each of 12.34, 12.35 and 1.5: `x = 12.345` matches none of them.
    static let decimals = "id,x\n" + (0..<300).map { "\($0),\([12.34, 12.35, 1.5][$0 % 3])\n" }.joined()

    @Test(arguments: ["1", "0"])
    func aKernelThatAnswersWronglyIsQuarantinedWithItsEvidence(workers: String) throws {
        let s = try Setup(plugin: try DecimalFixture.plugin(.roundedConstant), workers: workers)
        let csv = s.work.write("decimals.csv", Self.decimals)
        // The planted bug reaches the client: the plugin's compare kernel (it fires: the trace names it)
        // rounds 12.345 to 12.35. The check runs after this answer, off the request's path.
        let (code, body) = try s.server.eval(
            csv, where: "x = 12.345", select: "count(*)", trace: true, compression: "query")
        #expect(code == 200, "\(body)")
        #expect(traceOwners(body).contains("plugin decimal@0.1.0"), "\(body)")
        #expect(Setup.count(body) == 100, "the rounded-constant build answers wrongly: \(body)")

        #expect(try s.waitForMetric("eddy_shadow_divergences_total", atLeast: 1) == 1, "\(s.server.logText)")
        #expect(try s.metric("eddy_shadow_checks_total") == 1)
        let q = try s.quarantined()
        let cause = q.first?["cause"] as? String ?? ""
        #expect(q.count == 1 && q.first?["plugin"] as? String == "decimal@0.1.0", "\(q)")
        #expect(cause.hasPrefix("wrong answer") && cause.contains("x = 12.345"), "\(cause)")
        try s.server.waitForPlugin("decimal.so") { $0?["status"] as? String == "quarantined" }
        #expect(s.server.logText.contains("plugin quarantined"))

        // The record beside the quarantine file: named by hash and time, private, holding the query
        // and both answers.
        let hash = String((q.first?["content_hash"] as? String ?? "").prefix(16))
        let names = try FileManager.default.contentsOfDirectory(atPath: s.copies).filter {
            $0.hasPrefix("wrong-answer-\(hash)-") && $0.hasSuffix(".json")
        }
        #expect(names.count == 1, "\(names)")
        let path = s.copies + "/" + (names.first ?? "")
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(cause.contains(names.first ?? "-"), "the cause names the record: \(cause)")
        let record = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let request = record["request"] as? [String: Any]
        #expect(request?["where"] as? String == "x = 12.345" && request?["select"] as? String == "count(*)")
        let answer = (record["answer"] as? [String: Any])?["body"] as? String ?? ""
        let reference = (record["reference"] as? [String: Any])?["body"] as? String ?? ""
        #expect(answer.contains("{\"count(*)\": 100}"), "\(answer)")
        #expect(reference.contains("{\"count(*)\": 0}"), "\(reference)")

        // The next request is answered without the quarantined build, and rightly.
        let (again, next) = try s.server.eval(csv, where: "x = 12.345", select: "count(*)", compression: "query")
        #expect(again == 200 && Setup.count(next) == 0, "\(next)")
        #expect((next["plugins"] as? [Any])?.isEmpty == true, "\(next)")
    }

    @Test(arguments: ["1", "0"])
    func aKernelThatAnswersRightlyIsCheckedAndLeftAlone(workers: String) throws {
        let s = try Setup(plugin: try DecimalFixture.plugin(), workers: workers)
        let values = [12.34, 12.35, 0.1, 99.99, -3.25, 7.0, 1.5]
        let csv = s.work.write(
            "prices.csv",
            "id,x,city\n"
                + (0..<3_000).map { "\($0),\(values[($0 * 7 + $0 / 5) % values.count]),c\($0 % 3)\n" }.joined())
        // Aggregates, filters and row output in every format, one and two threads: rows that arrive in
        // another order or print in another layout must not be taken for a wrong answer.
        let queries: [[String: Any]] = [
            ["select": "sum(x)"], ["select": "min(x), max(x)"], ["where": "x = 12.345", "select": "count(*)"],
            ["where": "x > 12.34", "select": "sum(x), count(*)"], ["where": "x <= 12.35", "format": "csv"],
            ["where": "x < 1", "format": "table"], ["where": "x >= 12.35", "threads": 2],
            ["where": "x != 7", "select": "city, x", "format": "json", "threads": 2],
        ]
        var plugged = 0
        for var q in queries {
            q["path"] = csv
            q["compression"] = "query"  // every column read encoded for the query: the hook meets `sum(x)` too
            let (code, body) = try s.server.request("POST", "/eval", json: q)
            #expect(code == 200, "\(q): \(body)")
            if (body["plugins"] as? [Any])?.isEmpty == false { plugged += 1 }
        }
        #expect(plugged == queries.count)
        let checks = try s.waitForMetric("eddy_shadow_checks_total", atLeast: Double(queries.count))
        #expect(checks == Double(queries.count), "\(s.server.logText)")
        #expect(try s.metric("eddy_shadow_divergences_total") == 0)
        #expect(try s.metric("eddy_shadow_checks_inconclusive_total") == 0)
        #expect(try s.quarantined().isEmpty)
        try s.server.waitForPlugin("decimal.so") { $0?["status"] as? String == "loaded" }
    }

    /// The engine's own kernels can round differently from decode-then-compute: a float sum over a
    /// constant or run-end column multiplies (0.1 × 2000 = 200.0; added row by row, 199.99999999999…).
    /// In a request where a plugin's kernel also fired, that difference is confirmed with the built-in
    /// kernels before anyone is charged, and the innocent plugin is left alone.
    @Test func aDifferenceTheBuiltInKernelsShareChargesNoPlugin() throws {
        let s = try Setup(plugin: try PluginFiles.built("EddyPluginPackedDictCompare"), workers: "1")
        let csv = s.work.write(
            "fares.csv",
            "id,city,fare\n" + (0..<6_000).map { "\($0),\(["Lyon", "Paris", "Nice"][$0 % 3]),0.1\n" }.joined())
        let (code, body) = try s.server.eval(
            csv, where: "city = 'Lyon'", select: "sum(fare)", trace: true, compression: "storage")
        #expect(code == 200, "\(body)")
        #expect(traceOwners(body).contains("plugin packed-dict-compare@1.0.0"), "the plugin's kernel fired: \(body)")
        #expect(try s.waitForMetric("eddy_shadow_checks_inconclusive_total", atLeast: 1) == 1, "\(s.server.logText)")
        #expect(try s.metric("eddy_shadow_checks_total") == 1)
        #expect(try s.metric("eddy_shadow_divergences_total") == 0)
        #expect(try s.quarantined().isEmpty, "\(s.server.logText)")
        #expect(s.server.logText.contains("built-in kernels give it too"))
    }

    /// A wrong plugin and a correct one (delta, on the increasing `id`) both take part in one query. The
    /// difference is bisected — the query again with each plugin's code alone — and only the plugin that
    /// makes it alone is charged.
    @Test(arguments: ["1", "0"])
    func aCorrectPluginInTheSameQueryAsAWrongOneIsNotCharged(workers: String) throws {
        let s = try Setup(
            plugin: try DecimalFixture.plugin(.roundedConstant), workers: workers,
            others: ["delta.so": PluginFiles.built("EddyPluginDelta")])
        // Storage compression, so that delta's storage hook is asked for `id`; a hundred distinct prices beside
        // 12.34, 12.35 and 1.5, so that the decimal encoding is the smallest for `x` (a dictionary is, for three
        // values). 50 rows from 200 on hold 12.35, which the rounded constant 12.345 wrongly matches.
        let csv = s.work.write(
            "decimals.csv",
            "id,x\n" + (0..<400).map { "\($0),\([12.34, 12.35, 1.5, 100 + Double($0) / 100][$0 % 4])\n" }.joined())
        let (code, body) = try s.server.eval(
            csv, where: "id >= 200 and x = 12.345", select: "count(*)", trace: true, compression: "storage")
        #expect(code == 200, "\(body)")
        let owners = traceOwners(body)
        #expect(owners.contains("plugin decimal@0.1.0") && owners.contains("plugin delta@1.0.0"), "\(owners)")
        #expect(Setup.count(body) == 50, "the rounded-constant build answers wrongly: \(body)")

        #expect(try s.waitForMetric("eddy_shadow_divergences_total", atLeast: 1) == 1, "\(s.server.logText)")
        let q = try s.quarantined()
        #expect(q.map { $0["plugin"] as? String } == ["decimal@0.1.0"], "only the wrong build: \(q)")
        try s.server.waitForPlugin("decimal.so") { $0?["status"] as? String == "quarantined" }
        try s.server.waitForPlugin("delta.so") { $0?["status"] as? String == "loaded" }

        // The record names both builds as involved, the wrong one as charged, and keeps its answer alone.
        let names = try FileManager.default.contentsOfDirectory(atPath: s.copies).filter {
            $0.hasPrefix("wrong-answer-") && $0.hasSuffix(".json")
        }
        #expect(names.count == 1, "\(names)")
        let record = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: s.copies + "/" + (names.first ?? "")))) as? [String: Any])
        #expect(
            (record["plugins_involved"] as? [String]).map(Set.init) == ["decimal@0.1.0", "delta@1.0.0"], "\(record)")
        #expect(record["plugins_charged"] as? [String] == ["decimal@0.1.0"], "\(record)")
        let alone = (record["alone"] as? [String: Any])?["body"] as? String ?? ""
        #expect(alone.contains("{\"count(*)\": 50}"), "\(alone)")

        // Delta still serves: its kernel fires, and the answer is right.
        let (again, next) = try s.server.eval(
            csv, where: "id >= 200 and x = 12.345", select: "count(*)", trace: true, compression: "storage")
        #expect(again == 200 && Setup.count(next) == 0, "\(next)")
        #expect(traceOwners(next).contains("plugin delta@1.0.0"), "\(next)")
    }

    /// A client appends to the file right after each answer, while the checks of earlier answers wait
    /// their turn: a check would read more rows than its answer did. The file's stamp taken before the
    /// answer no longer matches, so such a check is inconclusive and the correct plugin is not charged.
    @Test(arguments: ["1", "0"])
    func aFileAppendedToBetweenTheAnswerAndItsCheckChargesNoPlugin(workers: String) throws {
        let s = try Setup(plugin: try DecimalFixture.plugin(), workers: workers, arguments: ["--eval-timeout", "20"])
        let csv = s.work.write("live.csv", Self.decimals)
        let fd = open(csv, O_WRONLY | O_APPEND | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        var answered = 0
        var id = 300
        for _ in 0..<12 {
            let (code, body) = try s.server.eval(csv, where: "x > 1", select: "count(*)", compression: "query")
            if code == 200 && (body["plugins"] as? [Any])?.isEmpty == false { answered += 1 }
            let lines = Array((0..<50).map { "\(id + $0),12.34\n" }.joined().utf8)
            #expect(write(fd, lines, lines.count) == lines.count)
            id += 50
        }
        #expect(answered == 12)
        // Every answer is checked, dropped (a full queue) or found changed: wait for the queue to drain.
        let deadline = Date().addingTimeInterval(30)
        var settled = 0.0
        while Date() < deadline {
            settled = try ["checks_total", "checks_inconclusive_total", "checks_dropped_total"].reduce(0.0) {
                $0 + (try s.metric("eddy_shadow_" + $1) ?? 0)
            }
            if settled >= 12 { break }
            usleep(100_000)
        }
        #expect(settled >= 12, "\(s.server.logText)")
        usleep(1_000_000)  // a check counted may still be bisecting
        #expect(try s.metric("eddy_shadow_divergences_total") == 0, "\(s.server.logText)")
        #expect(try s.quarantined().isEmpty, "\(s.server.logText)")
        try s.server.waitForPlugin("decimal.so") { $0?["status"] as? String == "loaded" }
    }

    /// The comparison behind that: a stamp of an open file changes with an append and with a write in
    /// place, and not otherwise; a descriptor that is not open has none. (A file renamed over counts as
    /// changed too — the old inode's change time moves as its last link goes — which errs on the side of
    /// charging nobody.)
    @Test func aFileStampChangesWithAnyWriteToTheOpenFile() throws {
        let dir = ScratchDirectory()
        let path = dir.write("stamped.csv", "id,x\n1,2\n")
        let fd = open(path, O_RDWR | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        let first = try #require(FileStamp(descriptor: fd))
        #expect(FileStamp(descriptor: fd) == first, "nothing written: the same stamp")

        #expect(pwrite(fd, "3,4\n", 4, 9) == 4)
        let appended = try #require(FileStamp(descriptor: fd))
        #expect(appended != first && appended.size == first.size + 4)

        usleep(20_000)  // past the clock tick file times move in
        #expect(pwrite(fd, "5", 1, 7) == 1)
        let rewritten = try #require(FileStamp(descriptor: fd))
        #expect(rewritten != appended && rewritten.size == appended.size, "a write in place moves the times")
        #expect(FileStamp(descriptor: -1) == nil)
    }

    /// An error while reading a file a request named (a plugin's storage reader the file's statistics
    /// contradict, a CSV that does not parse) names it as the client did, never by where the server's
    /// data directory is.
    @Test(arguments: ["1", "0"])
    func errorsNameTheFileAsTheRequestDid(workers: String) throws {
        let s = try Setup(plugin: try DecimalFixture.plugin(.exponent), workers: workers)
        _ = try DecimalFixture.files(in: s.work)
        let (code, body) = try s.server.request(
            "POST", "/eval", json: ["path": "prices.eddy", "select": "sum(x), min(x), max(x)"])
        let error = body["error"] as? String ?? ""
        #expect(code == 400, "\(body)")
        #expect(error.hasPrefix("prices.eddy: plugin decimal 0.1.0: chunk 0"), "\(error)")
        #expect(error.contains("check)") && !error.contains(s.work.path), "\(error)")

        _ = s.work.write("broken.csv", "id,x\n1,2\n\"3,4\n")
        let (csvCode, csvBody) = try s.server.request("POST", "/eval", json: ["path": "broken.csv"])
        let csvError = csvBody["error"] as? String ?? ""
        #expect(csvCode == 400 && csvError.hasPrefix("broken.csv:3:1: "), "\(csvBody)")
        #expect(!csvError.contains(s.work.path), "\(csvError)")
    }

    /// `GET /plugins` says what each loaded build was verified on, as `eddy plugins --json` does — also
    /// after a rescan finds the same bytes again (a row of its own then, "unchanged").
    @Test func pluginsSaysWhatEachLoadedBuildWasVerifiedOn() throws {
        let s = try Setup(plugin: try DecimalFixture.plugin(), workers: "1", verify: "quick")
        func row() throws -> [String: Any]? {
            let (_, report) = try s.server.request("GET", "/plugins")
            let rows = report["files"] as? [[String: Any]] ?? []
            return rows.first { ($0["file"] as? String)?.hasSuffix("/decimal.so") == true }
        }
        let first = try row()
        let verified = try #require(first?["verified_inputs"] as? Int, "\(String(describing: first))")
        #expect(verified > 0)

        let file = s.plugins.path + "/decimal.so"
        var times = [timespec(tv_sec: time(nil) + 5, tv_nsec: 0), timespec(tv_sec: time(nil) + 5, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, file, &times, 0) == 0)
        try s.server.waitForPlugin("decimal.so") { $0?["reason"] as? String == "unchanged" }
        let again = try row()
        #expect(again?["verified_inputs"] as? Int == verified, "\(String(describing: again))")
    }

    @Test func rateZeroChecksNothing() throws {
        let s = try Setup(plugin: try DecimalFixture.plugin(.roundedConstant), workers: "1", rate: "0")
        let csv = s.work.write("decimals.csv", Self.decimals)
        let (code, body) = try s.server.eval(csv, where: "x = 12.345", select: "count(*)", compression: "query")
        #expect(code == 200 && Setup.count(body) == 100, "\(body)")
        usleep(500_000)
        #expect(try s.metric("eddy_shadow_checks_total") == 0)
        #expect(try s.quarantined().isEmpty)
    }

    @Test func aRateOutsideZeroToOneIsRefused() throws {
        let r = try Eddy.run(["serve", "--port", "0", "--shadow-check", "1.5"])
        #expect(r.status != 0 && r.stderr.contains("--shadow-check"), "\(r.stderr)")
    }
}
