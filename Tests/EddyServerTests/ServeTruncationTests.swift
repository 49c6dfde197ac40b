import EddyHostTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct ServeTruncationTests {
    /// With `--workers 0` the server evaluates in its own process: a mapped `.eddy` file cut short while
    /// it was read killed the server (SIGBUS). There it reads segments with `pread`: a truncated file is
    /// an error naming it, and the server keeps serving.
    @Test func aFileTruncatedWhileTheServersOwnProcessReadsItIsAnErrorNotACrash() throws {
        let scratch = ScratchDirectory()
        var text = "id,word\n"
        for i in 0..<300_000 { text += "\(i),w\(i % 977)x\(i)\n" }
        let csv = scratch.write("big.csv", text)
        let data = ScratchDirectory()
        let original = scratch.path + "/original.eddy"
        #expect(try Eddy.run(["convert", csv, original, "--chunk-rows", "4096"]).status == 0)
        let size = (try FileManager.default.attributesOfItem(atPath: original)[.size] as? Int) ?? 0
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [data.path],
            arguments: ["--workers", "0", "--max-result-bytes", "200000000"])
        var cutWhileRead = 0
        for attempt in 0..<4 {
            let name = "cut\(attempt).eddy"
            let file = data.path + "/" + name
            try FileManager.default.copyItem(atPath: original, toPath: file)
            let body = #"{"path": "\#(name)", "select": "id, word", "format": "csv"}"#
            let reply = Mutex<(status: Int, body: String)?>(nil)
            let thread = Thread {
                let r = try? RawHTTP.post(port: server.port, body: body)
                reply.withLock { $0 = r ?? (0, "") }
            }
            thread.start()
            usleep(150_000)
            #expect(truncate(file, off_t(size / 4)) == 0)
            while reply.withLock({ $0 }) == nil { usleep(20_000) }
            let r: (status: Int, body: String) = reply.withLock { $0 } ?? (0, "")
            #expect(server.process.isRunning, "the server died: \(server.logText)")
            if r.status == 400 && r.body.contains("truncated meanwhile") {
                cutWhileRead += 1
                // Named as the client named it; the server's own path is not the client's business.
                #expect(r.body.contains(name) && !r.body.contains(data.path), "\(r.body)")
            } else {
                // Finished before the cut, or the cut came before a read and was found at once.
                #expect(r.status == 200 || r.body.contains(name), "\(r.status) \(r.body.prefix(400))")
            }
        }
        #expect(cutWhileRead > 0, "the file was never cut while it was read: make it larger")
        let health = try RawHTTP.post(port: server.port, body: #"{"path": "cut0.eddy", "select": "count(*)"}"#)
        #expect(health.status == 400 || health.status == 200, "\(health)")
        #expect(server.process.isRunning)
    }

    /// A file cut short under a plugin kernel that reads its mapped pages (found by the hostile review):
    /// the SIGBUS was charged to the kernel's plugin, so another user able to truncate a file in a data
    /// subdirectory (or a careless `cp` over a file being read) quarantined an innocent plugin for good.
    /// The crash handler now tells a fault inside a mapped input file from one in plugin code.
    @Test func aFileCutUnderAPluginKernelChargesNoPlugin() throws {
        let scratch = ScratchDirectory()
        let plugins = ScratchDirectory()
        try plugins.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        var text = "id\n"
        text.reserveCapacity(10 << 20)
        var id = 0
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<1_000_000 {
            id += Int.random(in: 1...9, using: &rng)
            text += "\(id)\n"
        }
        let csv = scratch.write("ids.csv", text)
        let original = scratch.path + "/original.eddy"
        let converted = try Eddy.run([
            "convert", csv, original, "--plugin-dir", plugins.path, "--chunk-rows", "1000000",
        ])
        #expect(converted.status == 0, "\(converted)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: original))
        let data = ScratchDirectory()
        let file = data.path + "/ids.eddy"
        try bytes.write(to: URL(fileURLWithPath: file))
        let server = try Server(pluginDir: plugins.path, dataDirs: [data.path], arguments: ["--workers", "1"])
        try server.waitForPlugin("delta.so") { $0?["status"] as? String == "loaded" }
        // Another process cuts the file to a third and writes it back, every 10 ms.
        let stop = Atomic<Bool>(false)
        let cutter = Thread {
            while !stop.load(ordering: .relaxed) {
                truncate(file, off_t(bytes.count / 3))
                usleep(10_000)
                try? bytes.write(to: URL(fileURLWithPath: file))
                usleep(10_000)
            }
        }
        cutter.start()
        var faults = 0
        let started = Date()
        for _ in 0..<600 where faults < 2 && Date().timeIntervalSince(started) < 30 {
            let (code, body) = try server.request(
                "POST", "/eval",
                json: ["path": "ids.eddy", "where": "id > \(id / 2)", "select": "count(*)", "trace": true])
            if code == 500, (body["error"] as? String)?.contains("SIGBUS") == true { faults += 1 }
            let (_, report) = try server.request("GET", "/plugins")
            #expect((report["quarantined"] as? [[String: Any]] ?? []).isEmpty, "\(report)")
        }
        stop.store(true, ordering: .relaxed)
        while !cutter.isFinished { usleep(10_000) }
        try bytes.write(to: URL(fileURLWithPath: file))
        // Whether a cut lands inside a read is timing: on a loaded machine it may not within the time
        // given (then the test shows less, but what it shows still holds).
        withKnownIssue("the file may not be cut under a read in time", isIntermittent: true) {
            #expect(faults > 0, "the file was never cut under a read")
        }
        let (code, body) = try server.request(
            "POST", "/eval", json: ["path": "ids.eddy", "where": "id > \(id / 2)", "select": "count(*)"])
        #expect(code == 200 && (body["fingerprint"] as? String)?.contains("delta@1.0.0") == true, "\(body)")
    }
}
