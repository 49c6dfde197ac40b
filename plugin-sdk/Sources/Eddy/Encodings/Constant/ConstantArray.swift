/// Compressed array of one value repeated `count` times.
public final class ConstantArray: ArrayNode {
    public static let id = EncodingID("eddy.constant")
    /// The value of every element; its dtype is the array's dtype.
    public let scalar: Scalar
    public let count: Int

    /// An array of `count` copies of `scalar`.
    public init(_ scalar: Scalar, count: Int) {
        self.scalar = scalar
        self.count = count
    }

    public var encoding: EncodingID { Self.id }
    public var dtype: DType { scalar.dtype }
    public var metadataDescription: String { "value=\(scalar)" }
    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        .done(try Canonical.repeating(scalar, count: count))
    }
    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        return scalar
    }
}
