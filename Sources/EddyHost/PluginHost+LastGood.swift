#if canImport(Glibc)
    import Glibc
#endif

/// Falling back to a plugin's last good build (see ``LastGoodBuilds``) when a newer build of it is
/// quarantined: the plugin keeps serving — and the `.eddy` files written with its encodings stay
/// readable, as far as the old build's `readableVersions` reach — instead of the built-ins taking over.
extension PluginHost {
    /// Notes that a request answered without a fault (no crash, hang or protocol violation) with
    /// `set` loaded: each build of it that has done so ``LastGoodBuilds/cleanRequests`` times, is
    /// still loaded and is not quarantined becomes its plugin's last good build.
    public func servedWithoutFault(_ set: [LoadedPlugin]) {
        for p in set where !lastGood.isRecorded(p.contentHash) && quarantine(of: p.contentHash) == nil {
            guard plugins.contains(where: { $0.contentHash == p.contentHash }), lastGood.countClean(p.contentHash)
            else { continue }
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            lastGood.append(
                LastGoodBuilds.Record(
                    hash: p.contentHash, plugin: p.name, version: p.version, copy: Self.baseName(p.shadowPath),
                    time: Double(ts.tv_sec), file: Self.resolvedFile(p.file)))
        }
    }

    /// The newest build of plugin `name` recorded as good from the plugin file `file` that is not
    /// quarantined; nil when none.
    public func lastGoodBuild(of name: String, file: String) -> LastGoodBuilds.Record? {
        let resolved = Self.escaped(Self.resolvedFile(file))
        return lastGood.records().last {
            $0.plugin == Self.escaped(name) && $0.file == resolved && quarantine(of: $0.hash) == nil
        }
    }

    /// `path` with its directory resolved (links, `..`, relative): the same file named from `eddy
    /// eval` and from `eddy serve` compares equal. The path as given when its directory is gone.
    static func resolvedFile(_ path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard let real = realpath(directory, nil) else { return path }
        defer { free(real) }
        let resolved = String(cString: real)
        return (resolved == "/" ? "" : resolved) + "/" + name
    }

    /// Loads the last good build of plugin `name` from its private copy, reporting it as loaded from
    /// `file` (the plugin directory's file, whose newer build was quarantined): through the same
    /// checks as any load (signature policy, ELF checks, probe verdict, verification). Nil — the
    /// built-ins take over — when the plugin is loaded, has no last good build, or its copy is gone
    /// or no longer holds the recorded bytes.
    @discardableResult
    public func fallBackToLastGood(
        plugin name: String, file: String, quarantinedVersion: String, cause: String
    ) -> LastGoodBuilds.Fallback? {
        guard !plugins.contains(where: { $0.name == name }), let record = lastGoodBuild(of: name, file: file) else {
            return nil
        }
        // A last good build that cannot serve is said (the log), not silently replaced by the built-ins.
        func missed(_ why: String) -> LastGoodBuilds.Fallback? {
            lastGood.announce(
                .init(
                    plugin: name, version: record.version, hash: record.hash, quarantinedVersion: quarantinedVersion,
                    cause: cause, missed: why))
            return nil
        }
        let fd = lastGood.openCopy(record)
        guard fd >= 0 else {
            return missed("its private copy is gone (\(errnoText())); the built-in kernels serve its keys")
        }
        defer { close(fd) }
        let row = load(descriptor: fd, path: file)
        guard row.status == .loaded || row.status == .replaced else {
            return missed("its copy did not load: \(row.reason); the built-in kernels serve its keys")
        }
        guard row.plugin == name, !row.contentHash.isEmpty, record.hash.hasPrefix(row.contentHash) else {
            // Other bytes than those recorded: not the last good build; withdraw whatever loaded.
            if let other = plugins.first(where: { $0.contentHash.hasPrefix(row.contentHash) && $0.file == file }) {
                unload(pluginNamed: other.name)
            }
            return missed("its copy no longer holds the recorded bytes; the built-in kernels serve its keys")
        }
        let fallback = LastGoodBuilds.Fallback(
            plugin: name, version: record.version, hash: record.hash, quarantinedVersion: quarantinedVersion,
            cause: cause)
        lastGood.announce(fallback)
        return fallback
    }

    /// A quarantined file's row, once its plugin is served by its last good build (falling back to it
    /// now if nothing serves the plugin): "serving 0.1.0 (last good, sha256 …); 0.2.0 quarantined
    /// since …" (or "(previous build, …)" when a build rolled back from its canary left a build not yet
    /// recorded as good serving). Other rows as they are.
    func withLastGood(_ r: PluginReportRow) -> PluginReportRow {
        guard r.status == .quarantined, !r.plugin.isEmpty else { return r }
        if !plugins.contains(where: { $0.name == r.plugin }) {
            fallBackToLastGood(plugin: r.plugin, file: r.file, quarantinedVersion: r.version, cause: r.reason)
        }
        guard let serving = plugins.first(where: { $0.name == r.plugin && $0.file == r.file }),
            !r.contentHash.isEmpty, !serving.contentHash.hasPrefix(r.contentHash)
        else { return r }
        // A build rolled back from its canary leaves the build before it serving, good or not yet.
        let good = lastGood.records().contains(where: { $0.hash == serving.contentHash })
        var out = r
        out.reason =
            "serving \(Self.escaped(serving.version)) (\(good ? "last good" : "previous build"), sha256 "
            + "\(serving.contentHash.prefix(12))…); \(Self.escaped(r.version)) \(r.reason)"
        return out
    }
}
