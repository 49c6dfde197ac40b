import ArgumentParser
@_spi(Host) import Eddy
@_spi(Host) import EddyHost

#if canImport(Glibc)
    import Glibc
#endif

/// `--plugin-dir` and the plugin trust flags, shared by the commands that load plugins.
package struct PluginOptions: ParsableArguments {
    package init() {}

    @Option(
        help: ArgumentHelp(
            "Directory of plugin .so files (default: $EDDY_PLUGIN_DIR, else ./plugins).", valueName: "dir"))
    var pluginDir: String?

    @Flag(help: "Load new plugins directly, without first loading each in a child process.")
    package var noProbe = false

    @Option(
        help: ArgumentHelp(
            "Seconds a plugin may take to load and register (in the probe process, and again in the host) before it is refused.",
            valueName: "seconds"))
    var probeTimeout: Double = Defaults.probeTimeout

    @Flag(help: "Load from a plugin directory or files that others can write (or another user owns), with a warning.")
    var allowInsecureDir = false

    @Option(help: ArgumentHelp("Refuse plugin files larger than this many bytes.", valueName: "bytes"))
    var maxPluginBytes: Int = Defaults.maxPluginBytes

    @Option(
        help: ArgumentHelp(
            "A directory of public keys (NAME.pub, from eddy keygen) whose signatures are trusted.",
            valueName: "dir"))
    var trustedKeys: String?

    @Flag(help: "Load only plugins signed by a key in --trusted-keys.")
    var requireSigned = false

    @Option(
        help: ArgumentHelp(
            "Check what each new plugin computes before its kernels serve a query: off, quick (a bounded sample, "
                + "about a second) or full (many more inputs, up to half a minute). The verdict is kept per "
                + "plugin build, so only the first load pays.",
            valueName: "level"))
    var verify: VerifyLevel = Defaults.verify

    @Option(
        help: ArgumentHelp(
            "Seconds --verify may take per plugin (default: 3 at quick, 60 at full). A check the limit cuts "
                + "short is reported and not remembered.", valueName: "seconds"))
    var verifyTimeLimit: Double?

    /// The verifier the flags ask for (nil: --verify off).
    package var verifier: PluginVerifier? { verify.verifier(timeLimit: verifyTimeLimit) }

    package var directory: String { pluginDir ?? PluginHost.defaultDirectory }

    /// The child gets the same size cap, so it refuses nothing the host would load, and verifies at
    /// the same level (its timeout grows by the verification's own limit).
    package var probe: PluginProbe? {
        noProbe
            ? nil
            : PluginProbe.selfExecutable(
                timeout: probeTimeout + (verifier?.seconds ?? 0) * 2,
                extraArguments: ["--max-plugin-bytes", String(maxPluginBytes)]
                    + (verify == .off
                        ? []
                        : ["--verify", verify.rawValue]
                            + (verifyTimeLimit.map { ["--verify-time-limit", String($0)] } ?? [])))
    }

    /// - Throws: ``ValidationError`` for a key directory that cannot be read.
    package func policy() throws -> PluginLoadPolicy {
        let keys: [PluginSignature.TrustedKey]
        do {
            keys = try trustedKeys.map(PluginSignature.readTrustedKeys) ?? []
        } catch {
            throw ValidationError("\(error)")
        }
        return PluginLoadPolicy(
            maxFileBytes: maxPluginBytes, allowInsecureDirectory: allowInsecureDir,
            registrationTimeout: probeTimeout, trustedKeys: keys, requireSigned: requireSigned)
    }

    package func validate() throws {
        guard probeTimeout > 0, probeTimeout <= 86_400 else {
            throw ValidationError("--probe-timeout must be between 0 and 86400 seconds")
        }
        guard maxPluginBytes > 0 else { throw ValidationError("--max-plugin-bytes must be positive") }
        if let t = verifyTimeLimit, !(t > 0 && t <= 3600) {
            throw ValidationError("--verify-time-limit must be between 0 and 3600 seconds")
        }
        if requireSigned && trustedKeys == nil {
            throw ValidationError("--require-signed needs --trusted-keys DIR (the public keys whose signatures count)")
        }
        _ = try policy()
    }

    /// Whether the directory was asked for explicitly (a missing default directory is not an error).
    var explicit: Bool { pluginDir != nil || getenv("EDDY_PLUGIN_DIR") != nil }

    /// Without a probe the host verifies plugins itself, after registering and before publishing.
    func makeHost(session: Session) throws -> PluginHost {
        PluginHost(session: session, probe: probe, policy: try policy(), verifier: noProbe ? verifier : nil)
    }

    /// Loads the plugin directory into `session`; problems are reported on stderr, never fatal.
    func load(into session: Session, quiet: Bool = false) throws -> (PluginHost, [PluginReportRow]) {
        let host = try makeHost(session: session)
        var st = stat()
        guard stat(directory, &st) == 0 else {
            if explicit {
                Stderr.write("eddy: warning: plugin directory \(PluginHost.escaped(directory)) does not exist\n")
            }
            return (host, [])
        }
        let rows = host.scan(directory)
        if !quiet { report(rows) }
        return (host, rows)
    }

    /// Prints the rejected, quarantined and warned-about rows on stderr.
    func report(_ rows: [PluginReportRow]) {
        for r in rows where r.status == .rejected {
            Stderr.write(
                "eddy: warning: plugin \(PluginHost.escaped(r.file)) rejected: \(PluginHost.escaped(r.reason))\n")
        }
        for r in rows where r.status == .quarantined {
            Stderr.write(
                "eddy: warning: plugin \(PluginHost.escaped(r.plugin))@\(PluginHost.escaped(r.version)) in "
                    + "\(PluginHost.escaped(r.file)) not loaded: \(PluginHost.escaped(r.reason))\n")
        }
        for r in rows where r.status != .rejected && r.reason.contains("warning: ") {
            Stderr.write("eddy: warning: plugin \(PluginHost.escaped(r.file)): \(PluginHost.escaped(r.reason))\n")
        }
    }
}
