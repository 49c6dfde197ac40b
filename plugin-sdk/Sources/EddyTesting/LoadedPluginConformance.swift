@_spi(Host) import Eddy

extension PluginConformance {
    /// Checks plugin `name` as a host loaded it into `session` (from its `.so`): the same checks as
    /// ``check(_:options:)`` on every key the plugin's kernels and rules cover, with its compressor
    /// hooks making its encodings, and on its hooks and encoding storages. Hosts run this before a
    /// plugin's kernels serve any query (`eddy … --verify`); a test can load a built plugin file and
    /// check it the same way. Bound its cost with ``ConformanceOptions/inputsPerKey`` and
    /// ``ConformanceOptions/timeLimit``.
    @_spi(Host) public static func check(loadedPlugin name: String, in session: Session, options: ConformanceOptions)
        -> ConformanceReport
    {
        let snapshot = session.kernels.snapshot
        let mine: (KernelOwner) -> Bool = { !$0.isBuiltin && $0.name == name }
        var keys: [KeyPlan] = []
        for entry in snapshot.entries {
            let kernels = entry.kernels.filter { mine($0.owner) }
            let rules = entry.rules.filter { mine($0.owner) }
            guard !kernels.isEmpty || !rules.isEmpty else { continue }
            keys.append(KeyPlan(parent: entry.parent, child: entry.child, names: Set(kernels.map(\.name))))
        }
        return run(
            session: session, keys: keys, underTest: mine,
            hooks: snapshot.compressorHooks.filter { mine($0.owner) },
            storages: snapshot.pluginEncodingStorages.filter { mine($0.owner) }, options: options,
            builtIns: options.timingRows > 0 ? Session() : nil)
    }
}
