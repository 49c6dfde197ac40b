import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `GET /kernels` is answered without a worker while the plugin set is the one a worker last
/// described, and asks a worker again once it changed.
@Suite(.serialized) struct ServeKernelsTests {
    @Test func kernelsAnswerWhileTheOnlyWorkerIsBusyAndFollowPluginChanges() throws {
        let plugins = ScratchDirectory()
        let state = ScratchDirectory()
        chmod(state.path, 0o700)
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 300)
        // One worker, one slot, no queue: a request that needs a worker while it is busy gets 503.
        let server = try Server(
            pluginDir: plugins.path, rescan: "0.3", dataDirs: [work.path],
            arguments: ["--workers", "1", "--max-concurrent", "1", "--max-queue", "0", "--eval-timeout", "5"],
            environment: ["EDDY_SHADOW_DIR": state.path + "/copies"])
        let (s0, k0) = try server.request("GET", "/kernels")
        #expect(s0 == 200 && !"\(k0)".contains("crashing-kernel"), "\(k0)")
        // A new plugin: the kept answer is stale, a worker is asked and names the plugin's kernels.
        try plugins.copy(PluginFiles.built("EddyFixtureCrashingKernel"), as: "crashing.so")
        try server.waitForPlugin("crashing.so") { $0?["status"] as? String == "loaded" }
        let (s1, k1) = try server.request("GET", "/kernels")
        #expect(s1 == 200 && "\(k1)".contains("crashing-kernel"), "\(k1)")
        // Literal 2 makes that kernel loop until the deadline: the only worker is busy for 5 s.
        final class Box: @unchecked Sendable { var value: (Int, [String: Any])? }  // written once, read after
        let slow = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            slow.value = try? server.eval(csv, where: "fare > 2", select: "count(*)")
            done.signal()
        }
        for _ in 0..<200 {
            let (_, health) = try server.request("GET", "/health")
            if health["in_flight"] as? Int == 1 { break }
            usleep(10_000)
        }
        let (s2, k2) = try server.request("GET", "/kernels")
        let stillRunning = slow.value == nil
        #expect(s2 == 200, "GET /kernels waited for (or was refused by) the busy worker: \(k2)")
        #expect(stillRunning, "the slow evaluation ended before /kernels was asked; the test proves nothing")
        #expect(k2["generation"] as? Int == k1["generation"] as? Int && "\(k2)".contains("crashing-kernel"))
        done.wait()
        #expect(slow.value?.0 == 504, "\(String(describing: slow.value))")
        // The looping build is quarantined: the set changed, and the next answer comes from a worker.
        try server.waitForPlugin("crashing.so") { $0?["status"] as? String == "quarantined" }
        let (s3, k3) = try server.request("GET", "/kernels")
        #expect(s3 == 200 && !"\(k3)".contains("crashing-kernel"), "\(k3)")
    }
}
