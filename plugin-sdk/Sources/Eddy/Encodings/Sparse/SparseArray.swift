/// Compressed array that is `fill` everywhere except at sorted positions `indices`, which hold `values`.
public final class SparseArray: ArrayNode {
    public static let id = EncodingID("eddy.sparse")
    /// The value at every position not in ``indices``; of the values' type, nullability aside.
    public let fill: Scalar
    /// Non-nullable integer positions in `0..<count`, strictly increasing, one per element of ``values``.
    public let indices: any ArrayNode
    /// The values at ``indices``, in the same order.
    public let values: any ArrayNode
    public let count: Int
    public let dtype: DType

    /// - Throws: unless indices are non-nullable integers, values match the fill's type, and (for
    ///   canonical indices) positions are strictly increasing and inside `count`.
    public init(fill: Scalar, indices: any ArrayNode, values: any ArrayNode, count: Int) throws {
        guard indices.dtype.isInteger, !indices.dtype.isNullable else {
            throw EddyError(.typeMismatch, "sparse indices must be non-nullable integers, got \(indices.dtype)")
        }
        guard indices.count == values.count else {
            throw EddyError(.invalidArgument, "sparse has \(indices.count) indices but \(values.count) values")
        }
        guard fill.dtype.equalsIgnoringNullability(values.dtype) else {
            throw EddyError(.typeMismatch, "sparse fill \(fill.dtype) differs from values \(values.dtype)")
        }
        if let p = indices as? PrimitiveArray {
            let list = p.uncheckedInt64Values()
            for k in list.indices where list[k] < 0 || list[k] >= count || (k > 0 && list[k] <= list[k - 1]) {
                throw EddyError(.invalidArgument, "sparse index \(list[k]) at \(k) is out of order or out of bounds")
            }
        }
        self.fill = fill
        self.indices = indices
        self.values = values
        self.count = count
        self.dtype = values.dtype.with(values.dtype.nullability | fill.dtype.nullability)
    }

    public var encoding: EncodingID { Self.id }
    public var children: [any ArrayNode] { [indices, values] }
    public var metadataDescription: String { "fill=\(fill) patches=\(indices.count)" }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try SparseArray(fill: fill, indices: children[0], values: children[1], count: count)
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard let idx = indices as? PrimitiveArray else { return .executeChild(0, .canonical) }
        guard values.isCanonical else { return .executeChild(1, .canonical) }
        // Append the fill after the values, then take: positions pick their value, all others the fill.
        let fillCanonical = try Canonical.repeating(fill.with(dtype.nullability), count: 1)
        let pool = try Canonical.concat([values.withDType(dtype), fillCanonical], dtype: dtype)
        let positions = idx.uncheckedInt64Values()
        let fillIndex = UInt32(values.count)
        let picks = PrimitiveArray.build(UInt32.self, count: count) { out in
            out.initialize(repeating: fillIndex)
            for (k, p) in positions.enumerated() { out[Int(p)] = UInt32(k) }
        }
        return .done(try Canonical.take(pool, indices: picks).withDType(dtype))
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        var lo = 0
        var hi = indices.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let p = try indices.scalar(at: mid).int64Value!
            if p == index { return try values.scalar(at: mid).with(dtype.nullability) }
            if p < index { lo = mid + 1 } else { hi = mid }
        }
        return fill.with(dtype.nullability)
    }
}
