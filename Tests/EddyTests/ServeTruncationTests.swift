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
                #expect(r.body.contains(file), "\(r.body)")
            } else {
                // Finished before the cut, or the cut came before a read and was found at once.
                #expect(r.status == 200 || r.body.contains(file), "\(r.status) \(r.body.prefix(400))")
            }
        }
        #expect(cutWhileRead > 0, "the file was never cut while it was read: make it larger")
        let health = try RawHTTP.post(port: server.port, body: #"{"path": "cut0.eddy", "select": "count(*)"}"#)
        #expect(health.status == 400 || health.status == 200, "\(health)")
        #expect(server.process.isRunning)
    }
}
