@_spi(Host) import Eddy
@_spi(Host) import EddyHost
import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A one-shot `eddy eval` checks each plugin once (a check-only host: read, inspected, hashed, its
/// private copy compared, probed) and then maps the checked copy (`PluginHost.load(checked:)`,
/// Sources/EddyCommands/EvalConfinement.swift) without reading it again.
@Suite struct CheckedLoadTests {
    /// A plugin loaded by one host, then given to a second host of the same process as checked.
    static func loadedOnce() throws -> (LoadedPlugin, ScratchDirectory) {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let first = PluginHost(session: Session(), probe: nil, policy: PluginLoadPolicy(registrationTimeout: 3600))
        let row = first.load(dir.path + "/delta.so")
        try #require(row.status == .loaded, "\(row)")
        let plugin = try #require(first.plugins.first)
        return (plugin, dir)
    }

    @Test func aCheckedCopyLoadsAndItsKernelsServe() throws {
        let (plugin, dir) = try Self.loadedOnce()
        let session = Session()
        let host = PluginHost(session: session, probe: nil, policy: PluginLoadPolicy(registrationTimeout: 3600))
        let row = host.load(checked: plugin)
        #expect(row.status == .loaded, "\(row)")
        #expect(row.file == plugin.file && row.kernels == plugin.kernelCount, "\(row)")
        #expect(host.plugins.map(\.name) == [plugin.name])
        #expect(session.kernels.snapshot.fingerprint.contains(plugin.name), "\(session.kernels.snapshot.fingerprint)")
        _ = dir
    }

    @Test func aRegistrationThatIsNotTheProbesIsRefused() throws {
        var (plugin, dir) = try Self.loadedOnce()
        plugin.version = "9.9.9"
        let session = Session()
        let host = PluginHost(session: session, probe: nil, policy: PluginLoadPolicy(registrationTimeout: 3600))
        let row = host.load(checked: plugin)
        #expect(row.status == .rejected, "\(row)")
        #expect(row.reason.contains("in its probe") && row.reason.contains("9.9.9"), "\(row.reason)")
        #expect(host.plugins.isEmpty)
        #expect(!session.kernels.snapshot.fingerprint.contains(plugin.name))
        _ = dir
    }

    @Test func aCopyReplacedAfterItsCheckIsRefused() throws {
        // As a probe's plugin code could, where confinement is partial: other bytes renamed over the
        // private copy between the check and the load. A copy directory of the test's own.
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let shadow = dir.path + "/copies"
        let policy = PluginLoadPolicy(registrationTimeout: 3600)
        let first = PluginHost(session: Session(), shadowDirectory: shadow, probe: nil, policy: policy)
        try #require(first.load(dir.path + "/delta.so").status == .loaded)
        let plugin = try #require(first.plugins.first)
        let other = dir.path + "/other.so"
        try FileManager.default.copyItem(atPath: PluginFiles.built("EddyPluginPackedDictCompare"), toPath: other)
        #expect(rename(other, plugin.shadowPath) == 0)
        let session = Session()
        let host = PluginHost(session: session, shadowDirectory: shadow, probe: nil, policy: policy)
        let row = host.load(checked: plugin)
        #expect(row.status == .rejected, "\(row)")
        #expect(row.reason.contains("changed after it was checked"), "\(row.reason)")
        #expect(host.plugins.isEmpty)
    }

    @Test func aCopyThatIsGoneIsRefusedByName() throws {
        var (plugin, dir) = try Self.loadedOnce()
        plugin.shadowPath = (plugin.shadowPath as NSString).deletingLastPathComponent + "/libNoSuch-0000000000000000.so"
        let host = PluginHost(session: Session(), probe: nil, policy: PluginLoadPolicy(registrationTimeout: 3600))
        let row = host.load(checked: plugin)
        #expect(row.status == .rejected, "\(row)")
        #expect(row.reason.contains("libNoSuch-0000000000000000.so") && row.reason.contains("gone"), "\(row.reason)")
        _ = dir
    }
}
