@_spi(Host) import Eddy
@_spi(Host) import EddyHost

#if canImport(Glibc)
    import Glibc
#endif

/// `--plugin-dir` and the plugin trust flags, as values: what ``EvalSettings`` and every command that
/// loads plugins (through EddyCommands' `PluginOptions`, which reads them with ArgumentParser) hold.
package struct PluginSettings: Sendable {
    package var pluginDir: String?
    package var noProbe = false
    package var probeTimeout: Double = Defaults.probeTimeout
    package var allowInsecureDir = false
    package var maxPluginBytes: Int = Defaults.maxPluginBytes
    package var trustedKeys: String?
    package var requireSigned = false
    package var verify: VerifyLevel = Defaults.verify
    package var verifyTimeLimit: Double?

    package init() {}

    /// The verifier the flags ask for (nil: --verify off).
    package var verifier: PluginVerifier? { verify.verifier(timeLimit: verifyTimeLimit) }

    package var directory: String { pluginDir ?? PluginHost.defaultDirectory }

    /// The child gets the same size cap, so it refuses nothing the host would load, and verifies at
    /// the same level (its timeout grows by the verification's own limit).
    package var probe: PluginProbe? {
        noProbe
            ? nil
            : PluginProbe.selfExecutable(
                timeout: probeTimeout, verifyTimeout: (verifier?.seconds ?? 0) * 2,
                extraArguments: ["--max-plugin-bytes", String(maxPluginBytes)]
                    + (verify == .off
                        ? []
                        : ["--verify", verify.rawValue]
                            + (verifyTimeLimit.map { ["--verify-time-limit", String($0)] } ?? [])))
    }

    /// - Throws: ``UsageError`` for a key directory that cannot be read.
    package func policy() throws -> PluginLoadPolicy {
        let keys: [PluginSignature.TrustedKey]
        do {
            keys = try trustedKeys.map(PluginSignature.readTrustedKeys) ?? []
        } catch {
            throw UsageError("\(error)")
        }
        return PluginLoadPolicy(
            maxFileBytes: maxPluginBytes, allowInsecureDirectory: allowInsecureDir,
            registrationTimeout: probeTimeout, trustedKeys: keys, requireSigned: requireSigned)
    }

    package func validate() throws {
        guard probeTimeout > 0, probeTimeout <= 86_400 else {
            throw UsageError("--probe-timeout must be between 0 and 86400 seconds")
        }
        guard maxPluginBytes > 0 else { throw UsageError("--max-plugin-bytes must be positive") }
        if let t = verifyTimeLimit, !(t > 0 && t <= 3600) {
            throw UsageError("--verify-time-limit must be between 0 and 3600 seconds")
        }
        if requireSigned && trustedKeys == nil {
            throw UsageError("--require-signed needs --trusted-keys DIR (the public keys whose signatures count)")
        }
        _ = try policy()
    }

    /// Whether the directory was asked for explicitly (a missing default directory is not an error).
    package var explicit: Bool { pluginDir != nil || getenv("EDDY_PLUGIN_DIR") != nil }

    /// Without a probe the host verifies plugins itself, after registering and before publishing.
    package func makeHost(session: Session) throws -> PluginHost {
        PluginHost(session: session, probe: probe, policy: try policy(), verifier: noProbe ? verifier : nil)
    }

    /// Loads the plugin directory into `session`; problems are reported on stderr, never fatal.
    package func load(into session: Session, quiet: Bool = false) throws -> (PluginHost, [PluginReportRow]) {
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
    package func report(_ rows: [PluginReportRow]) {
        for r in rows where r.status == .rejected {
            Stderr.write(
                "eddy: warning: plugin \(PluginHost.escaped(r.file)) rejected: \(PluginHost.escaped(r.reason))\n")
        }
        for r in rows where r.status == .quarantined {
            Stderr.write(
                "eddy: warning: plugin \(PluginHost.escaped(r.plugin))@\(PluginHost.escaped(r.version)) in "
                    + "\(PluginHost.escaped(r.file)) not loaded: \(PluginHost.escaped(r.reason))\n")
        }
        for r in rows where r.status != .rejected && r.reason.holds("warning: ") {
            Stderr.write("eddy: warning: plugin \(PluginHost.escaped(r.file)): \(PluginHost.escaped(r.reason))\n")
        }
    }
}
