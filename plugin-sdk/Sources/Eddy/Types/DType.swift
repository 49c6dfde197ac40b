/// Whether a logical type admits nulls.
public enum Nullability: Sendable, Hashable {
    /// Every value is valid.
    case nonNullable
    /// Values may be null.
    case nullable

    /// `.nullable` if either side is.
    public static func | (lhs: Nullability, rhs: Nullability) -> Nullability {
        lhs == .nullable || rhs == .nullable ? .nullable : .nonNullable
    }
}

/// One named field of a struct type.
public struct StructField: Sendable, Hashable {
    /// The field's name.
    public var name: String
    /// The field's type.
    public var dtype: DType
    /// A field named `name` of type `dtype`.
    public init(_ name: String, _ dtype: DType) {
        self.name = name
        self.dtype = dtype
    }
}

/// The logical type of an array: what its values mean, independent of how they are encoded.
public enum DType: Sendable, Hashable, CustomStringConvertible {
    /// The type whose every value is null (``NullArray``); always nullable.
    case null
    /// Booleans.
    case bool(Nullability)
    /// Fixed-width numbers of one ``PType``.
    case primitive(PType, Nullability)
    /// Variable-length UTF-8 text.
    case utf8(Nullability)
    /// Variable-length bytes.
    case binary(Nullability)
    /// Rows of named fields, each of its own type.
    case `struct`([StructField], Nullability)

    /// Whether values of this type may be null.
    public var isNullable: Bool {
        switch self {
        case .null: true
        case .bool(let n), .primitive(_, let n), .utf8(let n), .binary(let n), .struct(_, let n): n == .nullable
        }
    }

    /// The nullability of this type (`.nullable` for `.null`).
    public var nullability: Nullability { isNullable ? .nullable : .nonNullable }

    /// This type with the given nullability (`.null` stays `.null`).
    public func with(_ nullability: Nullability) -> DType {
        switch self {
        case .null: .null
        case .bool: .bool(nullability)
        case .primitive(let p, _): .primitive(p, nullability)
        case .utf8: .utf8(nullability)
        case .binary: .binary(nullability)
        case .struct(let f, _): .struct(f, nullability)
        }
    }

    /// This type, nullable.
    public var asNullable: DType { with(.nullable) }

    /// Whether two types are equal once nullability is ignored.
    public func equalsIgnoringNullability(_ other: DType) -> Bool {
        with(.nonNullable) == other.with(.nonNullable)
    }

    /// The ptype of a primitive type, else nil.
    public var ptype: PType? {
        if case .primitive(let p, _) = self { return p }
        return nil
    }

    /// Whether this is a bool type.
    public var isBool: Bool { if case .bool = self { return true } else { return false } }
    /// Whether this is a utf8 type.
    public var isUTF8: Bool { if case .utf8 = self { return true } else { return false } }
    /// Whether this is a binary type.
    public var isBinary: Bool { if case .binary = self { return true } else { return false } }
    /// Whether values have variable length: utf8 or binary (stored by ``VarBinArray``).
    public var isVarBin: Bool { isUTF8 || isBinary }
    /// Whether this is a primitive type of a signed or unsigned integer ptype.
    public var isInteger: Bool { ptype?.isInteger ?? false }

    public var description: String {
        let base: String
        switch self {
        case .null: return "null"
        case .bool: base = "bool"
        case .primitive(let p, _): base = p.description
        case .utf8: base = "utf8"
        case .binary: base = "binary"
        case .struct(let fields, _):
            base = "{" + fields.map { "\($0.name)=\($0.dtype)" }.joined(separator: ", ") + "}"
        }
        return isNullable ? base + "?" : base
    }
}
