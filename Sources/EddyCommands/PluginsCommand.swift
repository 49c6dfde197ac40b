import ArgumentParser
@_spi(Host) import Eddy
@_spi(Host) import EddyHost

#if canImport(Glibc)
    import Glibc
#endif

struct PluginsCommand: ParsableCommand {
    /// The subcommands that talk to a running server (`status`, `promote`, `rollback`, `canary`):
    /// `eddy-server` sets them; `eddy` hands any command line naming them to it (``EddyFront``).
    nonisolated(unsafe) static var serverSubcommands: [any ParsableCommand.Type] = []

    /// Their names, which ``EddyFront`` looks for.
    static let serverSubcommandNames: Set<String> = ["status", "promote", "rollback", "canary"]

    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "plugins",
            abstract: "Scan the plugin directory, check and load every plugin, and report what happened to each file.",
            discussion: "Exits 0 when every .so file loaded or was skipped, 1 when any was rejected or quarantined "
                + "or the directory does not exist (the report, text or --json, is printed either way). "
                + "status, promote, rollback and canary talk to a running eddy serve (its plugin set, its builds in canary).",
            subcommands: serverSubcommands
        )
    }

    @OptionGroup var plugins: PluginOptions

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "Run plugin code unconfined (see eddy eval --no-confine).")
    var noConfine = false

    func run() throws {
        let session = Session()
        // Plugin code runs here as it does in `eddy eval`: confined, once every plugin passed its probe.
        let (host, rows, applied) =
            noConfine
            ? try plugins.settings.loadUnconfined(into: session, quiet: true)
            : try plugins.settings.loadConfined(
                into: session, readPaths: [], quiet: true, readsBuildMode: true, reusesRefusals: false)
        let confinement = applied ?? (noConfine ? .off("--no-confine") : Confinement.expected(user: nil, invoker: true))
        if json {
            print(
                "{\"directory\": \(PluginReportRow.jsonString(plugins.settings.directory)), \"snapshot_generation\": \(session.kernels.generation), "
                    + "\"retained_images\": \(host.retainedImages), "
                    // What plugin code ran under here (as under `eddy eval`), or would, when none was loaded.
                    + "\"confinement\": \(PluginReportRow.jsonString(confinement.description)), "
                    + "\"files\": [")
            print(rows.map { "  " + $0.json }.joined(separator: ",\n"))
            print("]}")
            try exitStatus(rows)
            return
        }
        print("plugin directory: \(PluginHost.escaped(plugins.settings.directory))")
        print("confinement: \(confinement)")
        if rows.isEmpty {
            print("(no .so files)")
            try exitStatus(rows)
            return
        }
        let header = ["file", "status", "plugin", "version", "kernels", "load ms", "detail"]
        let table = rows.map { r in
            // Names and reasons come from the directory and the plugins: escaped, one line per file.
            [
                PluginHost.escaped(PluginHost.baseName(r.file))
                    + (r.linkTarget.isEmpty ? "" : " -> " + PluginHost.escaped(r.linkTarget)),
                r.status.rawValue, PluginHost.escaped(r.plugin), PluginHost.escaped(r.version),
                r.kernels > 0 ? String(r.kernels) : "", String((r.loadMilliseconds * 10).rounded() / 10),
                PluginHost.escaped(
                    [
                        r.debugBuild ? "debug build: deploy a release build (swift build -c release)" : "",
                        r.reason, r.signer.isEmpty ? "" : "signed by " + r.signer,
                        r.verified.map { "verified: \($0.inputs) inputs agree with decode-then-compute" } ?? "",
                    ]
                    .filter { !$0.isEmpty }.joined(separator: "; ")),
            ]
        }
        var widths = header.map(\.count)
        for r in table { for (k, c) in r.enumerated() { widths[k] = max(widths[k], c.count) } }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).enumerated().map { k, pair in
                k == cells.count - 1 ? pair.0 : pair.0 + String(repeating: " ", count: pair.1 - pair.0.count)
            }.joined(separator: "  ")
        }
        print(line(header))
        for r in table { print(line(r)) }
        let loaded = rows.filter { $0.status == .loaded || $0.status == .replaced }.count
        print(
            "\(loaded) loaded, \(rows.filter { $0.status == .skipped }.count) skipped, "
                + "\(rows.filter { $0.status == .rejected }.count) rejected"
                + (rows.contains { $0.status == .quarantined }
                    ? ", \(rows.filter { $0.status == .quarantined }.count) quarantined" : "")
                + "; registry snapshot generation "
                + "\(session.kernels.generation)")
        try exitStatus(rows)
    }

    /// Nonzero when a file was refused or the directory is not there, so that scripts and CI notice.
    private func exitStatus(_ rows: [PluginReportRow]) throws {
        if rows.contains(where: { $0.status == .rejected || $0.status == .quarantined }) { throw ExitCode(1) }
        var st = stat()
        if stat(plugins.settings.directory, &st) != 0 || (st.st_mode & S_IFMT) != S_IFDIR {
            Stderr.write(
                "eddy: the plugin directory \(PluginHost.escaped(plugins.settings.directory)) does not exist\n")
            throw ExitCode(1)
        }
    }
}
