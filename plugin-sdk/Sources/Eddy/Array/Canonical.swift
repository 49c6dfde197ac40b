/// Typed operations on canonical arrays: the fast paths that decoding and kernels share.
public enum Canonical {
    /// A canonical array of `count` copies of `scalar`.
    public static func repeating(_ scalar: Scalar, count: Int) throws -> any ArrayNode {
        guard count >= 0 else { throw EddyError(.invalidArgument, "a negative count (\(count))") }
        let dtype = scalar.dtype
        if scalar.isNull {
            switch dtype {
            case .null: return NullArray(count: count)
            case .bool:
                return BoolArray(
                    uncheckedBits: Bitmap(repeating: false, count: count), validity: .allInvalid,
                    nullability: .nullable)
            case .primitive(let p, _):
                return PrimitiveArray(
                    uncheckedPType: p,
                    buffer: Buffer(
                        uncheckedStorage: BufferStorage(byteCount: count * p.byteWidth),
                        byteOffset: 0, byteCount: count * p.byteWidth),
                    count: count, validity: .allInvalid, nullability: .nullable)
            case .utf8, .binary:
                return VarBinArray(
                    uncheckedDType: dtype, offsets: Buffer(copying: [Int32](repeating: 0, count: count + 1)),
                    bytes: .empty, count: count, validity: .allInvalid)
            case .struct(let fields, _):
                let children = try fields.map { try repeating(.null($0.dtype), count: count) }
                return try StructArray(
                    names: fields.map(\.name), fields: children, count: count,
                    validity: .allInvalid, nullability: .nullable)
            }
        }
        switch (dtype, scalar.value) {
        case (.bool(let n), .bool(let b)):
            return BoolArray(uncheckedBits: Bitmap(repeating: b, count: count), nullability: n)
        case (.primitive(let p, let n), _):
            return try p.visitThrowing(RepeatPrimitive(value: scalar.value, count: count, nullability: n))
        case (.utf8, .utf8), (.binary, .binary):
            let bytes: [UInt8] =
                if case .utf8(let s) = scalar.value { Array(s.utf8) } else if case .binary(let b) = scalar.value {
                    b
                } else { [] }
            let w = bytes.count
            precondition(w * count <= Int(Int32.max), "repeated value over 2 GiB")
            let offsets = Buffer.build(count: count + 1, of: Int32.self) { o in
                for i in 0...count { o[i] = Int32(i * w) }
            }
            let data = Buffer.build(count: w * count, of: UInt8.self) { o in
                for i in 0..<count { for k in 0..<w { o[i * w + k] = bytes[k] } }
            }
            return VarBinArray(uncheckedDType: dtype, offsets: offsets, bytes: data, count: count)
        case (.struct(let fields, let n), .struct(let values)) where values.count == fields.count:
            let children = try zip(fields, values).map { try repeating(Scalar($1, $0.dtype), count: count) }
            return try StructArray(names: fields.map(\.name), fields: children, count: count, nullability: n)
        default:
            throw EddyError(.typeMismatch, "scalar \(scalar.value) does not match its dtype \(dtype)")
        }
    }

    private struct RepeatPrimitive: PTypeVisitor {
        let value: ScalarValue
        let count: Int
        let nullability: Nullability
        func visit<T: NativeType>(_ type: T.Type) -> Result<any ArrayNode, EddyError> {
            guard let v = T(exactly: value) else {
                return .failure(EddyError(.typeMismatch, "value \(value) does not fit \(T.ptype)"))
            }
            return .success(
                PrimitiveArray.build(T.self, count: count, nullability: nullability) {
                    $0.initialize(repeating: v)
                })
        }
    }

    /// A value of `dtype` that stands in a row no one reads (zero, false, empty).
    static func placeholder(_ dtype: DType) -> ScalarValue {
        switch dtype {
        case .null: .null
        case .bool: .bool(false)
        case .primitive(let p, _): p.isFloat ? .float(0) : p.isUnsignedInteger ? .uint(0) : .int(0)
        case .utf8: .utf8("")
        case .binary: .binary([])
        case .struct(let fields, _): .struct(fields.map { placeholder($0.dtype) })
        }
    }

    /// A zero-copy slice of a canonical array.
    public static func slice(_ array: any ArrayNode, _ start: Int, _ length: Int) throws -> any ArrayNode {
        try requireRange(
            start, length, within: array.count,
            "slice \(start)..<\(start &+ length) out of bounds for length \(array.count)")
        switch array {
        case let a as PrimitiveArray: return a.uncheckedSlice(start, length)
        case let a as BoolArray: return a.uncheckedSlice(start, length)
        case let a as VarBinArray: return a.uncheckedSlice(start, length)
        case is NullArray: return NullArray(count: length)
        case let a as StructArray:
            return try StructArray(
                names: a.names, fields: a.fields.map { try SliceArray($0, start: start, length: length) },
                count: length, validity: a.validity.uncheckedSlice(start, length),
                nullability: a.dtype.nullability)
        default:
            return try SliceArray(array, start: start, length: length)
        }
    }
}

extension Canonical {
    /// The validity of a canonical or constant array (a null array, or a null constant, is all invalid).
    public static func validity(of array: any ArrayNode) -> Validity {
        switch array {
        case let p as PrimitiveArray: p.validity
        case let b as BoolArray: b.validity
        case let v as VarBinArray: v.validity
        case let s as StructArray: s.validity
        case let c as ConstantArray: c.scalar.isNull ? .allInvalid : .allValid
        case is NullArray: .allInvalid
        default: .allValid
        }
    }
}

extension ScalarValue {
    /// An integer's two's-complement bit pattern as `UInt64`; zero for anything else.
    @usableFromInline
    var asUInt64Bits: UInt64 {
        switch self {
        case .int(let v): UInt64(bitPattern: v)
        case .uint(let v): v
        default: 0
        }
    }
}
