/// Canonical boolean array: a bitmap of values and a validity.
public final class BoolArray: ArrayNode {
    public static let id = EncodingID("eddy.bool")
    /// The values, one bit per element; null elements may hold either bit.
    public let bits: Bitmap
    /// Which elements are valid; `.allValid` unless the dtype is nullable.
    public let validity: Validity
    public let dtype: DType

    /// - Parameters:
    ///   - bits: the values; nulls may hold any bit.
    ///   - validity: must be `.allValid` unless `nullability` is `.nullable`.
    ///   - nullability: the nullability of the array's dtype.
    /// - Throws: ``EddyError/Code/invalidArgument`` for a validity bitmap of another length, or nulls in
    ///   a non-nullable array.
    public convenience init(bits: Bitmap, validity: Validity = .allValid, nullability: Nullability = .nonNullable)
        throws
    {
        if nullability == .nonNullable, !validity.isAllValid {
            throw EddyError(.invalidArgument, "a non-nullable bool array must be all valid (validity .allValid)")
        }
        if case .bitmap(let v) = validity, v.count != bits.count {
            throw EddyError(.invalidArgument, "validity has \(v.count) bits for \(bits.count) values")
        }
        self.init(uncheckedBits: bits, validity: validity, nullability: nullability)
    }

    /// The checks of ``init(bits:validity:nullability:)`` hold by construction (the engine's own use).
    init(uncheckedBits bits: Bitmap, validity: Validity = .allValid, nullability: Nullability = .nonNullable) {
        self.bits = bits
        self.validity = validity
        self.dtype = .bool(nullability)
    }

    /// A bool array of the given values.
    public convenience init(_ values: [Bool]) {
        self.init(uncheckedBits: Bitmap(values))
    }

    /// A nullable bool array of the given optional values.
    public convenience init(_ values: [Bool?]) {
        self.init(
            uncheckedBits: Bitmap(values.map { $0 ?? false }), validity: .bitmap(Bitmap(values.map { $0 != nil })),
            nullability: .nullable)
    }

    public var encoding: EncodingID { Self.id }
    public var count: Int { bits.count }
    public var isCanonical: Bool { true }
    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep { .done(self) }
    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        return validity.isValid(index) ? Scalar(.bool(bits[index]), dtype) : .null(dtype)
    }

    /// Set bits where the value is true and valid: the rows a filter keeps.
    public var trueAndValid: Bitmap {
        switch validity {
        case .allValid: bits
        case .allInvalid: Bitmap(repeating: false, count: count)
        case .bitmap(let v): bits & v
        }
    }

    /// A zero-copy view of `length` elements starting at `start` (traps when out of range).
    /// - Throws: ``EddyError/Code/outOfBounds`` when the range is not within the array.
    public func slice(_ start: Int, _ length: Int) throws -> BoolArray {
        try requireRange(
            start, length, within: count,
            "rows \(start)..<\(start &+ length) out of bounds for a bool array of \(count)")
        return uncheckedSlice(start, length)
    }

    /// ``slice(_:_:)`` where the engine knows the range is within the array.
    func uncheckedSlice(_ start: Int, _ length: Int) -> BoolArray {
        BoolArray(
            uncheckedBits: bits.uncheckedSlice(start, length), validity: validity.uncheckedSlice(start, length),
            nullability: dtype.nullability)
    }
}
