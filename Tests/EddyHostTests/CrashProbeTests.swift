import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CrashProbeTests {
    @Test func aPluginThatCrashesWhileLoadingIsRefusedAndTheHostCarriesOn() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyFixtureCrashing"), as: "crashing.so")
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let report = try pluginReport(dir.path)
        #expect(report["crashing.so"]?["status"] as? String == "rejected")
        #expect(
            (report["crashing.so"]?["reason"] as? String)?.contains("crashed in the probe process (killed by signal 11")
                == true,
            "\(report["crashing.so"] ?? [:])")
        #expect(report["delta.so"]?["status"] as? String == "loaded")
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 200)
        let r = try Eddy.run(["eval", csv, "--plugin-dir", dir.path, "--select", "count(*)", "--format", "csv"])
        #expect(r.status == 0 && r.stdout == "count(*)\n200\n", "\(r.stderr)")
    }

    @Test func aRunningServerSurvivesACrashingPluginDroppedIntoItsDirectory() throws {
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path)
        try dir.copy(PluginFiles.built("EddyFixtureCrashing"), as: "crashing.so")
        try server.waitForPlugin("crashing.so") {
            ($0?["reason"] as? String)?.contains("crashed in the probe process") == true
        }
        let (status, health) = try server.request("GET", "/health")
        #expect(status == 200 && health["status"] as? String == "ok")
        #expect(server.process.isRunning)
    }
}
