/// The binary interface between a host and a plugin `.so`.
///
/// A plugin is a dynamic library that links the SDK's one shared library (`libEddy.so`, never a
/// static copy) and exports two C symbols:
///
/// - ``PluginABI/manifestSymbol`` — `() -> UnsafePointer<CChar>`: the manifest as text. It is
///   produced by code baked into the plugin when it was built (``PluginManifest/text``), so it reads
///   the same whatever SDK the host has, and the host can check the ABI before any Swift type crosses.
/// - ``PluginABI/registerSymbol`` — `(UnsafeRawPointer) -> UnsafeMutablePointer<CChar>?`: receives the
///   host's ``PluginRegistrar`` and returns nil, or an error message the host deallocates (both sides
///   share the one Swift runtime, so Swift's allocator is used on both).
///
/// Write both with ``exportManifest(_:)`` and ``exportRegistration(_:_:)``:
/// ```swift
/// @_cdecl("eddy_plugin_manifest_v1")
/// public func eddyPluginManifest() -> UnsafePointer<CChar> { exportManifest(MyPlugin.self) }
///
/// @_cdecl("eddy_plugin_register_v1")
/// public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
///     exportRegistration(MyPlugin.self, host)
/// }
/// ```
public enum PluginABI {
    /// The ABI version of the SDK a plugin was compiled against (inlined into the plugin).
    @_alwaysEmitIntoClient
    public static var sdkABIVersion: Int { 1 }

    /// The first line of every manifest.
    @_alwaysEmitIntoClient
    public static var magic: String { "EDDY-PLUGIN" }

    @_alwaysEmitIntoClient
    public static var manifestSymbol: String { "eddy_plugin_manifest_v1" }

    @_alwaysEmitIntoClient
    public static var registerSymbol: String { "eddy_plugin_register_v1" }

    /// The compiler a plugin was built with (inlined, so it is the plugin's compiler, not the host's).
    @_alwaysEmitIntoClient
    public static var compilerVersion: String {
        #if compiler(>=6.4)
        "6.4+"
        #elseif compiler(>=6.3)
        "6.3"
        #elseif compiler(>=6.2)
        "6.2"
        #else
        "older than 6.2"
        #endif
    }

    /// The ABI version of the SDK the host runs (not inlined: it comes from the loaded library).
    public static let hostABIVersion = 1
}

/// What a plugin declares about itself before it runs: identity and the kernels it will register.
@frozen
public struct PluginManifest: Sendable {
    public var name: String
    public var version: String
    /// `(parent encoding, child encoding, kernel name)` of every kernel.
    public var kernels: [(parent: String, child: String, name: String)]
    /// `(parent encoding, child encoding, rule name)` of every reduce-parent rule.
    public var rules: [(parent: String, child: String, name: String)]
    /// Encodings the plugin introduces.
    public var encodings: [String]
    /// Names of compressor hooks the plugin registers.
    public var compressorHooks: [String]

    @_alwaysEmitIntoClient
    public init(name: String, version: String, kernels: [(parent: String, child: String, name: String)] = [],
                rules: [(parent: String, child: String, name: String)] = [], encodings: [String] = [],
                compressorHooks: [String] = []) {
        self.name = name
        self.version = version
        self.kernels = kernels
        self.rules = rules
        self.encodings = encodings
        self.compressorHooks = compressorHooks
    }

    /// The manifest as the text the host reads: `key=value` lines, the magic first.
    @_alwaysEmitIntoClient
    public var text: String {
        var lines = [
            PluginABI.magic, "abi=\(PluginABI.sdkABIVersion)", "compiler=\(PluginABI.compilerVersion)",
            "name=\(name)", "version=\(version)",
        ]
        for k in kernels { lines.append("kernel=\(k.parent)|\(k.child)|\(k.name)") }
        for r in rules { lines.append("rule=\(r.parent)|\(r.child)|\(r.name)") }
        for e in encodings { lines.append("encoding=\(e)") }
        for h in compressorHooks { lines.append("compressor=\(h)") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A kernel plugin: its manifest and how it registers.
public protocol EddyPlugin {
    static var manifest: PluginManifest { get }
    /// Adds the plugin's kernels, rules and compressor hooks. Throwing leaves the host unchanged.
    static func register(into registrar: PluginRegistrar) throws
}

/// Collects what a plugin registers; the host checks it against the manifest and commits all of it
/// atomically, or none of it.
public final class PluginRegistrar: @unchecked Sendable {
    // Used by one thread: the host creates it, hands it to one plugin's registration, then reads it.
    public let owner: KernelOwner
    public private(set) var kernels: [ExecuteParentKernel] = []
    public private(set) var rules: [ReduceParentRule] = []
    public private(set) var compressorHooks: [CompressorHook] = []

    public init(owner: KernelOwner) { self.owner = owner }

    /// Registers an execute-parent kernel under the plugin's ownership.
    public func register(_ name: String, parent: EncodingID, child: EncodingID,
                         _ function: @escaping ExecuteParentFunction) {
        kernels.append(ExecuteParentKernel(name, owner: owner, parent: parent, child: child, function))
    }

    /// Registers a reduce-parent rule under the plugin's ownership.
    public func registerRule(_ name: String, parent: EncodingID, child: EncodingID,
                             _ function: @escaping ReduceParentFunction) {
        rules.append(ReduceParentRule(name, owner: owner, parent: parent, child: child, function))
    }

    /// Registers a compressor hook that may propose the plugin's encoding for columns it applies to.
    public func registerCompressor(_ name: String, applies: @escaping @Sendable (DType) -> Bool,
                                   compress: @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?) {
        compressorHooks.append(CompressorHook(name: name, owner: owner, applies: applies, compress: compress))
    }
}

/// The body of a plugin's manifest symbol: the manifest text, kept alive for the life of the process.
@_alwaysEmitIntoClient
public func exportManifest<P: EddyPlugin>(_ plugin: P.Type) -> UnsafePointer<CChar> {
    // One small allocation per call, never freed: the host calls this once per load.
    let text = P.manifest.text
    let bytes = Array(text.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(p)
}

/// The body of a plugin's registration symbol: runs `register(into:)` with the host's registrar and
/// reports a thrown error as text.
@_alwaysEmitIntoClient
public func exportRegistration<P: EddyPlugin>(_ plugin: P.Type, _ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    let registrar = Unmanaged<PluginRegistrar>.fromOpaque(host).takeUnretainedValue()
    do {
        try P.register(into: registrar)
        return nil
    } catch {
        let text = Array("\(error)".utf8CString)
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: text.count)
        p.initialize(from: text, count: text.count)
        return p
    }
}
