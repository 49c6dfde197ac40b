import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct SignLinkTests {
    /// `eddy sign link.so` replaced the link with a signed copy and left the file it named — the one a
    /// host loads through the link — unsigned. A link is refused, naming its target: sign the file itself.
    @Test func signingASymbolicLinkIsRefusedNamingItsTarget() throws {
        let keys = try SigningTests.Keys()
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let target = dir.path + "/delta.so"
        let link = dir.path + "/link.so"
        #expect(symlink(target, link) == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: target))
        let r = try Eddy.run(["sign", link, "--key", keys.trusted + "/alice.key"])
        #expect(r.status == 1, "\(r)")
        #expect(
            r.stderr.contains("\(link) is a symbolic link to \(target)") && r.stderr.contains("sign the file itself"),
            "\(r.stderr)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == target)
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["delta.so", "link.so"])
        // Signed as the file itself, it verifies through the link too.
        #expect(try Eddy.run(["sign", target, "--key", keys.trusted + "/alice.key"]).status == 0)
        let verified = try Eddy.run(["verify", link, "--trusted-keys", keys.trusted])
        #expect(verified.status == 0 && verified.stdout.contains("alice"), "\(verified)")
    }
}
