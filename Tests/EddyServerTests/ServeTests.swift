import EddyHostTestSupport
import EddyTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite(.serialized) struct ServeTests {
    /// Both process models: evaluation in worker processes (the default) and in the server itself.
    @Test(arguments: ["2", "0"])
    func hotAddReplaceAndRemoveAreVisibleOnTheNextRequest(workers: String) throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work)
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path, arguments: ["--workers", workers])
        let query = (where: "city = 'Nice' and trip_id < 100900", select: "trip_id, fare")
        let (s0, base) = try server.eval(
            csv, where: query.where, select: query.select, trace: true, compression: "storage")
        #expect(s0 == 200 && base["fingerprint"] as? String == "builtin only", "\(base)")
        let expected = base["result"] as? [[String: Any]] ?? []
        #expect(expected.count > 100)

        // Add with cp.
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try server.waitForPlugin("delta.so") { $0?["status"] as? String == "loaded" }
        let (s1, r1) = try server.eval(
            csv, where: query.where, select: query.select, trace: true, compression: "storage")
        #expect(s1 == 200)
        #expect((r1["fingerprint"] as? String)?.hasPrefix("delta@1.0.0#") == true, "\(r1["fingerprint"] ?? "")")
        #expect(traceOwners(r1).contains("plugin delta@1.0.0"))
        #expect((r1["result"] as? [[String: Any]])?.count == expected.count)

        // Add with write-then-mv (a hidden temporary name is ignored until the rename).
        try dir.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: ".incoming.so")
        try FileManager.default.moveItem(atPath: dir.path + "/.incoming.so", toPath: dir.path + "/packed.so")
        try server.waitForPlugin("packed.so") { $0?["status"] as? String == "loaded" }
        let (_, r2) = try server.eval(
            csv, where: query.where, select: query.select, trace: true, compression: "storage")
        #expect(traceOwners(r2).contains("plugin packed-dict-compare@1.0.0"), "\(traceOwners(r2))")

        // Replace with a rebuilt version (cp over the file in place).
        let data = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyFixtureDeltaV2")))
        try data.write(to: URL(fileURLWithPath: dir.path + "/delta.so"))
        try server.waitForPlugin("delta.so") {
            $0?["version"] as? String == "2.0.0" && $0?["status"] as? String == "replaced"
        }
        let (_, r3) = try server.eval(
            csv, where: query.where, select: query.select, trace: true, compression: "storage")
        #expect((r3["fingerprint"] as? String)?.contains("delta@2.0.0#") == true)
        // One generation per server: every reply and /health count the changes alike (a worker that
        // replaced a plugin in two steps too).
        let (_, health3) = try server.request("GET", "/health")
        #expect(r3["generation"] as? Int == health3["generation"] as? Int, "\(r3["generation"] ?? "") \(health3)")
        #expect(traceOwners(r3).contains("plugin delta@2.0.0") && !traceOwners(r3).contains("plugin delta@1.0.0"))
        let (_, plugins) = try server.request("GET", "/plugins")
        // In-process, the three builds stay mapped; a supervisor maps no plugin code at all.
        #expect(plugins["retained_images"] as? Int == (workers == "0" ? 3 : 0))

        // Remove: built-ins take over again.
        try FileManager.default.removeItem(atPath: dir.path + "/delta.so")
        try server.waitForPlugin("delta.so") { $0 == nil }
        let (_, r4) = try server.eval(
            csv, where: query.where, select: query.select, trace: true, compression: "storage")
        #expect(!(r4["fingerprint"] as? String ?? "").contains("delta"))
        let (_, health4) = try server.request("GET", "/health")
        #expect(r4["generation"] as? Int == health4["generation"] as? Int, "\(r4["generation"] ?? "") \(health4)")
        #expect(!traceOwners(r4).contains { $0.contains("delta") })
        #expect((r4["result"] as? [[String: Any]])?.count == expected.count)

        let (_, metrics) = try server.request("GET", "/metrics")
        let text = metrics["text"] as? String ?? ""
        #expect(text.contains("eddy_plugin_loads_total 3"), "\(text)")
        #expect(text.contains("eddy_plugin_removals_total 1"))
        #expect(server.logText.contains("plugin replaced") && server.logText.contains("plugin removed"))
    }

    /// How `eddy serve` encodes a CSV request is the request's `compression` (default `auto`), as `eddy eval
    /// --compression`, never decided by which plugins are loaded (issue 22). With the packed-dict-compare
    /// example loaded (a kernel on dictionaries over the engine's bit-packed codes, which only storage
    /// compression makes), a default request encodes the filtered column for the query and the kernel is not
    /// reached — in the server and in `eddy eval` alike; a request that asks for `storage` meets it. The
    /// answers agree; a goal that is no goal is refused by name.
    @Test func theRequestNotTheLoadedPluginsChoosesTheEncoding() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work)
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: "packed.so")
        let server = try Server(pluginDir: dir.path, arguments: ["--workers", "1"])
        try server.waitForPlugin("packed.so") { $0?["status"] as? String == "loaded" }
        let owner = "plugin packed-dict-compare@1.0.0"
        let (s1, plain) = try server.eval(csv, where: "city = 'Nice'", select: "count(*)", trace: true)
        #expect(s1 == 200 && !traceOwners(plain).contains(owner), "\(plain)")
        let (s2, stored) = try server.eval(
            csv, where: "city = 'Nice'", select: "count(*)", trace: true, compression: "storage")
        #expect(s2 == 200 && traceOwners(stored).contains(owner), "\(stored)")
        let count = (plain["result"] as? [[String: Any]])?.first?["count(*)"] as? Int
        #expect(count != nil && count == (stored["result"] as? [[String: Any]])?.first?["count(*)"] as? Int)
        let (bad, refusal) = try server.eval(csv, select: "count(*)", compression: "smallest")
        #expect(bad == 400, "\(refusal)")
        #expect(
            refusal["error"] as? String == "unknown compression 'smallest'; use auto, query or storage", "\(refusal)")

        for (goal, fires) in [("auto", false), ("storage", true)] {
            let r = try Eddy.run([
                "eval", csv, "--plugin-dir", dir.path, "--where", "city = 'Nice'", "--select", "count(*)",
                "--compression", goal, "--explain", "--plugin-min-rows", "0",
            ])
            #expect(r.status == 0 && r.stdout.contains("\(count ?? -1)"), "\(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("[\(owner)]") == fires, "\(goal): \(r.stderr)")
        }
    }

    @Test(arguments: ["2", "0"])
    func threadsPerRequestGiveTheSameAnswerAndBadCountsAreRefused(workers: String) throws {
        let work = ScratchDirectory()
        // Several batches (the server reads 64Ki rows per batch), so that two threads have work to share.
        var text = "k,v\n"
        for i in 0..<150_000 { text += "\(["a", "b", "c"][i % 3]),\(i)\n" }
        let csv = work.write("t.csv", text)
        let server = try Server(pluginDir: ScratchDirectory().path, arguments: ["--workers", workers])
        let query: [String: Any] = ["path": csv, "where": "k = 'b'", "select": "count(*), sum(v), max(v)"]
        let (s1, one) = try server.request("POST", "/eval", json: query)
        let threads = Swift.min(2, ProcessInfo.processInfo.activeProcessorCount)
        let (s2, two) = try server.request("POST", "/eval", json: query.merging(["threads": threads]) { $1 })
        #expect(s1 == 200 && s2 == 200, "\(one) \(two)")
        let row = (two["result"] as? [[String: Any]])?.first
        #expect(row?["count(*)"] as? Int == 50_000 && row?["sum(v)"] as? Int == 3_749_975_000, "\(two)")
        #expect(
            (one["result"] as? [[String: Any]])?.first?["sum(v)"] as? Int == row?["sum(v)"] as? Int, "\(one)")
        let (s3, q) = try server.request(
            "POST", "/eval?threads=\(threads)&select=count(*)", body: Data("a\n1\n2\n".utf8),
            contentType: "text/csv")
        #expect(s3 == 200 && (q["result"] as? [[String: Any]])?.first?["count(*)"] as? Int == 2, "\(q)")
        for bad in ["0", "-1", "x", "100000", "1.5"] {
            let (s, r) = try server.request(
                "POST", "/eval?threads=\(bad)&select=count(*)", body: Data("a\n1\n".utf8), contentType: "text/csv")
            #expect(s == 400 && (r["error"] as? String)?.contains("threads must be a whole number from 1 to") == true)
        }
        let (s4, r4) = try server.request("POST", "/eval", json: query.merging(["threads": "2"]) { $1 })
        #expect(s4 == 400 && (r4["error"] as? String)?.contains("field 'threads' must be a number") == true)
    }

    @Test func anEvaluationInFlightFinishesOnTheVersionItStartedWith() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 400_000)
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let server = try Server(pluginDir: dir.path)
        try server.waitForPlugin("delta.so") { $0?["status"] as? String == "loaded" }
        nonisolated(unsafe) var long: (Int, [String: Any])?
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            long = try? server.eval(
                csv, where: "trip_id < 100500 or city = 'Brest'", select: "count(*)", trace: true,
                compression: "storage")
            finished.signal()
        }
        usleep(400_000)
        let data = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyFixtureDeltaV2")))
        try data.write(to: URL(fileURLWithPath: dir.path + "/delta.so"))
        try server.waitForPlugin("delta.so") { $0?["version"] as? String == "2.0.0" }
        let (_, during) = try server.eval(
            csv, where: "trip_id < 100010", select: "count(*)", trace: true, compression: "storage")
        #expect(traceOwners(during).contains("plugin delta@2.0.0"))
        finished.wait()
        let (status, response) = try #require(long)
        #expect(status == 200, "\(response)")
        #expect((response["fingerprint"] as? String)?.hasPrefix("delta@1.0.0#") == true)
        let owners = traceOwners(response)
        #expect(
            owners.contains("plugin delta@1.0.0") && !owners.contains("plugin delta@2.0.0"),
            "\(owners) \(response["fingerprint"] ?? "") \(response["error"] ?? "") \((response["trace"] as? [Any])?.count ?? -1)"
        )
        let cities = ["Lyon", "Paris", "Nice", "Lille", "Brest"]
        let expected = (0..<400_000).filter { 100_000 + $0 < 100_500 || cities[($0 * 7 + $0 / 3) % 5] == "Brest" }.count
        #expect((response["result"] as? [[String: Any]])?.first?["count(*)"] as? Int == expected)
    }

    /// The server says it listens once it does, on the port it got; a second server on that port
    /// says it cannot listen there and why, and exits 2.
    @Test func aTakenPortIsNamedAndTheListeningLineHasTheRealPort() throws {
        let server = try Server(pluginDir: ScratchDirectory().path, arguments: ["--workers", "0"])
        #expect(server.logText.contains("address=127.0.0.1:\(server.port) "), "\(server.logText)")
        let second = try Eddy.run([
            "serve", "--port", "\(server.port)", "--workers", "0", "--plugin-dir", ScratchDirectory().path,
        ])
        #expect(second.status == 2)
        #expect(
            second.stderr.contains("cannot listen on 127.0.0.1:\(server.port): Address already in use"),
            "\(second.stderr)")
        #expect(!second.stderr.contains("eddy serve listening"), "\(second.stderr)")
        // Out of range, refused before anything starts (a port used to wrap modulo 65536).
        for (flag, value, message) in [
            ("--port", "73616", "--port must be from 0 to 65535"),
            ("--max-expression-depth", "99999", "--max-expression-depth must be at most 2000"),
        ] {
            let r = try Eddy.run(["serve", flag, value, "--workers", "0", "--plugin-dir", ScratchDirectory().path])
            #expect(r.status == 64 && r.stderr.contains(message), "\(r.status) \(r.stderr)")
        }
    }

    @Test func badRequestsGet4xxAndFailingKernels5xxWhileTheServerKeepsServing() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 200)
        let dir = ScratchDirectory()
        // Unverified: a kernel that breaks its contract must reach serving for this test (verification
        // at load would refuse it; VerifyAtLoadTests covers that).
        let server = try Server(pluginDir: dir.path, arguments: ["--verify", "off"])
        let (s1, r1) = try server.request("POST", "/eval", body: Data("not json".utf8), contentType: "application/json")
        #expect(s1 == 400 && (r1["error"] as? String)?.contains("not a JSON object") == true)
        let (s2, r2) = try server.eval(csv, where: "nope > 1")
        #expect(s2 == 400 && (r2["error"] as? String)?.contains("unknown column 'nope'") == true)
        let (s3, r3) = try server.eval(work.path + "/missing.csv")
        #expect(s3 == 404 && (r3["error"] as? String)?.contains("no such file") == true)
        let (s4, _) = try server.eval(csv, select: "cast(city as i64)")
        #expect(s4 == 422)
        // A known path asked with the wrong method names the one it takes; an unknown path is 404.
        let (wrong, wrongBody) = try server.request("GET", "/eval")
        #expect(
            wrong == 405 && (wrongBody["error"] as? String) == "GET is not allowed on /eval: use POST", "\(wrongBody)")
        let (deleted, _) = try server.request("DELETE", "/plugins")
        #expect(deleted == 405)
        let (unknown, _) = try server.request("GET", "/nothing-here")
        #expect(unknown == 404)
        // Uploaded CSV body, options in the query string.
        let upload = Data("a,b\n1,x\n2,y\n3,x\n".utf8)
        let (s6, r6) = try server.request(
            "POST", "/eval?where=b%20%3D%20'x'&select=sum(a)", body: upload,
            contentType: "text/csv")
        #expect(s6 == 200 && (r6["result"] as? [[String: Any]])?.first?["sum(a)"] as? Int == 4, "\(r6)")
        // Form-encoded query strings: `+` is a space (curl --url-query and urlencode write them so).
        let spaced = Data("a,b\n1,x y\n2,y\n3,x y\n".utf8)
        let (s9, r9) = try server.request(
            "POST", "/eval?where=b+%3D+'x+y'&select=sum(a),+count(*)", body: spaced, contentType: "text/csv")
        let row9 = (r9["result"] as? [[String: Any]])?.first
        #expect(s9 == 200 && row9?["sum(a)"] as? Int == 4 && row9?["count(*)"] as? Int == 2, "\(r9)")
        let (s10, r10) = try server.request("POST", "/eval?select=%zz", body: spaced, contentType: "text/csv")
        #expect(s10 == 400 && r10["error"] != nil, "\(r10)")
        try dir.copy(PluginFiles.built("EddyFixtureWrongLength"), as: "wrong.so")
        try server.waitForPlugin("wrong.so") { $0?["status"] as? String == "loaded" }
        let (s5, r5) = try server.eval(csv, where: "fare > 3")
        #expect(s5 == 500)
        #expect((r5["owner"] as? String) == "plugin wrong-length@0.1.0", "\(r5)")
        let (s7, health) = try server.request("GET", "/health")
        #expect(s7 == 200 && health["status"] as? String == "ok")
        let (s8, kernels) = try server.request("GET", "/kernels")
        #expect(s8 == 200 && (kernels["keys"] as? [Any])?.isEmpty == false)
    }

    @Test(arguments: ["2", "0"])
    func soakTwoClientsWhilePluginsComeAndGo(workers: String) throws {
        let seconds = Double(ProcessInfo.processInfo.environment["EDDY_SOAK_SECONDS"] ?? "") ?? 12
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 2000)
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path, rescan: "0.3", arguments: ["--workers", workers])
        let queries = [
            ("city = 'Lyon' and trip_id > 100500", "count(*), sum(fare)"),
            ("trip_id < 101000 or city = 'Nice'", "trip_id, city"),
        ]
        @Sendable func canonical(_ r: (Int, [String: Any])?) -> String {
            guard let r, r.0 == 200, let result = r.1["result"],
                let d = try? JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            else { return "failed" }
            return String(decoding: d, as: UTF8.self)
        }
        let baselines = try queries.map { canonical(try server.eval(csv, where: $0.0, select: $0.1)) }
        #expect(!baselines.contains("failed"))
        func rss() -> Int {
            let status =
                (try? String(contentsOfFile: "/proc/\(server.process.processIdentifier)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        let rssBefore = rss()
        let stop = Flag()
        let failures = Counter()
        let evaluations = Counter()
        let clients = (0..<2).map { k in
            TestThread {
                var i = k
                while !stop.isSet {
                    let q = queries[i % 2]
                    if canonical(try? server.eval(csv, where: q.0, select: q.1)) != baselines[i % 2] {
                        _ = failures.increment()
                    }
                    _ = evaluations.increment()
                    i += 1
                }
            }
        }
        let sources = [
            PluginFiles.built("EddyPluginDelta"), PluginFiles.built("EddyFixtureDeltaV2"),
            PluginFiles.built("EddyPluginPackedDictCompare"),
        ]
        let deadline = Date().addingTimeInterval(seconds)
        var step = 0
        while Date() < deadline {
            switch step % 4 {
            case 0: try dir.copy(sources[0], as: "delta.so")
            case 1:
                try Data(contentsOf: URL(fileURLWithPath: sources[1])).write(
                    to: URL(fileURLWithPath: dir.path + "/delta.so"))
            case 2: try dir.copy(sources[2], as: "packed.so")
            default:
                try? FileManager.default.removeItem(atPath: dir.path + "/delta.so")
                try? FileManager.default.removeItem(atPath: dir.path + "/packed.so")
            }
            step += 1
            usleep(100_000)
        }
        stop.set()
        clients.forEach { $0.join() }
        let (_, plugins) = try server.request("GET", "/plugins")
        let retained = plugins["retained_images"] as? Int ?? -1
        let growthKB = rss() - rssBefore
        #expect(failures.value == 0, "\(failures.value) failed of \(evaluations.value)")
        #expect(evaluations.value > 20)
        // Three distinct plugin files cycle: the images are mapped once each and reused after.
        #expect(retained == (workers == "0" ? 3 : 0))
        #expect(growthKB < 150_000, "RSS grew by \(growthKB) KiB over \(evaluations.value) evaluations")
        print(
            "soak: \(evaluations.value) evaluations, \(step) plugin changes, RSS growth \(growthKB) KiB, retained images \(retained)"
        )
    }
}
