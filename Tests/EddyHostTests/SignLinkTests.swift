import EddyHostTestSupport
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

    /// A hard link is the same trap (found by the hostile review): the signed copy took the name and the
    /// file's other name kept the unsigned bytes. Refused; after a copy, signing works.
    @Test func signingAFileWithAnotherHardLinkIsRefused() throws {
        let keys = try SigningTests.Keys()
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let file = dir.path + "/delta.so"
        let other = dir.path + "/hard.so"
        #expect(link(file, other) == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: file))
        let r = try Eddy.run(["sign", other, "--key", keys.trusted + "/alice.key"])
        #expect(r.status == 1, "\(r)")
        #expect(
            r.stderr.contains("\(other) has 2 hard links") && r.stderr.contains("nothing was changed"), "\(r.stderr)")
        var st = stat()
        #expect(stat(file, &st) == 0 && st.st_nlink == 2)
        #expect(try Data(contentsOf: URL(fileURLWithPath: other)) == before)
        #expect(unlink(other) == 0)
        #expect(try Eddy.run(["sign", file, "--key", keys.trusted + "/alice.key"]).status == 0)
    }
}
