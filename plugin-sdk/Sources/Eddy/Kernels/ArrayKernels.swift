import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The session's kernel registry: execute-parent kernels and reduce-parent rules keyed by
/// (parent encoding, child encoding).
///
/// Per key, kernels registered by plugins are tried before built-in ones, and within each group in
/// registration order (registering again appends). Every change publishes a new immutable
/// ``KernelSnapshot`` (copy-on-write); an ``ExecutionCtx`` takes the snapshot current at its
/// creation and never sees later changes. No lock is held while a kernel runs, so a kernel may
/// register others without deadlock.
@_spi(Host)
public final class ArrayKernels: Sendable {
    private struct Key: Hashable {
        let parent: Int
        let child: Int
    }

    private struct State {
        var kernels: [Key: [ExecuteParentKernel]] = [:]
        var rules: [Key: [ReduceParentRule]] = [:]
        var generation = 0
        /// The snapshot of `generation`, built when first asked for: a host that registers several
        /// plugins in a row (or only records them, as a one-shot's checker does) builds one, not one
        /// per change.
        var built: KernelSnapshot?
        /// Plugins whose registrations are in the registry, by name.
        var plugins: [String: KernelOwner] = [:]
        /// Compressor hooks by plugin name: versioned with the kernels, so that a context never
        /// mixes one version's encodings with another version's kernels.
        var hooks: [String: [CompressorHook]] = [:]
        /// Encodings by plugin name: which plugin an encoding's errors are attributed to.
        var encodings: [String: [String]] = [:]
        /// Encoding storages by plugin name: how files holding the plugin's encodings are read.
        var storages: [String: [EncodingStorage]] = [:]

        /// The snapshot of `generation`, built now if no one asked for it since the last change.
        mutating func current() -> KernelSnapshot {
            if let built { return built }
            let fresh = ArrayKernels.build(self)
            built = fresh
            return fresh
        }
    }

    private let state: Mutex<State>
    /// Mirrors `state.generation`, read without the lock on every context creation.
    private let publishedGeneration = Atomic<Int>(0)
    /// Each thread keeps its own object for the current snapshot, so that contexts on two threads
    /// do not fight over one reference count. Nil if the process ran out of thread-specific keys.
    private let threadKey: pthread_key_t?

    /// An empty registry (no kernels, not even built-ins; see ``Session`` for a populated one).
    public init() {
        let width = EncodingID.internedCount
        let empty = KernelSnapshot(
            generation: 0, width: width,
            executeParent: Array(repeating: [], count: width * width),
            reduceParent: Array(repeating: [], count: width * width))
        state = Mutex(State(built: empty))
        var key = pthread_key_t()
        if pthread_key_create(
            &key,
            { raw in
                if let raw { Unmanaged<ThreadSnapshot>.fromOpaque(raw).release() }
            }) == 0
        {
            threadKey = key
        } else {
            threadKey = nil
        }
    }

    deinit {
        // Threads that used this registry keep their cached snapshot object until they exit or
        // touch the key again; deleting the key does not run destructors. A snapshot is small and
        // sessions are long-lived, so that leak is bounded by threads x sessions.
        if let threadKey { pthread_key_delete(threadKey) }
    }

    /// The generation of the newest snapshot.
    public var generation: Int { publishedGeneration.load(ordering: .acquiring) }

    /// The current snapshot. Costs one atomic load and one retain of a thread-private object when
    /// nothing changed since this thread last asked.
    public var snapshot: KernelSnapshot { currentSnapshot() }

    func currentSnapshot() -> KernelSnapshot {
        let g = publishedGeneration.load(ordering: .acquiring)
        guard let threadKey else { return state.withLock { $0.current() } }
        if let raw = pthread_getspecific(threadKey) {
            let cached = Unmanaged<ThreadSnapshot>.fromOpaque(raw).takeUnretainedValue()
            if cached.snapshot.generation == g { return cached.snapshot }
            let fresh = state.withLock { KernelSnapshot(sharing: $0.current()) }
            cached.snapshot = fresh
            return fresh
        }
        let fresh = state.withLock { KernelSnapshot(sharing: $0.current()) }
        let holder = ThreadSnapshot(fresh)
        pthread_setspecific(threadKey, Unmanaged.passRetained(holder).toOpaque())
        return fresh
    }

    /// Adds one execute-parent kernel.
    public func register(_ kernel: ExecuteParentKernel) { register(kernels: [kernel], rules: []) }

    /// Adds one reduce-parent rule.
    public func register(_ rule: ReduceParentRule) { register(kernels: [], rules: [rule]) }

    /// Adds kernels and rules together: one new snapshot holds all of them, so no context sees half.
    public func register(kernels: [ExecuteParentKernel], rules: [ReduceParentRule]) {
        update(removing: nil, kernels: kernels, rules: rules)
    }

    /// Withdraws every kernel and rule of `owner` from future snapshots.
    /// - Returns: how many kernels and rules were removed.
    @discardableResult
    public func unregister(owner: KernelOwner) -> Int {
        update(removing: { $0.name == owner.name && $0.isBuiltin == owner.isBuiltin }, kernels: [], rules: [])
    }

    /// Atomically replaces everything owned by plugin `name` (any version) with the given entries.
    /// - Parameter owner: the plugin now registered under that name (nil when it is removed); it is
    ///   part of every later snapshot's ``KernelSnapshot/plugins`` fingerprint.
    /// - Returns: how many kernels and rules were removed.
    @discardableResult
    public func replace(
        pluginNamed name: String, kernels: [ExecuteParentKernel], rules: [ReduceParentRule],
        owner: KernelOwner? = nil, compressorHooks: [CompressorHook] = [], encodings: [String] = [],
        storages: [EncodingStorage] = []
    ) -> Int {
        update(
            removing: { !$0.isBuiltin && $0.name == name }, kernels: kernels, rules: rules,
            plugin: (name, owner, compressorHooks, encodings, storages))
    }

    @discardableResult
    private func update(
        removing: ((KernelOwner) -> Bool)?, kernels: [ExecuteParentKernel],
        rules: [ReduceParentRule],
        plugin: (String, KernelOwner?, [CompressorHook], [String], [EncodingStorage])? = nil
    ) -> Int {
        state.withLock { s in
            if let (name, owner, hooks, encodings, storages) = plugin {
                s.storages[name] = owner == nil || storages.isEmpty ? nil : storages
                s.plugins[name] = owner
                s.hooks[name] = owner == nil || hooks.isEmpty ? nil : hooks
                s.encodings[name] = owner == nil || encodings.isEmpty ? nil : encodings
            }
            var removed = 0
            if let removing {
                removed = Self.remove(from: &s.kernels, removing) + Self.remove(from: &s.rules, removing)
            }
            Self.add(kernels, to: &s.kernels)
            Self.add(rules, to: &s.rules)
            s.generation += 1
            s.built = nil
            publishedGeneration.store(s.generation, ordering: .releasing)
            return removed
        }
    }

    /// The snapshot of everything `s` holds: flat kernel and rule tables as wide as the encodings
    /// interned now, plugins in name order with their hooks, encoding owners and storages.
    private static func build(_ s: State) -> KernelSnapshot {
        let width = EncodingID.internedCount
        return KernelSnapshot(
            generation: s.generation, width: width, executeParent: table(s.kernels, width: width),
            reduceParent: table(s.rules, width: width), plugins: s.plugins.values.sorted { $0.name < $1.name },
            compressorHooks: s.hooks.sorted { $0.key < $1.key }.flatMap(\.value),
            encodingOwners: Dictionary(
                s.encodings.flatMap { name, list in
                    list.compactMap { e in s.plugins[name].map { (EncodingID(e).index, $0) } }
                }, uniquingKeysWith: { a, _ in a }),
            storages: Dictionary(
                s.storages.sorted { $0.key < $1.key }.flatMap(\.value).map { ($0.encoding.name, $0) },
                uniquingKeysWith: { a, _ in a }))
    }

    /// Removes the entries whose owner `removing` picks, and returns how many it removed.
    private static func remove<T: ParentKeyed>(from map: inout [Key: [T]], _ removing: (KernelOwner) -> Bool) -> Int {
        var removed = 0
        // Only the keys holding an entry to remove are rewritten: the others keep their storage.
        let touched = map.compactMap { k, list in list.contains { removing($0.owner) } ? k : nil }
        for k in touched {
            guard let list = map[k] else { continue }
            let kept = list.filter { !removing($0.owner) }
            removed += list.count - kept.count
            map[k] = kept.isEmpty ? nil : kept
        }
        return removed
    }

    /// Appends `entries` to their keys' lists.
    private static func add<T: ParentKeyed>(_ entries: [T], to map: inout [Key: [T]]) {
        for e in entries { map[Key(parent: e.parent.index, child: e.child.index), default: []].append(e) }
    }

    /// The flat table of a snapshot, indexed by `parent * width + child`.
    private static func table<T: ParentKeyed>(_ map: [Key: [T]], width: Int) -> [[T]] {
        var out = [[T]](repeating: [], count: width * width)
        // Plugins first, then built-ins; a stable partition keeps registration order in each group.
        for (k, list) in map {
            // A list of one kind (most keys: built-ins only) is already in order and is shared as it is.
            let plugins = list.count(where: { !$0.owner.isBuiltin })
            out[k.parent * width + k.child] =
                plugins == 0 || plugins == list.count
                ? list : list.filter { !$0.owner.isBuiltin } + list.filter(\.owner.isBuiltin)
        }
        return out
    }
}

/// One thread's private reference to the registry's current snapshot.
private final class ThreadSnapshot {
    var snapshot: KernelSnapshot
    init(_ snapshot: KernelSnapshot) { self.snapshot = snapshot }
}
