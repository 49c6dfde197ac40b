@_spi(Host) import Eddy
import EddyIO
import Synchronization

/// New builds in canary (`eddy serve --canary`, issue 24): a new build of a plugin that is already
/// loaded is staged here instead of replacing the build that serves. The plugin set (``PluginHost/plugins``)
/// keeps the serving build — every request, check and fallback that does not ask for the canary sees it —
/// and the server sends a share of requests to workers with the staged build in its place. Promotion
/// makes the staged build the serving one; a rollback quarantines it (see ``PluginHost/quarantine(hash:plugin:cause:)``),
/// and the serving build stays.
///
/// Only a host that checks plugins for worker processes stages (``PluginHost/Loading/checkOnly``): two
/// builds of one plugin are never loaded into one process here; workers hold one build or the other.
public final class CanaryBuilds: Sendable {
    private struct State {
        var wants: (@Sendable (_ plugin: String) -> Bool)?
        var staged: [String: LoadedPlugin] = [:]
    }
    private let state = Mutex(UncheckedBox(State()))

    init() {}

    /// Which plugins' new builds are staged from now on (`wants(name)`), in place of replacing them.
    public func stage(when wants: @escaping @Sendable (_ plugin: String) -> Bool) {
        state.withLock { $0.value.wants = wants }
    }

    func wants(_ plugin: String) -> Bool {
        guard let wants = state.withLock({ $0.value.wants }) else { return false }
        return wants(plugin)
    }

    /// The staged builds, by plugin name.
    public var staged: [LoadedPlugin] {
        state.withLock { Array($0.value.staged.values) }.sorted { $0.name < $1.name }
    }

    /// The staged build of plugin `name`, if any.
    public func candidate(of name: String) -> LoadedPlugin? { state.withLock { $0.value.staged[name] } }

    /// Stages `build` (an earlier candidate of the same plugin is dropped, not quarantined).
    func put(_ build: LoadedPlugin) { state.withLock { $0.value.staged[build.name] = build } }

    /// Takes plugin `name`'s candidate out, when it is the build `hash` (any, when nil).
    func take(_ name: String, hash: String? = nil) -> LoadedPlugin? {
        state.withLock { s in
            guard let c = s.value.staged[name], hash.map({ c.contentHash == $0 }) ?? true else { return nil }
            s.value.staged[name] = nil
            return c
        }
    }

    /// Drops the candidate whose content hash is `hash`, if one is staged.
    func drop(hash: String) {
        state.withLock { s in
            if let name = s.value.staged.first(where: { $0.value.contentHash == hash })?.key {
                s.value.staged[name] = nil
            }
        }
    }
}

extension PluginHost {
    /// Makes plugin `name`'s staged build the serving one (the build it replaces stays recorded as last
    /// good if it was). Nil when no build of it is staged, or `hash` names another.
    @discardableResult
    public func promoteCanary(_ name: String, hash: String? = nil) -> LoadedPlugin? {
        guard let candidate = canaries.candidate(of: name), hash.map({ candidate.contentHash == $0 }) ?? true,
            quarantine(of: candidate.contentHash) == nil
        else { return nil }
        // In the set before it leaves the stage: it is never neither.
        publishChecked(candidate)
        _ = canaries.take(name, hash: candidate.contentHash)
        return candidate
    }

    /// Quarantines plugin `name`'s staged build with `cause`; the serving build stays. Nil when no build
    /// of it is staged, or `hash` names another.
    @discardableResult
    public func rollBackCanary(_ name: String, hash: String? = nil, cause: String) -> LoadedPlugin? {
        guard let candidate = canaries.candidate(of: name), hash.map({ candidate.contentHash == $0 }) ?? true else {
            return nil
        }
        quarantine(hash: candidate.contentHash, plugin: "\(candidate.name)@\(candidate.version)", cause: cause)
        canaries.drop(hash: candidate.contentHash)
        return candidate
    }
}
