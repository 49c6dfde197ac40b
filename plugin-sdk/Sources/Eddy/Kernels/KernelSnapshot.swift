/// A point-in-time, immutable view of a registry: flat tables indexed by `parent * width + child`.
/// Host API: the table layout is not compiled into plugins.
@_spi(Host)
public final class KernelSnapshot: Sendable {
    /// Increases by one with every registration; a context records the generation it ran with.
    public let generation: Int
    /// Number of interned encodings the tables cover; ids at or past it have no entries.
    let width: Int
    let executeParent: [[ExecuteParentKernel]]
    let reduceParent: [[ReduceParentRule]]
    /// Which parents have any entry at all, so a node without kernels skips its child loop.
    let parentHasKernels: [Bool]
    let parentHasRules: [Bool]
    /// Per key: bit 0 set when it has kernels, bit 1 when it has rules. Checked before touching the
    /// lists, so that a miss costs one byte load and no reference counting.
    let occupied: [UInt8]

    /// The plugins registered when this snapshot was published: the fingerprint of the plugin set a
    /// context runs with (name, version, content hash), sorted by name.
    public let plugins: [KernelOwner]
    /// The compressor hooks of those plugins: encode with these, so that the encodings a context
    /// meets come from the same plugin versions as its kernels.
    public let compressorHooks: [CompressorHook]
    /// The plugin that declared each plugin encoding, by encoding index: its errors are attributed there.
    let encodingOwners: [Int: KernelOwner]
    /// The plugins' encoding storages, by encoding name (the engine's own are ``EncodingStorage/builtin``).
    let pluginStorages: [String: EncodingStorage]

    /// How encoding `name` is stored in files: the engine's own, or the loaded plugin's that declared it.
    public func storage(for name: String) -> EncodingStorage? {
        EncodingStorage.builtin[name] ?? pluginStorages[name]
    }

    /// The storages the loaded plugins registered for their encodings, sorted by encoding name: what a
    /// tool that checks a plugin (the conformance kit) writes and reads back.
    public var pluginEncodingStorages: [EncodingStorage] {
        pluginStorages.values.sorted { $0.encoding.name < $1.encoding.name }
    }

    /// The child encodings of the plugins' kernels and rules (what their kernels expect to meet).
    public let pluginKernelChildren: Set<EncodingID>

    /// The plugin that declared `encoding`, nil for the engine's own and undeclared ones.
    func owner(ofEncoding encoding: EncodingID) -> KernelOwner? { encodingOwners[encoding.index] }

    init(
        generation: Int, width: Int, executeParent: [[ExecuteParentKernel]], reduceParent: [[ReduceParentRule]],
        plugins: [KernelOwner] = [], compressorHooks: [CompressorHook] = [], encodingOwners: [Int: KernelOwner] = [:],
        storages: [String: EncodingStorage] = [:]
    ) {
        self.pluginStorages = storages
        self.encodingOwners = encodingOwners
        self.generation = generation
        self.plugins = plugins
        self.compressorHooks = compressorHooks
        self.width = width
        self.executeParent = executeParent
        self.reduceParent = reduceParent
        var hasK = [Bool](repeating: false, count: width)
        var hasR = [Bool](repeating: false, count: width)
        var occ = [UInt8](repeating: 0, count: width * width)
        var children: Set<EncodingID> = []
        for p in 0..<width {
            for c in 0..<width {
                let kernels = executeParent[p * width + c]
                let rules = reduceParent[p * width + c]
                if kernels.isEmpty && rules.isEmpty { continue }
                if kernels.contains(where: { !$0.owner.isBuiltin }) || rules.contains(where: { !$0.owner.isBuiltin }) {
                    children.insert(EncodingID(index: c))
                }
                if !kernels.isEmpty {
                    hasK[p] = true
                    occ[p * width + c] |= 1
                }
                if !rules.isEmpty {
                    hasR[p] = true
                    occ[p * width + c] |= 2
                }
            }
        }
        parentHasKernels = hasK
        parentHasRules = hasR
        occupied = occ
        pluginKernelChildren = children
    }

    /// A second object with the same tables (shares their storage), for a thread's private use.
    init(sharing other: KernelSnapshot) {
        generation = other.generation
        plugins = other.plugins
        compressorHooks = other.compressorHooks
        encodingOwners = other.encodingOwners
        pluginStorages = other.pluginStorages
        pluginKernelChildren = other.pluginKernelChildren
        width = other.width
        executeParent = other.executeParent
        reduceParent = other.reduceParent
        parentHasKernels = other.parentHasKernels
        parentHasRules = other.parentHasRules
        occupied = other.occupied
    }

    /// The execute-parent kernels for a key, in the order they are tried.
    public func kernels(parent: EncodingID, child: EncodingID) -> [ExecuteParentKernel] {
        let p = parent.index
        let c = child.index
        guard p < width, c < width, occupied[p &* width &+ c] & 1 != 0 else { return [] }
        return executeParent[p &* width &+ c]
    }

    /// The reduce-parent rules for a key, in the order they are tried.
    public func rules(parent: EncodingID, child: EncodingID) -> [ReduceParentRule] {
        let p = parent.index
        let c = child.index
        guard p < width, c < width, occupied[p &* width &+ c] & 2 != 0 else { return [] }
        return reduceParent[p &* width &+ c]
    }

    func hasKernels(parent: EncodingID) -> Bool { parent.index < width && parentHasKernels[parent.index] }
    func hasRules(parent: EncodingID) -> Bool { parent.index < width && parentHasRules[parent.index] }

    /// The plugin set as one line: `name@version#hash8, …` (or `builtin only`).
    public var fingerprint: String {
        plugins.isEmpty
            ? "builtin only"
            : plugins.map {
                "\($0.name)@\($0.version)" + ($0.contentHash.isEmpty ? "" : "#" + String($0.contentHash.prefix(8)))
            }
            .joined(separator: ", ")
    }

    /// Every key with at least one kernel or rule, for listings.
    public var entries:
        [(parent: EncodingID, child: EncodingID, kernels: [ExecuteParentKernel], rules: [ReduceParentRule])]
    {
        var out: [(parent: EncodingID, child: EncodingID, kernels: [ExecuteParentKernel], rules: [ReduceParentRule])] =
            []
        for p in 0..<width {
            for c in 0..<width {
                let k = executeParent[p * width + c]
                let r = reduceParent[p * width + c]
                if !k.isEmpty || !r.isEmpty {
                    out.append((EncodingID(index: p), EncodingID(index: c), k, r))
                }
            }
        }
        return out
    }
}
