/// Canonical array of the `null` type: every element is null.
public final class NullArray: ArrayNode {
    public static let id = EncodingID("eddy.null")
    public let count: Int

    /// An array of `count` nulls (a negative count is taken as 0: there is nothing to check it against).
    public init(count: Int) { self.count = Swift.max(count, 0) }

    public var encoding: EncodingID { Self.id }
    public var dtype: DType { .null }
    public var isCanonical: Bool { true }
    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep { .done(self) }
    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        return .null(.null)
    }
}
