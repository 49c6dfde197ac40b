import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `eddy serve` with evaluation in worker processes: a plugin that crashes, hangs, exits or eats
/// memory in a kernel takes down only its worker; the request gets a 5xx naming it; the build is
/// quarantined; the server (same PID) goes on serving, and a fixed build loads.
@Suite(.serialized) struct IsolationTests {
    /// A server with its own private-copy directory (quarantines are persisted there) and a copy of
    /// the misbehaving plugin under new bytes (a trailing byte: same code, another build).
    final class Setup {
        let plugins = ScratchDirectory()
        let state = ScratchDirectory()
        let work = ScratchDirectory()
        let csv: String
        let server: Server

        init(arguments: [String] = []) throws {
            chmod(state.path, 0o700)
            csv = tripsCSV(work, rows: 300)
            server = try Server(
                pluginDir: plugins.path, rescan: "0.3", arguments: ["--workers", "2"] + arguments,
                environment: ["EDDY_SHADOW_DIR": state.path + "/copies"])
        }

        /// Drops the misbehaving plugin (with `salt` appended, so each drop is a new build).
        func dropMisbehaving(salt: UInt8 = 0) throws {
            var data = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyFixtureCrashingKernel")))
            data.append(salt)
            try data.write(to: URL(fileURLWithPath: plugins.path + "/.incoming"))
            rename(plugins.path + "/.incoming", plugins.path + "/crashing.so")
            try server.waitForPlugin("crashing.so") {
                $0?["status"] as? String == "loaded" || $0?["status"] as? String == "replaced"
            }
        }

        func query(_ literal: Int) throws -> (Int, [String: Any]) {
            try server.eval(csv, where: "fare > \(literal)", select: "count(*)")
        }

        var pid: Int32 { server.process.processIdentifier }
    }

    @Test(arguments: [
        (1, 500, "crashed with signal 11 (SIGSEGV) in kernel 'crash on compare' of plugin crashing-kernel@0.1.0"),
        (
            2, 504,
            "did not finish within 1.0 s (--eval-timeout) in kernel 'crash on compare' of plugin crashing-kernel@0.1.0"
        ),
        (3, 500, "exited with status 0 in kernel 'crash on compare' of plugin crashing-kernel@0.1.0"),
        (4, 500, "crashed with signal 6 (SIGABRT) in kernel 'crash on compare' of plugin crashing-kernel@0.1.0"),
    ])
    func aMisbehavingKernelTakesDownOnlyItsWorkerAndIsQuarantined(literal: Int, status: Int, message: String) throws {
        // Literal 2 loops (the deadline ends it); literal 4 allocates until the worker's 1 GiB runs out.
        let s = try Setup(arguments: ["--eval-timeout", literal == 2 ? "1" : "20", "--worker-memory", String(1 << 30)])
        let pid = s.pid
        try s.dropMisbehaving()
        let (code, body) = try s.query(literal)
        #expect(code == status, "\(body)")
        #expect((body["error"] as? String)?.contains(message) == true, "\(body)")
        #expect((body["error"] as? String)?.contains("is quarantined") == true, "\(body)")
        #expect(body["plugin"] as? String == "crashing-kernel" && body["version"] as? String == "0.1.0")
        // Same server, next request correct, the build quarantined (also after a rescan of the same bytes).
        #expect(s.server.process.isRunning && s.pid == pid)
        let (ok, result) = try s.query(10)
        #expect(ok == 200 && (result["result"] as? [[String: Any]])?.first?["count(*)"] as? Int != nil, "\(result)")
        #expect(
            !(result["fingerprint"] as? String ?? "").contains("crashing-kernel"), "a quarantined build is not loaded")
        try s.server.waitForPlugin("crashing.so") { $0?["status"] as? String == "quarantined" }
        let (_, report) = try s.server.request("GET", "/plugins")
        let quarantined = report["quarantined"] as? [[String: Any]] ?? []
        #expect(
            quarantined.count == 1 && (quarantined.first?["cause"] as? String)?.contains("crash on compare") == true)
        #expect(quarantined.first?["time"] as? String != nil)
        let (_, metrics) = try s.server.request("GET", "/metrics")
        let text = metrics["text"] as? String ?? ""
        #expect(text.contains("eddy_quarantines_total 1") && text.contains("eddy_worker_restarts_total 1"), "\(text)")
        // A fixed build (other bytes, same plugin name) loads and is used.
        try s.plugins.copy(PluginFiles.built("EddyFixtureCrashingKernelFixed"), as: "crashing.so")
        try s.server.waitForPlugin("crashing.so") { $0?["version"] as? String == "0.1.1" }
        let (fixed, after) = try s.query(literal)
        #expect(
            fixed == 200 && (after["fingerprint"] as? String)?.contains("crashing-kernel@0.1.1") == true, "\(after)")
        // The CLI sees the quarantine too.
        var misbehaving = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyFixtureCrashingKernel")))
        misbehaving.append(0)
        let cli = ScratchDirectory()
        try misbehaving.write(to: URL(fileURLWithPath: cli.path + "/crashing.so"))
        let r = try Eddy.run(
            ["plugins", "--plugin-dir", cli.path], environment: ["EDDY_SHADOW_DIR": s.state.path + "/copies"])
        #expect(r.stdout.contains("quarantined") && r.stdout.contains("1 quarantined"), "\(r.stdout)")
    }

    @Test func aRegistrationThatCrashesOnlyOutsideTheProbeIsQuarantined() throws {
        let s = try Setup()
        try s.plugins.copy(try HostileFixtures.build(.outsideProbe), as: "outside.so")
        try s.server.waitForPlugin("outside.so") { $0?["status"] as? String == "loaded" }
        let (code, body) = try s.query(10)
        #expect(code == 500, "\(body)")
        #expect(
            (body["error"] as? String)?.contains("in the registration of plugin hostile-outside@1.0.0") == true,
            "\(body)")
        let (again, next) = try s.query(10)
        #expect(again == 200, "\(next)")
        #expect(s.server.process.isRunning)
    }

    @Test func requestsInOtherWorkersSucceedWhileOneCrashes() throws {
        let s = try Setup(arguments: ["--eval-timeout", "30"])
        let big = ScratchDirectory()
        var text = "trip_id,city,fare,extra\n"
        for i in 0..<200_000 { text += "\(i),Lyon,\(Double(i % 97) / 4),0\n" }
        let slow = big.write("slow.csv", text)
        try s.dropMisbehaving()
        final class Box: @unchecked Sendable { var value: (Int, [String: Any])? }  // written once, read after
        let other = Box()
        let server = s.server
        let t = Thread { other.value = try? server.eval(slow, where: "fare > 10", select: "count(*), sum(fare)") }
        t.start()
        usleep(200_000)
        let (crash, body) = try s.query(1)
        #expect(crash == 500, "\(body)")
        while other.value == nil { usleep(50_000) }
        #expect(other.value?.0 == 200, "\(String(describing: other.value))")
    }

    @Test func soakWhileACrashingPluginIsDroppedAgainAndAgain() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["EDDY_ISOLATION_SOAK_SECONDS"] ?? "") ?? 12
        let s = try Setup(arguments: ["--eval-timeout", "20"])
        let deadline = Date().addingTimeInterval(seconds)
        final class Counts: @unchecked Sendable {  // guarded by `lock`
            let lock = NSLock()
            var ok = 0
            var failures: [String] = []
        }
        let counts = Counts()
        let server = s.server
        let csv = s.csv
        let clients = (0..<2).map { _ in
            Thread {
                while Date() < deadline {
                    // Requests that do not touch the crashing kernel (a literal it declines).
                    let r = try? server.eval(csv, where: "fare > 10", select: "count(*)")
                    counts.lock.lock()
                    if r?.0 == 200 { counts.ok += 1 } else { counts.failures.append("\(String(describing: r))") }
                    counts.lock.unlock()
                }
            }
        }
        clients.forEach { $0.start() }
        var drops: UInt8 = 0
        while Date() < deadline {
            drops &+= 1
            try s.dropMisbehaving(salt: drops)
            _ = try? s.query(1)  // crashes its worker; quarantined
            usleep(2_000_000)
        }
        while clients.contains(where: { $0.isExecuting }) { usleep(50_000) }
        #expect(counts.failures.isEmpty, "\(counts.failures.prefix(3))")
        #expect(counts.ok > 0 && s.server.process.isRunning)
        print("isolation soak: \(counts.ok) requests ok, \(drops) crashing builds dropped and quarantined")
    }

    @Test func aPluginThatWritesToItsWorkersSocketIsCaughtAndQuarantined() throws {
        let s = try Setup()
        try s.plugins.copy(try HostileFixtures.build(.forge), as: "forge.so")
        try s.server.waitForPlugin("forge.so") { $0?["status"] as? String == "loaded" }
        let (code, body) = try s.query(10)
        #expect(code == 502, "\(body)")
        #expect((body["error"] as? String)?.contains("wrote to its worker's socket") == true, "\(body)")
        #expect(
            (body["error"] as? String)?.contains("the registration of plugin hostile-forge@1.0.0") == true, "\(body)")
        // Its answers were never used; the next request, without it, is answered by a fresh worker.
        let (again, next) = try s.query(10)
        #expect(again == 200, "\(next)")
    }

    @Test func aPluginCannotShrinkTheSharedPageUnderTheSupervisor() throws {
        let s = try Setup()
        let pid = s.pid
        try s.plugins.copy(try HostileFixtures.build(.shrink), as: "shrink.so")
        try s.server.waitForPlugin("shrink.so") { $0?["status"] as? String == "loaded" }
        let (code, body) = try s.query(10)
        #expect(code == 500, "\(body)")
        #expect(
            (body["error"] as? String)?.contains("the registration of plugin hostile-shrink@1.0.0") == true, "\(body)")
        #expect(s.server.process.isRunning && s.pid == pid, "the supervisor survived")
    }

    @Test func aReplacementWorkerInheritsNoneOfTheServersConnections() throws {
        // Workers started after the server listens (replacements) must not hold its listening
        // socket, client connections or event-loop descriptors: a plugin could accept on them.
        let s = try Setup()
        try s.dropMisbehaving()
        let (code, _) = try s.query(1)  // a worker dies; its replacement starts now
        #expect(code == 500)
        let serverPID = s.pid
        func currentWorkers() -> [Int32] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
                .filter { pid in
                    let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                    return cmd.contains("worker") && cmd.contains("--parent\u{0}\(serverPID)\u{0}")
                }
        }
        // The replacement starts in the background: wait for it (a loaded machine may take a moment).
        var workers = currentWorkers()
        for _ in 0..<100 where workers.count != 2 {
            usleep(50_000)
            workers = currentWorkers()
        }
        #expect(workers.count == 2, "\(workers)")
        for pid in workers {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            let targets = fds.compactMap {
                try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")
            }
            #expect(targets.filter { $0.hasPrefix("socket:") }.count == 1, "worker \(pid): \(targets)")
            #expect(!targets.contains { $0.contains("eventpoll") }, "worker \(pid): \(targets)")
        }
    }
}
