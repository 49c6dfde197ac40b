@_spi(Host) import Eddy
@_spi(Host) import EddyHost
import EddyHostTestSupport
import Foundation
import Testing

/// A new build dropped over a serving plugin's file and refused: the earlier build keeps serving, and
/// the file's row says so (a third-party author's trial read the row alone as "nothing serves").
@Suite struct RejectedReplacementTests {
    @Test func aRefusedNewBuildSaysWhichBuildKeepsServing() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let host = PluginHost(session: Session(), probe: nil, policy: PluginLoadPolicy(registrationTimeout: 3600))
        let first = host.load(dir.path + "/delta.so")
        try #require(first.status == .loaded, "\(first)")
        let serving = try #require(host.plugins.first)
        // The same file, replaced by a broken build (renamed over it, as a deploy does).
        let full = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyPluginDelta")))
        FileManager.default.createFile(atPath: dir.path + "/.next.so", contents: full.prefix(20_000))
        try FileManager.default.removeItem(atPath: dir.path + "/delta.so")
        try FileManager.default.moveItem(atPath: dir.path + "/.next.so", toPath: dir.path + "/delta.so")
        let second = host.load(dir.path + "/delta.so")
        #expect(second.status == .rejected, "\(second)")
        #expect(second.reason.contains("truncated"), "\(second.reason)")
        #expect(
            second.reason.contains(
                "delta@\(serving.version) (sha256 \(serving.contentHash.prefix(16))), loaded from this file before, "
                    + "keeps serving"), "\(second.reason)")
        #expect(host.plugins.map(\.contentHash) == [serving.contentHash])
        // A refused file of its own says nothing of the kind.
        _ = dir.write("other.so", "this is not a library\n")
        let other = host.load(dir.path + "/other.so")
        #expect(other.status == .rejected && !other.reason.contains("keeps serving"), "\(other.reason)")
    }
}
