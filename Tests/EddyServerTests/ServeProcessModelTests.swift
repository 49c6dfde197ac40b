import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Worker isolation stays on unless `--workers 0` asks for it off, and the server says when it is off.
@Suite(.serialized) struct ServeProcessModelTests {
    @Test func noProbeWithoutWorkersZeroIsRefusedInsteadOfDroppingIsolation() throws {
        let r = try Eddy.run(["serve", "--no-probe", "--port", "0", "--plugin-dir", ScratchDirectory().path])
        #expect(r.status == 64, "\(r.stderr)")
        #expect(
            r.stderr.contains("--no-probe turns off worker isolation") && r.stderr.contains("add --workers 0"),
            "\(r.stderr)")
        #expect(!r.stderr.contains("listening"))
    }

    @Test func workersZeroSaysThereIsNoCrashIsolation() throws {
        let line = "no crash isolation: plugin kernels run in the server's own process, so a kernel that crashes"
        let inProcess = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [], arguments: ["--no-probe", "--workers", "0"])
        #expect(inProcess.logText.contains(line), "\(inProcess.logText)")
        let (_, plugins) = try inProcess.request("GET", "/plugins")
        #expect(plugins["workers"] as? Int == 0)
        let isolated = try Server(pluginDir: ScratchDirectory().path, dataDirs: [])
        #expect(!isolated.logText.contains("no crash isolation"), "\(isolated.logText)")
        let (_, report) = try isolated.request("GET", "/plugins")
        #expect(report["workers"] as? Int ?? 0 > 0, "\(report)")
    }
}
