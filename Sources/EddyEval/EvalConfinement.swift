@_spi(Host) import Eddy
@_spi(Host) import EddyHost

#if canImport(Glibc)
    import Glibc
#endif

extension PluginSettings {
    /// Loads the plugin directory into `session` as `eddy eval` runs plugin code: every new plugin is
    /// first probed in a child process (which confines itself), then this process confines itself —
    /// reading only `readPaths`, the private copies and the system's libraries, writing nothing but
    /// the descriptors it has open (standard output and error) — and only then maps the plugins'
    /// verified copies, so that no plugin byte runs here unconfined. With `--no-probe` the plugins load
    /// (and register) before confinement; their kernels still run confined. Without a plugin nothing
    /// is confined (no plugin code runs). Problems are reported on stderr unless `quiet`, as
    /// ``load(into:quiet:)`` does; the rows are the checks' and probes'. `beforeConfining` runs just
    /// before this process confines itself (only when it does): what must be opened or started with
    /// rights confinement takes away (`eddy convert`'s output and its committer). The rows say which
    /// builds are debug builds only when `readsBuildMode` (`eddy plugins` shows it; a query does not).
    /// With a `demand`, a checked build whose registrations, as its probe reported them (``PluginUses``),
    /// cannot meet it is not mapped (its row stays the checker's); a build without that report is. A
    /// file whose build this host recalls by the file's identity as one that cannot meet it is not even
    /// read (``notNeeded(_:in:_:_:)``; its row says so).
    /// `reusesRefusals` (one-shot commands) takes a recent probe refusal of the same bytes as the verdict.
    package func loadConfined(
        into session: Session, readPaths: [String], quiet: Bool = false, readsBuildMode: Bool = false,
        reusesRefusals: Bool = true, beforeConfining: () throws -> Void = {}, demand: () -> PluginDemand? = { nil }
    ) throws -> (PluginHost, [PluginReportRow], Confinement?) {
        guard let probe else {
            let (host, rows) = try load(into: session, quiet: quiet)
            guard !host.plugins.isEmpty else { return (host, rows, nil) }
            try beforeConfining()
            var confinement = Confinement.apply(.init(readPaths: readPaths + [host.shadowDirectory], invoker: true))
            confinement.missing.append("--no-probe: plugin registration ran before confinement")
            return (host, rows, confinement)
        }
        // The checks and probes, without mapping plugin code here (as a supervisor does).
        var st = stat()
        guard stat(directory, &st) == 0 else {
            if explicit {
                Stderr.write("eddy: warning: plugin directory \(PluginHost.escaped(directory)) does not exist\n")
            }
            return (try makeHost(session: session), [], nil)
        }
        // A directory without a plugin file needs no checker (its start reads this build's identity).
        let names = PluginHost.candidates(in: directory)
        if let names, names.isEmpty {
            return (PluginHost(session: session, probe: nil, policy: try policy(), holdsLastGood: false), [], nil)
        }
        // A checker registers no kernel: its session needs no built-ins.
        let checker = PluginHost(
            session: Session(builtins: false), probe: probe, policy: try policy(), loading: .checkOnly,
            readsBuildMode: readsBuildMode, reusesRefusals: reusesRefusals, holdsLastGood: false)
        // Asked once, and only when there are builds to choose among (an `.eddy` input's footer is read).
        let wanted = names == nil ? nil : demand()
        var rows = checker.scan(directory, leavingOut: Self.notNeeded(names ?? [], in: directory, checker, wanted))
        if !quiet { report(rows) }
        // The probe ran registration and verification already: this host maps the checked copies, as
        // the checker left them (not read, inspected and hashed a second time).
        let host = PluginHost(session: session, probe: nil, policy: try policy(), holdsLastGood: false)
        var checked = checker.plugins
        if !checked.isEmpty, let demand = wanted {
            // What each build registered, as its probe reported it: a build without that report maps.
            var recorded: [String: PluginUses] = [:]
            for plugin in checked { recorded[plugin.contentHash] = plugin.uses }
            let chosen = demand.select(recorded)
            checked = checked.filter { $0.uses == nil || chosen.contains($0.contentHash) }
        }
        guard !checked.isEmpty else { return (host, rows, nil) }
        try beforeConfining()
        let confinement = Confinement.apply(.init(readPaths: readPaths + [host.shadowDirectory], invoker: true))
        for plugin in checked {
            let row = host.load(checked: plugin)
            if row.status != .loaded && row.status != .replaced {
                // Its probe passed; here, confined, it failed: the row says so under the plugin's file.
                if let i = rows.firstIndex(where: { $0.file == plugin.file }) {
                    rows[i].status = .rejected
                    rows[i].reason = row.reason
                }
                if !quiet {
                    Stderr.write(
                        "eddy: warning: plugin \(PluginHost.escaped(plugin.file)) rejected: "
                            + "\(PluginHost.escaped(row.reason))\n")
                }
            }
        }
        return (host, rows, confinement)
    }

    /// The files not to read for an evaluation's `demand`: those whose builds, as recalled by the files'
    /// identities (``PluginHost/rememberedBuild(_:)``), cannot take part in it. Only when every file's
    /// build is recalled (a new build might store encodings that make another one needed), no two of
    /// them name the same plugin (the first file of a name loads and later ones are refused: leaving the
    /// first out would let another load), and the directory passes its trust checks (each file's
    /// warning or refusal is then the reader's to give). A recall that is out of date can only leave out
    /// a build the query could have used, which changes no answer.
    static func notNeeded(
        _ names: [(name: String, valid: Bool)], in directory: String, _ checker: PluginHost, _ demand: PluginDemand?
    ) -> [String: PluginReportRow] {
        guard let demand, !names.isEmpty, !PluginHost.directoryHasTrustProblem(directory) else { return [:] }
        var builds: [(name: String, build: PluginHost.RememberedBuild)] = []
        var pluginNames = Set<String>()
        var hashes = Set<String>()
        for entry in names {
            guard entry.valid, let build = checker.rememberedBuild(directory + "/" + entry.name) else { return [:] }
            // The same build in two files is loaded once (the same either way); two builds of one name are not.
            guard hashes.insert(build.hash).inserted else { continue }
            guard pluginNames.insert(build.plugin).inserted else { return [:] }
            builds.append((entry.name, build))
        }
        var recorded: [String: PluginUses] = [:]
        for b in builds { recorded[b.build.hash] = b.build.uses }
        let chosen = demand.select(recorded)
        var leftOut: [String: PluginReportRow] = [:]
        for b in builds where !chosen.contains(b.build.hash) {
            leftOut[b.name] = checker.notNeededRow(directory + "/" + b.name, b.build)
        }
        return leftOut
    }

    /// No plugin loaded, the directory not even read, in the shape of ``loadConfined(into:readPaths:quiet:)``:
    /// for an evaluation no plugin could take part in. The host still knows the quarantine (an error
    /// can name a quarantined build).
    package func notLoaded(into session: Session) throws -> (PluginHost, [PluginReportRow], Confinement?) {
        var st = stat()
        if explicit, stat(directory, &st) != 0 {
            Stderr.write("eddy: warning: plugin directory \(PluginHost.escaped(directory)) does not exist\n")
        }
        return (PluginHost(session: session, probe: nil, policy: try policy(), holdsLastGood: false), [], nil)
    }

    /// ``load(into:quiet:)`` in the shape of ``loadConfined(into:readPaths:quiet:)`` (`--no-confine`).
    package func loadUnconfined(into session: Session, quiet: Bool = false) throws -> (
        PluginHost, [PluginReportRow], Confinement?
    ) {
        let (host, rows) = try load(into: session, quiet: quiet)
        return (host, rows, nil)
    }
}
