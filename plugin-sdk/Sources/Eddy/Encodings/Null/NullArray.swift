/// Canonical array of the `null` type: every element is null.
public final class NullArray: ArrayNode {
    public static let id = EncodingID("eddy.null")
    public let count: Int

    /// An array of `count` nulls.
    public init(count: Int) { self.count = count }

    public var encoding: EncodingID { Self.id }
    public var dtype: DType { .null }
    public var isCanonical: Bool { true }
    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep { .done(self) }
    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        return .null(.null)
    }
}
