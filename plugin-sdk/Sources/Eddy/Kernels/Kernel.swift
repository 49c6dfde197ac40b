/// Who registered a kernel or rule: the engine itself or a plugin.
public struct KernelOwner: Hashable, Sendable, CustomStringConvertible {
    /// `builtin` for the engine; otherwise the plugin's name.
    public let name: String
    /// The plugin's version, empty for built-ins.
    public let version: String
    /// Whether this is the engine itself rather than a plugin.
    public let isBuiltin: Bool
    /// The SHA-256 of the plugin file, hex, when the host knows it (empty otherwise).
    public let contentHash: String

    /// An owner; ``builtin`` and ``plugin(_:version:contentHash:)`` make the usual ones.
    public init(name: String, version: String, isBuiltin: Bool, contentHash: String = "") {
        self.name = name
        self.version = version
        self.isBuiltin = isBuiltin
        self.contentHash = contentHash
    }

    /// The engine's own kernels.
    public static let builtin = KernelOwner(name: "builtin", version: "", isBuiltin: true)

    /// A plugin's kernels.
    public static func plugin(_ name: String, version: String, contentHash: String = "") -> KernelOwner {
        KernelOwner(name: name, version: version, isBuiltin: false, contentHash: contentHash)
    }

    public var description: String { isBuiltin ? "builtin" : "plugin \(name)@\(version)" }
}

/// Executes a parent node directly on the encoded form of one of its children.
///
/// Returns nil to decline, so that the next kernel for the key is tried. A result must have the
/// parent's exact length and dtype: the executor checks and blames the kernel's owner.
public typealias ExecuteParentFunction =
    @Sendable (
        _ parent: any ArrayNode, _ child: any ArrayNode, _ childIndex: Int, _ ctx: ExecutionCtx
    ) throws -> (any ArrayNode)?

/// Rewrites a parent node from a child's metadata alone (no data is read). Nil declines.
public typealias ReduceParentFunction =
    @Sendable (
        _ parent: any ArrayNode, _ child: any ArrayNode, _ childIndex: Int
    ) throws -> (any ArrayNode)?

/// An execute-parent kernel, keyed by the (parent, child) encodings it applies to.
public struct ExecuteParentKernel: Sendable, CustomStringConvertible {
    /// The kernel's name, non-empty and unique for its key within a plugin; traces and errors name it.
    public let name: String
    /// Who registered the kernel; blamed when it fails or breaks its contract.
    public let owner: KernelOwner
    /// The encoding of the parent node the kernel executes.
    public let parent: EncodingID
    /// The encoding of the child the kernel reads in its encoded form.
    public let child: EncodingID
    /// The kernel itself: the parent's result, or nil to decline (see ``ExecuteParentFunction``).
    public let function: ExecuteParentFunction
    /// Marked on the thread while a plugin's kernel runs, for crash reports.
    let callSite: PluginCallSite?

    /// A kernel for the key (`parent`, `child`). Plugins register kernels with
    /// ``PluginRegistrar/register(_:parent:child:_:)``, which sets the owner.
    public init(
        _ name: String, owner: KernelOwner = .builtin, parent: EncodingID, child: EncodingID,
        _ function: @escaping ExecuteParentFunction
    ) {
        self.name = name
        self.owner = owner
        self.parent = parent
        self.child = child
        self.function = function
        self.callSite = PluginCallSite.of(Self.kind, name, owner)
    }

    public var description: String { "\(name) (\(owner))" }
}

/// A reduce-parent rule, keyed by the (parent, child) encodings it applies to.
public struct ReduceParentRule: Sendable, CustomStringConvertible {
    /// The rule's name, non-empty and unique for its key within a plugin; traces and errors name it.
    public let name: String
    /// Who registered the rule; blamed when it fails or breaks its contract.
    public let owner: KernelOwner
    /// The encoding of the parent node the rule rewrites.
    public let parent: EncodingID
    /// The encoding of the child whose metadata the rule reads.
    public let child: EncodingID
    /// The rule itself: the rewritten parent, or nil to decline (see ``ReduceParentFunction``).
    public let function: ReduceParentFunction
    /// Marked on the thread while a plugin's rule runs, for crash reports.
    let callSite: PluginCallSite?

    /// A rule for the key (`parent`, `child`). Plugins register rules with
    /// ``PluginRegistrar/registerRule(_:parent:child:_:)``, which sets the owner.
    public init(
        _ name: String, owner: KernelOwner = .builtin, parent: EncodingID, child: EncodingID,
        _ function: @escaping ReduceParentFunction
    ) {
        self.name = name
        self.owner = owner
        self.parent = parent
        self.child = child
        self.function = function
        self.callSite = PluginCallSite.of(Self.kind, name, owner)
    }

    public var description: String { "\(name) (\(owner))" }
}

/// What the registry, the registrar and its checks need of a kernel and a rule alike: a name, an
/// owner and the (parent, child) key. Code over both is written once against this; the two stay
/// separate public structs because their names and layouts are part of the plugin ABI.
protocol ParentKeyed: Sendable {
    /// `kernel` or `rule`, as listings and crash reports say.
    static var kind: String { get }
    var name: String { get }
    var owner: KernelOwner { get }
    var parent: EncodingID { get }
    var child: EncodingID { get }
}

extension ParentKeyed {
    /// `KIND PARENT|CHILD|NAME`: one line of a plugin's manifest.
    var declaration: String { "\(Self.kind) \(parent.name)|\(child.name)|\(name)" }
}

extension ExecuteParentKernel: ParentKeyed {
    static var kind: String { "kernel" }
}

extension ReduceParentRule: ParentKeyed {
    static var kind: String { "rule" }
}
