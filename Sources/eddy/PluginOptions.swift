import ArgumentParser
import Eddy
import EddyHost
#if canImport(Glibc)
import Glibc
#endif

/// `--plugin-dir`, shared by the commands that load plugins.
struct PluginOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Directory of plugin .so files (default: $EDDY_PLUGIN_DIR, else ./plugins).", valueName: "dir"))
    var pluginDir: String?

    @Flag(help: "Load new plugins directly, without first loading each in a child process.")
    var noProbe = false

    var directory: String { pluginDir ?? PluginHost.defaultDirectory }

    var probe: PluginProbe? { noProbe ? nil : PluginProbe.selfExecutable }

    /// Whether the directory was asked for explicitly (a missing default directory is not an error).
    var explicit: Bool { pluginDir != nil || getenv("EDDY_PLUGIN_DIR") != nil }

    /// Loads the plugin directory into `session`; problems are reported on stderr, never fatal.
    func load(into session: Session, quiet: Bool = false) -> (PluginHost, [PluginReportRow]) {
        let host = PluginHost(session: session, probe: probe)
        var st = stat()
        guard stat(directory, &st) == 0 else {
            if explicit { Stderr.write("eddy: warning: plugin directory \(directory) does not exist\n") }
            return (host, [])
        }
        let rows = host.scan(directory)
        if !quiet {
            for r in rows where r.status == .rejected {
                Stderr.write("eddy: warning: plugin \(r.file) rejected: \(r.reason)\n")
            }
        }
        return (host, rows)
    }
}
