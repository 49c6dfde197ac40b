/// Lazy take: the child's elements at the given integer indices; a null index gives a null element.
public final class TakeArray: ArrayNode {
    public static let id = EncodingID("eddy.take")
    /// The array the elements are taken from.
    public let child: any ArrayNode
    /// Integer positions into ``child``, one per element; a null index gives null, one out of range an error.
    public let indices: any ArrayNode
    public let dtype: DType

    /// - Throws: unless indices are integers.
    public init(_ child: any ArrayNode, indices: any ArrayNode) throws {
        guard indices.dtype.isInteger else {
            throw EddyError(.typeMismatch, "take indices must be integers, got \(indices.dtype)")
        }
        self.child = child
        self.indices = indices
        self.dtype = child.dtype.with(child.dtype.nullability | indices.dtype.nullability)
    }

    public var encoding: EncodingID { Self.id }
    public var count: Int { indices.count }
    public var children: [any ArrayNode] { [child, indices] }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try TakeArray(children[0], indices: children[1])
    }

    public func reduce() throws -> (any ArrayNode)? {
        if let c = child as? ConstantArray, case .allValid? = (indices as? PrimitiveArray)?.validity {
            // Still bounds-checked: an index past the end is an error even over a constant.
            if let p = indices as? PrimitiveArray, let bad = p.int128Values().first(where: { $0 < 0 || $0 >= c.count })
            {
                throw EddyError(.outOfBounds, "take index \(bad) is out of bounds for length \(c.count)")
            }
            return ConstantArray(c.scalar.with(dtype.nullability), count: count)
        }
        return nil
    }

    /// Reference path: decodes both children and copies the chosen elements one at a time.
    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard indices.isCanonical else { return .executeChild(1, .canonical) }
        guard child.isCanonical else { return .executeChild(0, .canonical) }
        var b = ArrayBuilder(dtype: dtype, capacity: count)
        for k in 0..<count { b.append(try scalar(at: k)) }
        return .done(try b.finish())
    }

    public func scalar(at index: Int) throws -> Scalar {
        let i = try indices.scalar(at: index)
        if i.isNull { return .null(dtype) }
        guard let p = i.int64Value, p >= 0, p < child.count else {
            throw EddyError(
                .outOfBounds, "take index \(i) at position \(index) is out of bounds for length \(child.count)")
        }
        return try child.scalar(at: Int(p)).with(dtype.nullability)
    }
}
