/// Compressed array of integer codes into an array of distinct values: element `i` is `values[codes[i]]`.
///
/// A null code gives a null element. The dtype is the values' dtype, nullable if codes or values are.
public final class DictArray: ArrayNode {
    public static let id = EncodingID("eddy.dict")
    /// Integer codes, one per element: a valid code indexes into ``values``, a null code gives a null element.
    public let codes: any ArrayNode
    /// The distinct values the codes index into; a code out of range is an error when read.
    public let values: any ArrayNode
    public let dtype: DType

    /// - Throws: when the codes are not integers.
    public init(codes: any ArrayNode, values: any ArrayNode) throws {
        guard codes.dtype.isInteger else {
            throw EddyError(.typeMismatch, "dictionary codes must be integers, got \(codes.dtype)")
        }
        self.codes = codes
        self.values = values
        self.dtype = values.dtype.with(values.dtype.nullability | codes.dtype.nullability)
    }

    public var encoding: EncodingID { Self.id }
    public var count: Int { codes.count }
    public var children: [any ArrayNode] { [codes, values] }
    public var metadataDescription: String { "distinct=\(values.count)" }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try DictArray(codes: children[0], values: children[1])
    }

    public func reduce() throws -> (any ArrayNode)? {
        // One value (or constant codes) means the whole array is one value.
        if let c = codes as? ConstantArray {
            if c.scalar.isNull { return ConstantArray(.null(dtype), count: count) }
            guard let code = c.scalar.int64Value, code >= 0, code < values.count else { return nil }
            return ConstantArray(try values.scalar(at: Int(code)).with(dtype.nullability), count: count)
        }
        return nil
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard let c = codes as? PrimitiveArray else { return .executeChild(0, .canonical) }
        guard values.isCanonical else { return .executeChild(1, .canonical) }
        // Per-value booleans (a `like` or compare run on the values): the word-at-a-time lookup.
        if let lut = values as? BoolArray, let bits = DictArray.mapCodes(c, lut, dtype) { return .done(bits) }
        return .done(try Canonical.take(values, indices: c))
    }

    public func scalar(at index: Int) throws -> Scalar {
        let code = try codes.scalar(at: index)
        guard let c = code.int64Value else { return .null(dtype) }
        guard c >= 0 && c < values.count else {
            throw EddyError(.outOfBounds, "dictionary code \(c) out of bounds for \(values.count) values")
        }
        return try values.scalar(at: Int(c)).with(dtype.nullability)
    }
}
