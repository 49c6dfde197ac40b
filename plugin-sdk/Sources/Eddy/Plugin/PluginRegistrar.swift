import Synchronization

/// Collects what a plugin registers. The host hands one to ``EddyPlugin/register(into:)``, checks
/// what was collected against the plugin's declaration and commits all of it atomically, or none.
///
/// Write kernels with the typed forms (``compare(on:name:_:)``, ``aggregate(_:on:name:_:)``, …): they
/// find the operand, the operator and the constant, and keep the result contract. The general form
/// ``register(_:parent:child:_:)`` takes any (parent, child) key.
public final class PluginRegistrar: Sendable {
    /// The plugin everything registered here belongs to.
    public let owner: KernelOwner
    /// True while the host only asks what the plugin provides (its manifest): nothing registered
    /// in this run is ever executed.
    public let isDeclaring: Bool

    private struct State {
        var kernels: [ExecuteParentKernel] = []
        var rules: [ReduceParentRule] = []
        var compressorHooks: [CompressorHook] = []
        var encodings: [String] = []
        var storages: [EncodingStorage] = []
        var failure: String?
        /// Set when the plugin's registration returned: later calls are refused.
        var sealed = false
        var lateCalls = 0
    }
    private let state = Mutex(State())

    @_spi(Host)
    public init(owner: KernelOwner, declaring: Bool = false) {
        self.owner = owner
        self.isDeclaring = declaring
    }

    /// Registers an execute-parent kernel for the key (`parent`, `child`): the general form under
    /// the typed ones. The function gets the parent node, the child node, the child's slot among the
    /// parent's children, and the context; it returns the parent's result or nil to decline.
    public func register(
        _ name: String, parent: EncodingID, child: EncodingID,
        _ function: @escaping ExecuteParentFunction
    ) {
        let kernel = ExecuteParentKernel(name, owner: owner, parent: parent, child: child, function)
        state.withLock { s in s.sealed ? s.lateCalls += 1 : s.kernels.append(kernel) }
    }

    /// Registers a reduce-parent rule: rewrites a parent from a child's metadata alone, reading no data.
    public func registerRule(
        _ name: String, parent: EncodingID, child: EncodingID,
        _ function: @escaping ReduceParentFunction
    ) {
        let rule = ReduceParentRule(name, owner: owner, parent: parent, child: child, function)
        state.withLock { s in s.sealed ? s.lateCalls += 1 : s.rules.append(rule) }
    }

    /// Registers a compressor hook for storage (``CompressorHook/Purpose/storage``): it may propose the
    /// plugin's encoding for columns it applies to when a file is written, never for a column a query
    /// reads once. `compress` gets a canonical column and a function that compresses a child array with
    /// the full compressor; it returns an equivalent encoded array, or nil. The same as
    /// ``registerCompressor(_:purpose:applies:compress:)`` with `purpose: .storage`.
    public func registerCompressor(
        _ name: String, applies: @escaping @Sendable (DType) -> Bool,
        compress:
            @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    ) {
        registerCompressor(name, purpose: .storage, applies: applies, compress: compress)
    }

    /// Registers a compressor hook that may propose the plugin's encoding for columns it applies to,
    /// asked only when the compressor compresses for `purpose`. Say ``CompressorHook/Purpose/query``
    /// only when the plugin's kernels on the encoding make one query faster including the hook's own
    /// pass over the column (see <doc:PluginEncodingsAndStorage>). `compress` gets a canonical column
    /// and a function that compresses a child array with the full compressor; it returns an equivalent
    /// encoded array, or nil.
    public func registerCompressor(
        _ name: String, purpose: CompressorHook.Purpose, applies: @escaping @Sendable (DType) -> Bool,
        compress:
            @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    ) {
        let hook = CompressorHook(name: name, owner: owner, purpose: purpose, applies: applies, compress: compress)
        state.withLock { s in s.sealed ? s.lateCalls += 1 : s.compressorHooks.append(hook) }
    }

    /// Declares an encoding the plugin introduces. Names starting with `eddy.` belong to the engine.
    public func encoding<E: Encoding>(_ encoding: E.Type) {
        let name = E.id.name
        state.withLock { s in s.sealed ? s.lateCalls += 1 : s.encodings.append(name) }
    }

    /// Registers how the plugin's encoding `E` is stored in `.eddy` files: `write` splits a node into
    /// metadata, buffers and children; `read` rebuilds it from what a file holds (an untrusted source:
    /// check every count and offset taken from the metadata, and throw rather than trap).
    ///
    /// `metadataVersion` is what `write` produces; `readableVersions` (default: that version only) is
    /// what `read` accepts. A file written with a version outside it fails naming both plugin versions.
    /// Declare the encoding with ``encoding(_:)`` too.
    public func storage<E: Encoding>(
        for encoding: E.Type, metadataVersion: UInt32, readableVersions: ClosedRange<UInt32>? = nil,
        write: @escaping @Sendable (E) throws -> StoredParts,
        read: @escaping @Sendable (StoredNode) throws -> E
    ) {
        let storage = EncodingStorage(
            encoding: E.id, metadataVersion: metadataVersion,
            readableVersions: readableVersions ?? metadataVersion...metadataVersion, owner: owner,
            write: { node in
                guard let e = node as? E else {
                    throw EddyError(.invalidArgument, "storage for \(E.id) asked to write a \(node.encoding) node")
                }
                return try write(e)
            },
            read: { try read($0) })
        state.withLock { s in s.sealed ? s.lateCalls += 1 : s.storages.append(storage) }
    }

    /// Records a registration failure (the entry function does this with a thrown error's text).
    public func fail(_ message: String) {
        state.withLock { if $0.failure == nil { $0.failure = message } }
    }

    /// Ends registration: what was registered until now is all there is. Calls made later (from a
    /// thread the plugin started, say) are not recorded, only counted (``lateCalls``). The host seals
    /// the registrar when the plugin's entry function returns, before it checks and publishes.
    @_spi(Host) public func seal() { state.withLock { $0.sealed = true } }

    /// Registration calls made after ``seal()``.
    @_spi(Host) public var lateCalls: Int { state.withLock { $0.lateCalls } }

    /// Everything registered, read at once (one consistent view).
    @_spi(Host) public var contents:
        (kernels: [ExecuteParentKernel], rules: [ReduceParentRule], compressorHooks: [CompressorHook])
    {
        state.withLock { ($0.kernels, $0.rules, $0.compressorHooks) }
    }

    /// The kernels registered so far.
    @_spi(Host) public var kernels: [ExecuteParentKernel] { state.withLock { $0.kernels } }
    /// The reduce-parent rules registered so far.
    @_spi(Host) public var rules: [ReduceParentRule] { state.withLock { $0.rules } }
    /// The compressor hooks registered so far.
    @_spi(Host) public var compressorHooks: [CompressorHook] { state.withLock { $0.compressorHooks } }
    /// The encoding storages registered so far.
    @_spi(Host) public var storages: [EncodingStorage] { state.withLock { $0.storages } }
    /// The encodings declared so far, by name.
    @_spi(Host) public var encodings: [String] { state.withLock { $0.encodings } }
    /// The first failure recorded, if any.
    @_spi(Host) public var failure: String? { state.withLock { $0.failure } }

    /// Everything registered, one sorted line each (`kernel PARENT|CHILD|NAME`, `rule …`,
    /// `encoding NAME`, `compressor NAME`): what the host compares between the declaring and the
    /// registering run, and lists as the plugin's manifest.
    @_spi(Host) public var declarations: [String] {
        state.withLock { s in
            (s.kernels.map(\.declaration) + s.rules.map(\.declaration)
                + s.encodings.map { "encoding \($0)" }
                + s.compressorHooks.map { "compressor \($0.name)" }
                + s.storages.map { "storage \($0.encoding.name) v\($0.metadataVersion)" }).sorted()
        }
    }

    /// Problems with what was registered that make the plugin unloadable: empty or duplicate names,
    /// and encodings in the engine's namespace. Empty when there are none.
    @_spi(Host) public var problems: [String] {
        var out: [String] = []
        let lines = declarations
        var seen = Set<String>()
        for line in lines where !seen.insert(line).inserted { out.append("registered twice: \(line)") }
        state.withLock { s in
            let keyed: [any ParentKeyed] = s.kernels + s.rules
            for k in keyed where k.name.isEmpty {
                out.append("a \(type(of: k).kind) for (\(k.parent.name), \(k.child.name)) has no name")
            }
            for h in s.compressorHooks where h.name.isEmpty { out.append("a compressor hook has no name") }
            for e in s.encodings where e.hasPrefix("eddy.") || e.isEmpty {
                out.append("encoding '\(e)' is in the engine's namespace (eddy.*); name it after the plugin")
            }
            for st in s.storages where !s.encodings.contains(st.encoding.name) {
                out.append(
                    "storage for '\(st.encoding.name)' but the plugin does not declare that encoding (registrar.encoding(_:))"
                )
            }
            if !storageVersionsConsistent(s.storages) {
                out.append("a storage's readable versions do not include the version it writes")
            }
            // Names are shown in listings, traces and errors, and key the conformance kit's counts.
            let names = keyed.map(\.name) + s.compressorHooks.map(\.name) + s.encodings
            for name in names where !Self.isPrintable(name) {
                out.append(
                    "name '\(name.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : String($0) }.joined())' "
                        + "has control or format characters, or more than 200 characters")
            }
            var kernelNames = Set<String>()
            for name in keyed.map(\.name) where !kernelNames.insert(name).inserted {
                out.append("the name '\(name)' is used for more than one kernel or rule; give each its own")
            }
        }
        return out
    }

    private func storageVersionsConsistent(_ storages: [EncodingStorage]) -> Bool {
        storages.allSatisfy { $0.readableVersions.contains($0.metadataVersion) }
    }

    /// At most 200 characters, none a control or format character (no newlines, escapes or bidi overrides).
    static func isPrintable(_ name: String) -> Bool {
        name.count <= 200
            && name.unicodeScalars.allSatisfy {
                $0.properties.generalCategory != .control && $0.properties.generalCategory != .format
            }
    }
}
