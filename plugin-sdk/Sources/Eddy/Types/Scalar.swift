/// The value part of a scalar. Signed integers widen to `Int64`, unsigned to `UInt64`, floats to `Double`.
public enum ScalarValue: Sendable, Hashable, CustomStringConvertible {
    /// No value.
    case null
    /// A boolean.
    case bool(Bool)
    /// A signed integer of any signed ptype, widened to `Int64`.
    case int(Int64)
    /// An unsigned integer of any unsigned ptype, widened to `UInt64`.
    case uint(UInt64)
    /// A float of either float ptype, widened to `Double`.
    case float(Double)
    /// Text.
    case utf8(String)
    /// Bytes.
    case binary([UInt8])
    /// The field values of a struct, in field order.
    case `struct`([ScalarValue])

    /// Whether this is ``null``.
    public var isNull: Bool { if case .null = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let v): String(v)
        case .uint(let v): String(v)
        case .float(let v): String(v)
        case .utf8(let s): "'" + s + "'"
        case .binary(let b): "0x" + b.map { String($0, radix: 16) }.joined()
        case .struct(let f): "{" + f.map(\.description).joined(separator: ", ") + "}"
        }
    }

    /// Whether two values are the same value: NaN is identical to NaN, and -0.0 is not identical to 0.0
    /// (they compare equal, but 1 / x tells them apart). For comparing results and for encoders.
    public func isIdentical(to other: ScalarValue) -> Bool {
        // -0.0 and 0.0 compare equal but are different values (1 / x tells them apart).
        if case .float(let a) = self, case .float(let b) = other {
            return (a == b && a.sign == b.sign) || (a.isNaN && b.isNaN)
        }
        if case .struct(let a) = self, case .struct(let b) = other {
            return a.count == b.count && zip(a, b).allSatisfy { $0.isIdentical(to: $1) }
        }
        return self == other
    }
}

/// A single typed value, possibly null.
public struct Scalar: Sendable, Hashable, CustomStringConvertible {
    /// The type of the value; the initializers make it nullable when the value is null.
    public var dtype: DType
    /// The value, which should fit ``dtype`` (see ``ScalarValue/fits(_:)``); not checked.
    public var value: ScalarValue

    /// Creates a scalar; a null value makes the dtype nullable.
    public init(_ value: ScalarValue, _ dtype: DType) {
        self.value = value
        self.dtype = value.isNull ? dtype.asNullable : dtype
    }

    /// A null of `dtype`, made nullable.
    public static func null(_ dtype: DType) -> Scalar { Scalar(.null, dtype.asNullable) }
    /// A bool scalar.
    public static func bool(_ v: Bool, _ n: Nullability = .nonNullable) -> Scalar { Scalar(.bool(v), .bool(n)) }
    /// An `i64` scalar.
    public static func int64(_ v: Int64, _ n: Nullability = .nonNullable) -> Scalar {
        Scalar(.int(v), .primitive(.int64, n))
    }
    /// A utf8 scalar.
    public static func utf8(_ v: String, _ n: Nullability = .nonNullable) -> Scalar { Scalar(.utf8(v), .utf8(n)) }

    /// A scalar of a native value.
    public static func native<T: NativeType>(_ v: T, _ n: Nullability = .nonNullable) -> Scalar {
        Scalar(v.scalarValue, .primitive(T.ptype, n))
    }

    /// Whether the value is null.
    public var isNull: Bool { value.isNull }

    /// This scalar with its dtype's nullability changed.
    public func with(_ nullability: Nullability) -> Scalar { Scalar(value, dtype.with(nullability)) }

    /// The value as a native number of type `T`, if it is exactly representable.
    public func native<T: NativeType>(as: T.Type = T.self) -> T? { T(exactly: value) }

    /// The value as a `Bool`, if it is one.
    public var boolValue: Bool? { if case .bool(let b) = value { return b } else { return nil } }

    /// The value as an `Int64` (integers only), if it fits.
    public var int64Value: Int64? {
        switch value {
        case .int(let v): v
        case .uint(let v): Int64(exactly: v)
        default: nil
        }
    }

    public var description: String { value.description }
}

extension ScalarValue {
    /// Whether this value can be a value of `dtype`: the right kind (bool, signed or unsigned integer,
    /// float, text, binary, struct) and, for integers, in range of the ptype. Null fits a nullable dtype.
    public func fits(_ dtype: DType) -> Bool {
        switch (self, dtype) {
        case (.null, _): return dtype.isNullable
        case (.bool, .bool): return true
        case (.int(let v), .primitive(let p, _)):
            guard p.isInteger else { return false }
            return p.visitIntegerUnchecked(FitsInteger(value: .int(v)))
        case (.uint(let v), .primitive(let p, _)):
            guard p.isInteger else { return false }
            return p.visitIntegerUnchecked(FitsInteger(value: .uint(v)))
        case (.float, .primitive(let p, _)): return p.isFloat
        case (.utf8, .utf8): return true
        case (.binary, .binary): return true
        case (.struct(let fields), .struct(let types, _)):
            return fields.count == types.count && zip(fields, types).allSatisfy { $0.fits($1.dtype) }
        default: return false
        }
    }
}

private struct FitsInteger: IntegerPTypeVisitor {
    let value: ScalarValue
    func visit<T: NativeInteger>(_ type: T.Type) -> Bool {
        switch value {
        case .int(let v): return T(exactly: v) != nil
        case .uint(let v): return T(exactly: v) != nil
        default: return false
        }
    }
}
