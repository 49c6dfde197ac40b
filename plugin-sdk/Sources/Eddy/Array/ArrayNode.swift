/// One node of an array tree: an encoding with a logical dtype, a length, and child arrays.
///
/// Canonical encodings hold plain data; compressed encodings describe it; lazy encodings describe
/// work still to do. Execution moves a tree toward canonical form one step at a time (see
/// ``ExecutionCtx``). Nodes are immutable and may be shared between threads.
public protocol ArrayNode: AnyObject, Sendable, CustomStringConvertible {
    /// The encoding of this node.
    var encoding: EncodingID { get }
    /// The logical type of the values.
    var dtype: DType { get }
    /// The number of elements.
    var count: Int { get }
    /// Whether this node is canonical (plain data; execution of it is finished).
    var isCanonical: Bool { get }
    /// The child arrays, in slot order.
    var children: [any ArrayNode] { get }
    /// A copy of this node with its child slots replaced (same count, same order).
    ///
    /// - Throws: when a child does not fit its slot.
    func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode
    /// A metadata-only rewrite of this node into a simpler equivalent, or nil.
    func reduce() throws -> (any ArrayNode)?
    /// One step toward canonical form: either the result, or a request to execute a child first.
    func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep
    /// The element at `index`, for tests and display; slow by design.
    func scalar(at index: Int) throws -> Scalar
    /// One line of node-specific metadata for tree displays (widths, references, operators).
    var metadataDescription: String { get }
}

extension ArrayNode {
    public var isCanonical: Bool { false }
    public var children: [any ArrayNode] { [] }
    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        guard children.isEmpty else {
            throw EddyError(.invalidArgument, "\(encoding) has no child slots")
        }
        return self
    }
    public func reduce() throws -> (any ArrayNode)? { nil }
    public var metadataDescription: String { "" }

    /// A copy of this node with child slot `slot` replaced.
    public func replacingChild(at slot: Int, with child: any ArrayNode) throws -> any ArrayNode {
        var c = children
        c[slot] = child
        return try replacingChildren(c)
    }

    /// Whether this node is canonical or constant (the form most functions accept as input).
    public var isColumnar: Bool { isCanonical || encoding == ConstantArray.id }

    /// Every element, in order (slow; for tests and display).
    public func scalars() throws -> [Scalar] { try (0..<count).map { try scalar(at: $0) } }

    public var description: String { treeDescription() }

    /// The encoding tree as indented text: one line per node with its encoding, dtype, length and metadata.
    public func treeDescription(indent: String = "") -> String {
        var line = "\(indent)\(encoding)(\(dtype), len=\(count))"
        let meta = metadataDescription
        if !meta.isEmpty { line += " " + meta }
        for child in children {
            line += "\n" + child.treeDescription(indent: indent + "  ")
        }
        return line
    }

    @usableFromInline
    func checkIndex(_ index: Int) throws {
        guard index >= 0 && index < count else {
            throw EddyError(.outOfBounds, "index \(index) out of bounds for \(encoding) of length \(count)")
        }
    }
}

/// What one execution step of a node produced.
public enum ExecuteStep: Sendable {
    /// The node's equivalent, one step closer to canonical form.
    case done(any ArrayNode)
    /// The node needs child slot `slot` executed to `target` before it can proceed.
    case executeChild(Int, ExecutionTarget)
}

/// How far the executor takes a child before handing it back to its parent.
public enum ExecutionTarget: Sendable, Hashable {
    /// Canonical encodings only.
    case canonical
    /// Canonical or constant.
    case columnar

    @inlinable
    func isSatisfied(by array: any ArrayNode) -> Bool {
        switch self {
        case .canonical: array.isCanonical
        case .columnar: array.isColumnar
        }
    }
}
