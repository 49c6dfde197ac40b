/// Canonical array of fixed-width numbers: a buffer of values and a validity.
public final class PrimitiveArray: ArrayNode {
    public static let id = EncodingID("eddy.primitive")
    /// The type of the values.
    public let ptype: PType
    /// The values, one `ptype` value per element from the buffer's start; null slots may hold any value.
    public let buffer: Buffer
    /// Which elements are valid; `.allValid` unless the dtype is nullable.
    public let validity: Validity
    public let count: Int
    public let dtype: DType

    /// - Parameters:
    ///   - ptype: the type of the values.
    ///   - buffer: `count * ptype.byteWidth` bytes; null slots may hold any value.
    ///   - count: the number of elements.
    ///   - validity: must be `.allValid` unless `nullability` is `.nullable`.
    ///   - nullability: the nullability of the array's dtype.
    /// - Throws: ``EddyError/Code/invalidArgument`` for a buffer too small, a negative count, a
    ///   validity of another length, or nulls in a non-nullable array.
    public convenience init(
        ptype: PType, buffer: Buffer, count: Int, validity: Validity = .allValid,
        nullability: Nullability = .nonNullable
    ) throws {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: ptype.byteWidth)
        guard count >= 0, !overflow, buffer.byteCount >= bytes else {
            throw EddyError(
                .invalidArgument, "a buffer of \(buffer.byteCount) bytes cannot hold \(count) \(ptype) values")
        }
        if nullability == .nonNullable, !validity.isAllValid {
            throw EddyError(.invalidArgument, "a non-nullable primitive array must be all valid (validity .allValid)")
        }
        if case .bitmap(let v) = validity, v.count != count {
            throw EddyError(.invalidArgument, "validity has \(v.count) bits for \(count) values")
        }
        self.init(uncheckedPType: ptype, buffer: buffer, count: count, validity: validity, nullability: nullability)
    }

    /// The checks of ``init(ptype:buffer:count:validity:nullability:)`` hold by construction.
    init(
        uncheckedPType ptype: PType, buffer: Buffer, count: Int, validity: Validity = .allValid,
        nullability: Nullability = .nonNullable
    ) {
        self.ptype = ptype
        self.buffer = buffer
        self.count = count
        self.validity = validity
        self.dtype = .primitive(ptype, nullability)
    }

    /// An array holding a copy of `values`.
    public convenience init<T: NativeType>(_ values: [T]) {
        self.init(uncheckedPType: T.ptype, buffer: Buffer(copying: values), count: values.count)
    }

    /// A nullable array of the given optional values (nulls store zero).
    public convenience init<T: NativeType>(_ values: [T?]) {
        self.init(
            uncheckedPType: T.ptype, buffer: Buffer(copying: values.map { $0 ?? T.zero }), count: values.count,
            validity: .bitmap(Bitmap(values.map { $0 != nil })), nullability: .nullable)
    }

    /// An array of `values` built in place by `body`.
    public static func build<T: NativeType>(
        _ type: T.Type, count: Int, validity: Validity = .allValid, nullability: Nullability = .nonNullable,
        _ body: (UnsafeMutableBufferPointer<T>) throws -> Void
    ) rethrows -> PrimitiveArray {
        PrimitiveArray(
            uncheckedPType: T.ptype, buffer: try Buffer.build(count: count, of: T.self, body), count: count,
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

    /// Calls `body` with the values as `T`.
    /// - Throws: ``EddyError/Code/typeMismatch`` when `T` is not the array's ptype, or what `body` throws.
    public func withValues<T: NativeType, R>(_ type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) throws -> R {
        guard T.ptype == ptype else {
            throw EddyError(.typeMismatch, "asked for \(T.ptype) values of a \(ptype) array")
        }
        return try withValuesUnchecked(T.self, body)
    }

    /// ``withValues(_:_:)`` where the engine knows the ptype matches.
    @inlinable
    func withValuesUnchecked<T: NativeType, R>(_ type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) rethrows
        -> R
    {
        assert(T.ptype == ptype, "asked for \(T.ptype) values of a \(ptype) array")
        return try buffer.withUnsafeBufferPointer(as: T.self) { try body(UnsafeBufferPointer(rebasing: $0[0..<count])) }
    }

    /// The values as a Swift array (nulls hold whatever the buffer holds).
    public func values<T: NativeType>(_ type: T.Type) throws -> [T] { try withValues(T.self) { Array($0) } }

    /// The values converted to `Int64`.
    /// - Throws: ``EddyError/Code/typeMismatch`` for a float array, ``EddyError/Code/overflow`` for a
    ///   `UInt64` value beyond `Int64.max`.
    public func int64Values() throws -> [Int64] {
        guard ptype.isInteger else { throw EddyError(.typeMismatch, "int64Values of a \(ptype) array") }
        guard let out = ptype.visitIntegerUnchecked(ToInt64Exactly(array: self)) else {
            throw EddyError(.overflow, "a \(ptype) value does not fit a signed 64-bit integer")
        }
        return out
    }

    /// ``int64Values()`` where the engine knows the values are integers that fit.
    func uncheckedInt64Values() -> [Int64] {
        ptype.visitIntegerUnchecked(ToInt64(array: self))
    }

    private struct ToInt64Exactly: IntegerPTypeVisitor {
        let array: PrimitiveArray
        func visit<T: NativeInteger>(_ type: T.Type) -> [Int64]? {
            array.withValuesUnchecked(T.self) { v in
                var out: [Int64] = []
                out.reserveCapacity(v.count)
                for x in v {
                    guard let y = Int64(exactly: x) else { return nil }
                    out.append(y)
                }
                return out
            }
        }
    }

    private struct ToInt64: IntegerPTypeVisitor {
        let array: PrimitiveArray
        func visit<T: NativeInteger>(_ type: T.Type) -> [Int64] {
            array.withValuesUnchecked(T.self) { $0.map { Int64($0) } }
        }
    }

    /// A zero-copy view of `length` values starting at `start`.
    /// - Throws: ``EddyError/Code/outOfBounds`` when the range is not within the array.
    public func slice(_ start: Int, _ length: Int) throws -> PrimitiveArray {
        try requireRange(
            start, length, within: count, "rows \(start)..<\(start &+ length) out of bounds for an array of \(count)")
        return uncheckedSlice(start, length)
    }

    /// ``slice(_:_:)`` where the engine knows the range is within the array.
    func uncheckedSlice(_ start: Int, _ length: Int) -> PrimitiveArray {
        let w = ptype.byteWidth
        return PrimitiveArray(
            uncheckedPType: ptype, buffer: buffer.uncheckedSlice(byteOffset: start * w, byteCount: length * w),
            count: length, validity: validity.uncheckedSlice(start, length), nullability: dtype.nullability)
    }

    /// This array with another validity and nullability (values shared).
    public func with(validity: Validity, nullability: Nullability) -> PrimitiveArray {
        PrimitiveArray(
            uncheckedPType: ptype, buffer: buffer, count: count, validity: validity, nullability: nullability)
    }
}
