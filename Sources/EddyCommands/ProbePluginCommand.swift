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

    @Option(help: "When running as root: the user (UID:GID) to become before loading plugin code.")
    var workerUser: String?

    @Flag(help: "Do not confine this process.")
    var noConfine = false

    @Flag(help: "Exit rather than run plugin code with less than full confinement.")
    var requireConfinement = false

    @Argument var file: String

    func run() throws {
        if let parent, !PluginProbe.bindToParent(parent) { throw ExitCode(4) }
        // The plugin file is a private copy in the host's verified directory, so the directory's
        // own checks pass; registration here is bounded by the host's probe timeout instead.
        let host = PluginHost(
            session: Session(), probe: nil,
            policy: PluginLoadPolicy(maxFileBytes: maxPluginBytes, registrationTimeout: 3600),
            verifier: verify.verifier(timeLimit: verifyTimeLimit.flatMap { $0 > 0 && $0 <= 3600 ? $0 : nil })
                .map { Self.markingVerification($0, on: reportFd) })
        if !noConfine {
            // After the host opened its copy directory, before any plugin byte runs: the plugin file
            // (a descriptor of a private copy) and the copy directories are all it may read.
            var paths = [host.shadowDirectory]
            if let fd, let copy = Self.path(of: fd), let slash = copy.lastIndex(of: "/"), slash > copy.startIndex {
                paths.append(String(copy[..<slash]))
            }
            let confinement = Confinement.apply(
                .init(
                    readPaths: paths, user: workerUser.flatMap(Confinement.WorkerUser.init(argument:)),
                    fileSizeLimit: 1 << 30))
            if requireConfinement && confinement.level != .full {
                Self.report(
                    PluginProbe.Record.rejection("confinement \(confinement) (--require-confinement)"), on: reportFd)
                throw ExitCode(5)
            }
            // Becoming another user cleared the parent-death signal.
            if let parent, !PluginProbe.bindToParent(parent) { throw ExitCode(4) }
        }
        let row = fd.map { host.load(descriptor: $0, path: file) } ?? host.load(file)
        let ok = row.status == .loaded || row.status == .replaced
        let record =
            ok
            ? PluginProbe.Record.success(
                kernels: row.kernels, name: row.plugin, version: row.version, verified: row.verified,
                uses: host.plugins.first { $0.name == row.plugin }.flatMap {
                    PluginUses(hash: $0.contentHash, snapshot: host.session.kernels.snapshot)
                })
            : PluginProbe.Record.rejection(row.reason, plugin: row.plugin, version: row.version)
        Self.report(record, on: reportFd)
        if let reportFd { close(reportFd) }
        // Leave through exit(): the plugin's destructors run here, where a crash in one only refuses
        // the plugin (the host itself leaves without running them).
        Glibc.exit(ok ? 0 : 3)
    }

    /// `verifier`, writing ``PluginProbe/verifyingMark`` and the plugin's name to the report first: a crash
    /// from then on is the plugin's code on verification's inputs (the host keeps it like a wrong answer).
    static func markingVerification(_ verifier: PluginVerifier, on reportFd: Int32?) -> PluginVerifier {
        PluginVerifier(level: verifier.level, seconds: verifier.seconds) { session, name in
            report(PluginProbe.verifyingMark + PluginHost.escaped(name) + "\n", on: reportFd)
            return verifier.check(session, name)
        }
    }

    /// Writes `text` to the host's report pipe (when there is one).
    static func report(_ text: String, on reportFd: Int32?) {
        guard let reportFd else { return }
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(reportFd, $0.baseAddress, $0.count) }
    }

    /// The file descriptor `fd` is open on (what /proc/self/fd/N leads to), or nil.
    static func path(of fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
