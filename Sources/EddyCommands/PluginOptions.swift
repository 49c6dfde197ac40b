import ArgumentParser
import EddyEval

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
    var probeTimeout: Double = PluginSettings.Defaults.probeTimeout

    @Flag(help: "Load from a plugin directory or files that others can write (or another user owns), with a warning.")
    var allowInsecureDir = false

    @Option(help: ArgumentHelp("Refuse plugin files larger than this many bytes.", valueName: "bytes"))
    var maxPluginBytes: Int = PluginSettings.Defaults.maxPluginBytes

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
    var verify: VerifyLevel = PluginSettings.Defaults.verify

    @Option(
        help: ArgumentHelp(
            "Seconds --verify may take per plugin (default: 10 at quick, 60 at full). A check the limit cuts "
                + "short refuses the plugin, and is not remembered as a pass.", valueName: "seconds"))
    var verifyTimeLimit: Double?

    /// The options as values (what the commands load plugins with).
    package var settings: PluginSettings {
        var s = PluginSettings()
        s.pluginDir = pluginDir
        s.noProbe = noProbe
        s.probeTimeout = probeTimeout
        s.allowInsecureDir = allowInsecureDir
        s.maxPluginBytes = maxPluginBytes
        s.trustedKeys = trustedKeys
        s.requireSigned = requireSigned
        s.verify = verify
        s.verifyTimeLimit = verifyTimeLimit
        return s
    }

    package func validate() throws { try inArgumentParserTerms { try settings.validate() } }
}

/// Runs `body` (EddyEval's settings at work) and says its errors as ArgumentParser does: a usage error
/// as a `ValidationError` (printed with the command's usage), an exit status as an `ExitCode`.
func inArgumentParserTerms(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as UsageError {
        throw ValidationError(e.description)
    } catch let e as ExitStatus {
        throw ExitCode(e.code)
    }
}

extension VerifyLevel: ExpressibleByArgument {}
