import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Private copies of builds that left the plugin set are collected: a plugin replaced again and again
/// leaves a bounded number of copies, and what the server still uses keeps working.
@Suite(.serialized) struct PrivateCopyCollectionTests {
    @Test func thirtyReplacesLeaveABoundedNumberOfCopies() throws {
        let plugins = ScratchDirectory()
        let state = ScratchDirectory()
        chmod(state.path, 0o700)
        let copies = state.path + "/copies"
        let work = ScratchDirectory()
        let csv = work.write("t.csv", "id,fare\n" + (0..<300).map { "\($0),\($0).5\n" }.joined())
        let server = try Server(
            pluginDir: plugins.path, rescan: "0.2", arguments: ["--workers", "1"],
            environment: ["EDDY_SHADOW_DIR": copies])
        let original = try Data(contentsOf: URL(fileURLWithPath: try LingeringKernelFixture.lingering.get()))
        func soCount() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: copies)) ?? []).filter { $0.hasSuffix(".so") }.count
        }
        var most = 0
        for round in 0..<31 {
            // Each round another build (a trailing byte: same code, other bytes), renamed into place.
            var data = original
            data.append(contentsOf: [UInt8(round), 0xED])
            try data.write(to: URL(fileURLWithPath: plugins.path + "/.incoming"))
            rename(plugins.path + "/.incoming", plugins.path + "/lingering.so")
            let hash = String(try sha256(plugins.path + "/lingering.so").prefix(16))
            try server.waitForPlugin("lingering.so") {
                ($0?["status"] as? String == "loaded" || $0?["status"] as? String == "replaced")
                    && $0?["content_hash"] as? String == hash
            }
            // A request with the current build, so that the worker loads (and holds) its copy too.
            let (code, body) = try server.eval(csv, where: "fare > 100", select: "count(*)")
            #expect(code == 200 && (body["fingerprint"] as? String)?.contains("lingering-kernel") == true, "\(body)")
            most = max(most, soCount())
        }
        // The copies of replaced builds go once nobody holds them (a few seconds' grace).
        var count = soCount()
        for _ in 0..<150 where count > 2 {
            usleep(100_000)
            count = soCount()
        }
        #expect(count <= 2, "\(count) copies after 30 replaces (at most \(most) at once)")
        // The records stay; the current build still serves.
        #expect(FileManager.default.fileExists(atPath: copies + "/probed.tsv"))
        let (code, body) = try server.eval(csv, where: "fare > 100", select: "count(*)")
        #expect(code == 200 && (body["result"] as? [[String: Any]])?.first?["count(*)"] as? Int == 200, "\(body)")
    }
}
