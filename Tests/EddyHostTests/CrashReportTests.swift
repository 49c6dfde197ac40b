import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CrashReportTests {
    @Test func aCrashInAPluginKernelNamesThePluginAndTheKernel() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyFixtureCrashingKernel"), as: "crashing-kernel.so")
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 100)
        let r = try Eddy.run(
            [
                "eval", csv, "--plugin-dir", dir.path, "--where", "fare > 1", "--select", "count(*)",
                "--plugin-min-rows", "0",
            ], environment: ["SWIFT_BACKTRACE": "enable=no"])
        #expect(r.status == 11, "ends with the signal's status: \(r.status)")
        #expect(
            r.stderr.contains(
                "eddy: crashed with signal 11 (SIGSEGV) in kernel 'crash on compare' of plugin "
                    + "crashing-kernel@0.1.0; to run without it, remove that plugin's file"), "\(r.stderr)")
        // The same query without the plugin runs.
        let clean = try Eddy.run([
            "eval", csv, "--plugin-dir", emptyPluginDirectory, "--where", "fare > 1",
            "--select", "count(*)", "--format", "csv",
        ])
        #expect(clean.status == 0)
    }

    @Test func aSignalRaisedByPluginCodeStillEndsTheProcessWithItsStatus() throws {
        let dir = ScratchDirectory()
        try dir.copy(try HostileFixtures.build(.raise), as: "raise.so")
        // In the host (no probe), with Swift's backtracer on as users have it.
        let r = try Eddy.run(
            ["plugins", "--plugin-dir", dir.path, "--no-probe"], environment: ["SWIFT_BACKTRACE": "enable=yes"])
        #expect(r.status == 11, "\(r.status) \(r.stdout)")
        #expect(
            r.stderr.contains(
                "eddy: crashed with signal 11 (SIGSEGV) in the registration of plugin hostile-raise@1.0.0"),
            "\(r.stderr)")
    }
}
