/// Lazy slice: elements `start ..< start + length` of the child.
public final class SliceArray: ArrayNode {
    public static let id = EncodingID("eddy.slice")
    /// The array being sliced.
    public let child: any ArrayNode
    /// The child index of element 0; `start + count` is at most the child's length.
    public let start: Int
    public let count: Int

    /// - Throws: ``EddyError/Code/outOfBounds`` when the range does not fit the child.
    public init(_ child: any ArrayNode, start: Int, length: Int) throws {
        try requireRange(
            start, length, within: child.count,
            "slice \(start)..<\(start &+ length) out of bounds for length \(child.count)")
        self.child = child
        self.start = start
        self.count = length
    }

    public var encoding: EncodingID { Self.id }
    public var dtype: DType { child.dtype }
    public var children: [any ArrayNode] { [child] }
    public var metadataDescription: String { "\(start)..<\(start + count)" }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try SliceArray(children[0], start: start, length: count)
    }

    public func reduce() throws -> (any ArrayNode)? {
        if start == 0 && count == child.count { return child }
        if let inner = child as? SliceArray {
            return try SliceArray(inner.child, start: inner.start + start, length: count)
        }
        if let c = child as? ConstantArray { return ConstantArray(c.scalar, count: count) }
        // Slicing canonical data is zero-copy: a metadata-only rewrite.
        if child.isCanonical && !(child is StructArray) { return try Canonical.slice(child, start, count) }
        return nil
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard child.isCanonical else { return .executeChild(0, .canonical) }
        return .done(try Canonical.slice(child, start, count))
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        return try child.scalar(at: start + index)
    }
}
