/// Canonical array of variable-length strings (`utf8`) or bytes (`binary`): offsets into one byte buffer.
public final class VarBinArray: ArrayNode {
    public static let id = EncodingID("eddy.varbin")
    /// `count + 1` `Int32` offsets into `bytes`; value `i` is `bytes[offsets[i] ..< offsets[i + 1]]`.
    public let offsets: Buffer
    /// The values' bytes, concatenated (UTF-8 text for a `utf8` dtype); ``offsets`` delimit them.
    public let bytes: Buffer
    /// Which values are valid; the byte range of a null value is ignored.
    public let validity: Validity
    public let count: Int
    public let dtype: DType

    /// An array over existing buffers, checked: `dtype` is `utf8` or `binary`, `offsets` holds `count + 1`
    /// `Int32` offsets that start at 0 or more, never decrease and end within `bytes`, and the validity has
    /// `count` bits (or no nulls at all when `dtype` is non-nullable).
    /// - Throws: ``EddyError/Code/invalidArgument`` naming the first check that failed.
    public convenience init(dtype: DType, offsets: Buffer, bytes: Buffer, count: Int, validity: Validity = .allValid)
        throws
    {
        guard dtype.isVarBin else {
            throw EddyError(.invalidArgument, "varbin needs a utf8 or binary dtype, got \(dtype)")
        }
        let (slots, o1) = count.addingReportingOverflow(1)
        let (need, o2) = slots.multipliedReportingOverflow(by: 4)
        guard count >= 0, !o1, !o2, offsets.byteCount >= need else {
            throw EddyError(
                .invalidArgument, "an offsets buffer of \(offsets.byteCount) bytes cannot hold \(count) + 1 offsets")
        }
        let o = offsets.typed(Int32.self)
        var previous: Int32 = 0
        for i in 0..<slots {
            guard o[i] >= previous || i == 0, o[i] >= 0, Int(o[i]) <= bytes.byteCount else {
                throw EddyError(
                    .invalidArgument,
                    "offset \(i) is \(o[i]): offsets must not decrease and must lie within \(bytes.byteCount) bytes")
            }
            previous = o[i]
        }
        if dtype.nullability == .nonNullable, !validity.isAllValid {
            throw EddyError(.invalidArgument, "a non-nullable varbin array must be all valid (validity .allValid)")
        }
        if case .bitmap(let v) = validity, v.count != count {
            throw EddyError(.invalidArgument, "validity has \(v.count) bits for \(count) values")
        }
        self.init(uncheckedDType: dtype, offsets: offsets, bytes: bytes, count: count, validity: validity)
    }

    /// The checks of ``init(dtype:offsets:bytes:count:validity:)`` hold by construction (the engine's own use).
    init(uncheckedDType dtype: DType, offsets: Buffer, bytes: Buffer, count: Int, validity: Validity = .allValid) {
        self.dtype = dtype
        self.offsets = offsets
        self.bytes = bytes
        self.count = count
        self.validity = validity
    }

    /// A utf8 array of the given strings.
    public convenience init(_ strings: [String]) {
        self.init(strings.map { Optional($0) }, nullability: .nonNullable)
    }

    /// A utf8 array of the given optional strings.
    public convenience init(_ strings: [String?], nullability: Nullability = .nullable) {
        var b = VarBinBuilder(dtype: .utf8(nullability))
        for s in strings {
            if let s { b.append(s) } else { b.appendNull() }
        }
        let built = b.finish()
        self.init(
            uncheckedDType: built.dtype, offsets: built.offsets, bytes: built.bytes, count: built.count,
            validity: built.validity)
    }

    public var encoding: EncodingID { Self.id }
    public var isCanonical: Bool { true }
    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep { .done(self) }

    /// Calls `body` with the bytes of value `index` (ignores validity).
    @inlinable
    public func withBytes<R>(at index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let o = offsets.typed(Int32.self)
        let start = Int(o[index])
        let end = Int(o[index + 1])
        return try withExtendedLifetime((offsets, bytes)) {
            try body(UnsafeRawBufferPointer(start: bytes.baseAddress + start, count: end - start))
        }
    }

    /// Value `index` as a string (ignores validity).
    public func string(at index: Int) -> String {
        withBytes(at: index) { String(decoding: $0, as: UTF8.self) }
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        guard validity.isValid(index) else { return .null(dtype) }
        if dtype.isUTF8 { return Scalar(.utf8(string(at: index)), dtype) }
        return Scalar(.binary(withBytes(at: index) { Array($0) }), dtype)
    }

    /// A zero-copy view of `length` values starting at `start`.
    /// - Throws: ``EddyError/Code/outOfBounds`` when the range is not within the array.
    public func slice(_ start: Int, _ length: Int) throws -> VarBinArray {
        try requireRange(
            start, length, within: count, "rows \(start)..<\(start &+ length) out of bounds for an array of \(count)")
        return uncheckedSlice(start, length)
    }

    /// ``slice(_:_:)`` where the engine knows the range is within the array.
    func uncheckedSlice(_ start: Int, _ length: Int) -> VarBinArray {
        VarBinArray(
            uncheckedDType: dtype, offsets: offsets.uncheckedSlice(byteOffset: start * 4, byteCount: (length + 1) * 4),
            bytes: bytes, count: length, validity: validity.uncheckedSlice(start, length))
    }
}

/// Builds a ``VarBinArray`` value by value.
public struct VarBinBuilder {
    /// The dtype of the array being built: `utf8` or `binary`, nullable if nulls are appended.
    public let dtype: DType
    var offsets: [Int32] = [0]
    var bytes: [UInt8] = []
    var validity = BitmapBuilder()
    var hasNull = false

    /// An empty builder for `dtype` (`utf8` or `binary`), with room reserved for `capacity` values.
    public init(dtype: DType, capacity: Int = 0) {
        self.dtype = dtype
        offsets.reserveCapacity(capacity + 1)
    }

    /// Appends the UTF-8 bytes of `s` as one valid value.
    public mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { append(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Appends a copy of `b` as one valid value; traps once the bytes exceed 2 GiB (`Int32` offsets).
    public mutating func append(bytes b: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: b)
        precondition(bytes.count <= Int32.max, "varbin chunk over 2 GiB; use a chunked array")
        offsets.append(Int32(bytes.count))
        validity.append(true)
    }

    /// Appends a null value (an empty byte range); traps unless the dtype is nullable.
    public mutating func appendNull() {
        precondition(dtype.isNullable, "null appended to a non-nullable varbin")
        offsets.append(Int32(bytes.count))
        validity.append(false)
        hasNull = true
    }

    /// The array of the appended values; its validity is `.allValid` when no null was appended.
    public mutating func finish() -> VarBinArray {
        VarBinArray(
            uncheckedDType: dtype, offsets: Buffer(copying: offsets), bytes: Buffer(copying: bytes),
            count: offsets.count - 1, validity: hasNull ? .bitmap(validity.finish()) : .allValid)
    }
}
