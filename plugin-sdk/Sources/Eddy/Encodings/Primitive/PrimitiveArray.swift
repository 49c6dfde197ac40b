/// Canonical array of fixed-width numbers: a buffer of values and a validity.
public final class PrimitiveArray: ArrayNode {
    public static let id = EncodingID("eddy.primitive")
    public let ptype: PType
    public let buffer: Buffer
    public let validity: Validity
    public let count: Int
    public let dtype: DType

    /// - Parameters:
    ///   - buffer: `count * ptype.byteWidth` bytes; null slots may hold any value.
    public init(ptype: PType, buffer: Buffer, count: Int, validity: Validity = .allValid,
                nullability: Nullability = .nonNullable) {
        precondition(buffer.byteCount >= count * ptype.byteWidth, "buffer too small for \(count) \(ptype) values")
        precondition(nullability == .nullable || { if case .allValid = validity { true } else { false } }(),
                     "a non-nullable primitive array must be all valid")
        self.ptype = ptype
        self.buffer = buffer
        self.count = count
        self.validity = validity
        self.dtype = .primitive(ptype, nullability)
    }

    /// An array holding a copy of `values`.
    public convenience init<T: NativeType>(_ values: [T]) {
        self.init(ptype: T.ptype, buffer: Buffer(copying: values), count: values.count)
    }

    /// A nullable array of the given optional values (nulls store zero).
    public convenience init<T: NativeType>(_ values: [T?]) {
        self.init(ptype: T.ptype, buffer: Buffer(copying: values.map { $0 ?? T.zero }), count: values.count,
                  validity: .bitmap(Bitmap(values.map { $0 != nil })), nullability: .nullable)
    }

    /// An array of `values` built in place by `body`.
    public static func build<T: NativeType>(
        _ type: T.Type, count: Int, validity: Validity = .allValid, nullability: Nullability = .nonNullable,
        _ body: (UnsafeMutableBufferPointer<T>) throws -> Void
    ) rethrows -> PrimitiveArray {
        PrimitiveArray(ptype: T.ptype, buffer: try Buffer.build(count: count, of: T.self, body), count: count,
                       validity: validity, nullability: nullability)
    }

    public var encoding: EncodingID { Self.id }
    public var isCanonical: Bool { true }
    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep { .done(self) }
    public var metadataDescription: String { nullCountDescription }

    var nullCountDescription: String {
        if case .bitmap = validity { return "nulls=\(validity.nullCount(count))" }
        if case .allInvalid = validity { return "nulls=\(count)" }
        return ""
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        guard validity.isValid(index) else { return .null(dtype) }
        return Scalar(ptype.visit(ValueAt(buffer: buffer, index: index)), dtype)
    }

    private struct ValueAt: PTypeVisitor {
        let buffer: Buffer
        let index: Int
        func visit<T: NativeType>(_ type: T.Type) -> ScalarValue {
            buffer.withUnsafeBufferPointer(as: T.self) { $0[index].scalarValue }
        }
    }

    /// Calls `body` with the values as `T` (which must match the ptype).
    @inlinable
    public func withValues<T: NativeType, R>(_ type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) rethrows -> R {
        precondition(T.ptype == ptype, "asked for \(T.ptype) values of a \(ptype) array")
        return try buffer.withUnsafeBufferPointer(as: T.self) { try body(UnsafeBufferPointer(rebasing: $0[0..<count])) }
    }

    /// The values as a Swift array (nulls hold whatever the buffer holds).
    public func values<T: NativeType>(_ type: T.Type) -> [T] { withValues(T.self) { Array($0) } }

    /// The values converted to `Int64` (integer ptypes only; `UInt64` beyond `Int64.max` traps).
    public func int64Values() -> [Int64] {
        ptype.visitInteger(ToInt64(array: self))
    }

    private struct ToInt64: IntegerPTypeVisitor {
        let array: PrimitiveArray
        func visit<T: NativeInteger>(_ type: T.Type) -> [Int64] { array.withValues(T.self) { $0.map { Int64($0) } } }
    }

    /// A zero-copy view of `length` values starting at `start`.
    public func slice(_ start: Int, _ length: Int) -> PrimitiveArray {
        let w = ptype.byteWidth
        return PrimitiveArray(ptype: ptype, buffer: buffer.slice(byteOffset: start * w, byteCount: length * w),
                              count: length, validity: validity.slice(start, length), nullability: dtype.nullability)
    }

    /// This array with another validity and nullability (values shared).
    public func with(validity: Validity, nullability: Nullability) -> PrimitiveArray {
        PrimitiveArray(ptype: ptype, buffer: buffer, count: count, validity: validity, nullability: nullability)
    }
}
