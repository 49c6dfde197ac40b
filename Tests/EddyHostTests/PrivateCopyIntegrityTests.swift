import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A private copy that no longer holds the plugin's bytes is never loaded: it is written again.
@Suite struct PrivateCopyIntegrityTests {
    @Test func aCopyWhoseBytesChangedIsWrittenAgainBeforeItLoads() throws {
        let plugins = ScratchDirectory()
        let state = ScratchDirectory()
        chmod(state.path, 0o700)
        let copies = state.path + "/copies"
        try plugins.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let source = try Data(contentsOf: URL(fileURLWithPath: plugins.path + "/delta.so"))
        let env = ["EDDY_SHADOW_DIR": copies]
        let first = try Eddy.run(["plugins", "--plugin-dir", plugins.path], environment: env)
        #expect(first.status == 0 && first.stdout.contains("loaded"), "\(first.stdout) \(first.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: copies).filter {
            $0.hasPrefix("delta-") && $0.hasSuffix(".so")
        }
        try #require(names.count == 1, "\(names)")
        let copy = copies + "/" + names[0]
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == source)
        // Same size, one byte changed in the middle (as a disk error or a hostile write would).
        var damaged = source
        damaged[damaged.count / 2] ^= 0x5A
        try damaged.write(to: URL(fileURLWithPath: copy))
        let second = try Eddy.run(["plugins", "--plugin-dir", plugins.path], environment: env)
        #expect(second.status == 0 && second.stdout.contains("loaded"), "\(second.stdout) \(second.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == source, "the damaged copy was kept")
    }
}
