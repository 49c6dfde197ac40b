import ArgumentParser
@_spi(Host) import Eddy
@_spi(Host) import EddyHost

#if canImport(Glibc)
    import Glibc
#endif

/// `eddy probe-plugin FILE`: loads one plugin file into a throwaway session. The host runs it in a
/// child process before loading a new plugin itself, so that a plugin that crashes, exits or hangs
/// affects only this process. Success is only what is written to the report descriptor.
struct ProbePluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe-plugin", abstract: "Load one plugin file in this process and exit (used by hosts).",
        shouldDisplay: false)

    @Option(help: "Descriptor to write the result record to.")
    var reportFd: Int32?

    @Option(help: "The host's process id: this process dies with it.")
    var parent: Int32?

    @Option(help: "Descriptor of the plugin file (a private copy the host verified); FILE is its name in reports.")
    var fd: Int32?

    @Option(help: "Refuse plugin files larger than this many bytes.")
    var maxPluginBytes: Int = PluginLoadPolicy().maxFileBytes

    @Option(help: "Check what the plugin computes after it registers (quick or full; see --verify).")
    var verify: VerifyLevel = .off

    @Option(help: "Seconds the verification may take (default: the level's).")
    var verifyTimeLimit: Double?

    @Argument var file: String

    func run() throws {
        if let parent, !PluginProbe.bindToParent(parent) { throw ExitCode(4) }
        // The plugin file is a private copy in the host's verified directory, so the directory's
        // own checks pass; registration here is bounded by the host's probe timeout instead.
        let host = PluginHost(
            session: Session(), probe: nil,
            policy: PluginLoadPolicy(maxFileBytes: maxPluginBytes, registrationTimeout: 3600),
            verifier: verify.verifier(timeLimit: verifyTimeLimit.flatMap { $0 > 0 && $0 <= 3600 ? $0 : nil }))
        let row = fd.map { host.load(descriptor: $0, path: file) } ?? host.load(file)
        let ok = row.status == .loaded || row.status == .replaced
        let record =
            ok
            ? PluginProbe.Record.success(
                kernels: row.kernels, name: row.plugin, version: row.version, verified: row.verified)
            : PluginProbe.Record.rejection(row.reason, plugin: row.plugin, version: row.version)
        if let reportFd {
            var bytes = Array(record.utf8)
            _ = bytes.withUnsafeMutableBytes { write(reportFd, $0.baseAddress, $0.count) }
            close(reportFd)
        }
        // Leave through exit(): the plugin's destructors run here, where a crash in one only refuses
        // the plugin (the host itself leaves without running them).
        Glibc.exit(ok ? 0 : 3)
    }
}
