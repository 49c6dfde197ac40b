import EddyHostTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite(.serialized) struct ServeLifecycleTests {
    /// A file still being written is not loaded by a scan another file's event triggered (a
    /// half-written debug build can already be a loadable image); its own close loads it.
    @Test func aPluginStillBeingWrittenWaitsForItsClose() throws {
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path, rescan: "60")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyPluginDelta")))
        let path = dir.path + "/delta.so"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: bytes.prefix(bytes.count * 3 / 4))
        // Another plugin arrives (closed after writing): the scan it triggers loads it, not delta.so.
        try dir.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: "packed.so")
        try server.waitForPlugin("packed.so") { $0?["status"] as? String == "loaded" }
        usleep(300_000)
        try server.waitForPlugin("delta.so", timeout: 1) { $0 == nil }
        try handle.write(contentsOf: bytes.suffix(from: bytes.count * 3 / 4))
        try handle.close()
        try server.waitForPlugin("delta.so") { $0?["status"] as? String == "loaded" }
        let (_, report) = try server.request("GET", "/plugins")
        #expect(report["retained_images"] as? Int ?? -1 <= 2, "\(report)")
    }

    @Test func aRemovedPluginDirectoryKeepsTheLastSetAndIsPickedUpAgain() throws {
        let parent = ScratchDirectory()
        let dir = parent.path + "/plugins"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: PluginFiles.built("EddyPluginDelta"), toPath: dir + "/delta.so")
        let server = try Server(pluginDir: dir, rescan: "0.2")
        try server.waitForPlugin("delta.so") { $0?["status"] as? String == "loaded" }
        try FileManager.default.moveItem(atPath: dir, toPath: parent.path + "/elsewhere")
        usleep(600_000)
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 100)
        let (status, r) = try server.eval(
            csv, where: "trip_id < 100010", select: "count(*)", trace: true, compression: "storage")
        #expect(status == 200 && traceOwners(r).contains("plugin delta@1.0.0"), "\(r)")
        #expect(server.logText.contains("plugin directoryGone"))
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: PluginFiles.built("EddyFixtureDeltaV2"), toPath: dir + "/delta.so")
        try server.waitForPlugin("delta.so") { $0?["version"] as? String == "2.0.0" }
        #expect(server.logText.contains("plugin directoryBack"))
    }

    @Test func sigtermLetsTheRequestInFlightFinish() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 300_000)
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path)
        nonisolated(unsafe) var long: (Int, [String: Any])?
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            long = try? server.eval(csv, where: "city = 'Lyon'", select: "count(*)")
            finished.signal()
        }
        usleep(500_000)
        kill(server.process.processIdentifier, SIGTERM)
        finished.wait()
        server.process.waitUntilExit()
        let (status, response) = try #require(long)
        #expect(status == 200, "\(response)")
        #expect((response["result"] as? [[String: Any]])?.first?["count(*)"] as? Int == 60_000)
        #expect(server.process.terminationStatus == 0)
    }
}
