/// Builds a canonical array of any dtype one ``Scalar`` at a time.
///
/// Slow by design: it is the reference path (decode-then-compute) that kernels are checked against,
/// and the fallback for dtypes that have no typed fast path.
public struct ArrayBuilder {
    /// The dtype of the array being built; every appended value must fit it.
    public let dtype: DType
    private var scalars: [ScalarValue] = []

    /// An empty builder for `dtype`, with room reserved for `capacity` values.
    public init(dtype: DType, capacity: Int = 0) {
        self.dtype = dtype
        scalars.reserveCapacity(capacity)
    }

    /// Appends one value; it is checked against the dtype only by ``finish()``.
    public mutating func append(_ value: ScalarValue) { scalars.append(value) }
    /// Appends the value of `scalar`; its dtype is ignored, and the value is checked only by ``finish()``.
    public mutating func append(_ scalar: Scalar) { scalars.append(scalar.value) }

    /// The canonical array of the appended values.
    ///
    /// - Throws: when a value does not match the dtype (a null in a non-nullable type, a wrong kind).
    public func finish() throws -> any ArrayNode { try ArrayBuilder.canonical(dtype, scalars) }

    static func canonical(_ dtype: DType, _ values: [ScalarValue]) throws -> any ArrayNode {
        let n = values.count
        let hasNull = values.contains { $0.isNull }
        if hasNull && !dtype.isNullable {
            throw EddyError(.typeMismatch, "null value in non-nullable \(dtype)")
        }
        let validity: Validity = hasNull ? .bitmap(Bitmap(values.map { !$0.isNull })) : .allValid
        switch dtype {
        case .null:
            return NullArray(count: n)
        case .bool(let nl):
            var bits = [Bool]()
            bits.reserveCapacity(n)
            for v in values {
                switch v {
                case .bool(let b): bits.append(b)
                case .null: bits.append(false)
                default: throw EddyError(.typeMismatch, "value \(v) in a bool array")
                }
            }
            return BoolArray(uncheckedBits: Bitmap(bits), validity: validity, nullability: nl)
        case .primitive(let p, let nl):
            return try p.visitThrowing(PrimitiveFromScalars(values: values, validity: validity, nullability: nl))
        case .utf8, .binary:
            var b = VarBinBuilder(dtype: dtype, capacity: n)
            for v in values {
                switch v {
                case .utf8(let s) where dtype.isUTF8: b.append(s)
                case .binary(let bytes) where dtype.isBinary: bytes.withUnsafeBytes { b.append(bytes: $0) }
                case .null: b.appendNull()
                default: throw EddyError(.typeMismatch, "value \(v) in a \(dtype) array")
                }
            }
            return b.finish()
        case .struct(let fields, let nl):
            var columns = fields.map { _ in [ScalarValue]() }
            for v in values {
                switch v {
                case .struct(let f) where f.count == fields.count:
                    for k in f.indices { columns[k].append(f[k]) }
                case .null:
                    // A null struct row: each field holds a placeholder it never shows (null where the field
                    // is nullable), so the field types stay as declared.
                    for k in fields.indices {
                        columns[k].append(fields[k].dtype.isNullable ? .null : Canonical.placeholder(fields[k].dtype))
                    }
                default: throw EddyError(.typeMismatch, "value \(v) in a \(dtype) array")
                }
            }
            let children = try zip(fields, columns).map { f, col in try canonical(f.dtype, col) }
            return try StructArray(
                names: fields.map(\.name), fields: children, count: n, validity: validity,
                nullability: nl)
        }
    }

    private struct PrimitiveFromScalars: PTypeVisitor {
        let values: [ScalarValue]
        let validity: Validity
        let nullability: Nullability
        func visit<T: NativeType>(_ type: T.Type) -> Result<any ArrayNode, EddyError> {
            var bad: ScalarValue?
            let arr = PrimitiveArray.build(T.self, count: values.count, validity: validity, nullability: nullability) {
                out in
                for (i, v) in values.enumerated() {
                    if v.isNull {
                        out[i] = T.zero
                    } else if let x = T(exactly: v) {
                        out[i] = x
                    } else {
                        out[i] = T.zero
                        bad = v
                    }
                }
            }
            if let bad { return .failure(EddyError(.typeMismatch, "value \(bad) does not fit \(T.ptype)")) }
            return .success(arr)
        }
    }
}

extension PType {
    /// Visits with a visitor that may fail, rethrowing its error.
    @inlinable
    public func visitThrowing<V: PTypeVisitor, S>(_ visitor: V) throws -> S where V.Result == Result<S, EddyError> {
        try visit(visitor).get()
    }
}
