/// The physical type of a fixed-width primitive value.
public enum PType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Signed integers of 8, 16, 32 and 64 bits.
    case int8, int16, int32, int64
    /// Unsigned integers of 8, 16, 32 and 64 bits.
    case uint8, uint16, uint32, uint64
    /// IEEE 754 floats of 32 and 64 bits (`Float` and `Double`).
    case float32, float64

    /// Width of one value in bytes.
    public var byteWidth: Int {
        switch self {
        case .int8, .uint8: 1
        case .int16, .uint16: 2
        case .int32, .uint32, .float32: 4
        case .int64, .uint64, .float64: 8
        }
    }

    /// Whether this is a signed integer type.
    public var isSignedInteger: Bool { self == .int8 || self == .int16 || self == .int32 || self == .int64 }
    /// Whether this is an unsigned integer type.
    public var isUnsignedInteger: Bool { self == .uint8 || self == .uint16 || self == .uint32 || self == .uint64 }
    /// Whether this is an integer type.
    public var isInteger: Bool { isSignedInteger || isUnsignedInteger }
    /// Whether this is a floating-point type.
    public var isFloat: Bool { self == .float32 || self == .float64 }

    public var description: String {
        switch self {
        case .int8: "i8"
        case .int16: "i16"
        case .int32: "i32"
        case .int64: "i64"
        case .uint8: "u8"
        case .uint16: "u16"
        case .uint32: "u32"
        case .uint64: "u64"
        case .float32: "f32"
        case .float64: "f64"
        }
    }

    /// The smallest unsigned integer type that holds values up to `maxValue`.
    public static func smallestUnsigned(holding maxValue: UInt64) -> PType {
        if maxValue <= UInt64(UInt8.max) { return .uint8 }
        if maxValue <= UInt64(UInt16.max) { return .uint16 }
        if maxValue <= UInt64(UInt32.max) { return .uint32 }
        return .uint64
    }

    /// Calls `visitor` with the Swift type that stores values of this ptype.
    @inlinable
    public func visit<V: PTypeVisitor>(_ visitor: V) -> V.Result {
        switch self {
        case .int8: visitor.visit(Int8.self)
        case .int16: visitor.visit(Int16.self)
        case .int32: visitor.visit(Int32.self)
        case .int64: visitor.visit(Int64.self)
        case .uint8: visitor.visit(UInt8.self)
        case .uint16: visitor.visit(UInt16.self)
        case .uint32: visitor.visit(UInt32.self)
        case .uint64: visitor.visit(UInt64.self)
        case .float32: visitor.visit(Float.self)
        case .float64: visitor.visit(Double.self)
        }
    }

    /// Calls `visitor` with the Swift integer type of this ptype.
    /// - Throws: ``EddyError/Code/typeMismatch`` on a float ptype.
    public func visitInteger<V: IntegerPTypeVisitor>(_ visitor: V) throws -> V.Result {
        guard isInteger else { throw EddyError(.typeMismatch, "an integer type was needed, found \(self)") }
        return visitIntegerUnchecked(visitor)
    }

    /// ``visitInteger(_:)`` where the engine checked the ptype is an integer.
    @inlinable
    func visitIntegerUnchecked<V: IntegerPTypeVisitor>(_ visitor: V) -> V.Result {
        switch self {
        case .int8: visitor.visit(Int8.self)
        case .int16: visitor.visit(Int16.self)
        case .int32: visitor.visit(Int32.self)
        case .int64: visitor.visit(Int64.self)
        case .uint8: visitor.visit(UInt8.self)
        case .uint16: visitor.visit(UInt16.self)
        case .uint32: visitor.visit(UInt32.self)
        case .uint64: visitor.visit(UInt64.self)
        case .float32, .float64: preconditionFailure("visitInteger on \(self)")
        }
    }
}

/// Receives the concrete Swift type behind a ``PType``; lets generic code be specialised per type.
public protocol PTypeVisitor {
    /// What ``visit(_:)`` returns.
    associatedtype Result
    /// Called with the Swift type that stores the values of the ptype visited.
    func visit<T: NativeType>(_ type: T.Type) -> Result
}

/// Receives the concrete Swift integer type behind an integer ``PType``.
public protocol IntegerPTypeVisitor {
    /// What ``visit(_:)`` returns.
    associatedtype Result
    /// Called with the Swift integer type that stores the values of the ptype visited.
    func visit<T: NativeInteger>(_ type: T.Type) -> Result
}

/// A Swift type that stores the values of one ``PType``.
public protocol NativeType: Comparable, Sendable, Hashable {
    /// The ptype whose values this Swift type stores.
    static var ptype: PType { get }
    /// The value as a scalar value of its own ptype.
    var scalarValue: ScalarValue { get }
    /// Converts a scalar value of a numeric kind to this type; nil when it is not exactly representable.
    init?(exactly value: ScalarValue)
    /// Zero of this type, which the SDK's array constructors store in null slots.
    static var zero: Self { get }
}

/// A Swift integer type that stores the values of an integer ``PType``.
public protocol NativeInteger: NativeType, FixedWidthInteger {}

extension NativeInteger {
    /// Zero of this type (`0`), which the SDK's array constructors store in null slots.
    @inlinable public static var zero: Self { 0 }
}

extension NativeInteger where Self: SignedInteger {
    @inlinable public var scalarValue: ScalarValue { .int(Int64(self)) }
    @inlinable public init?(exactly value: ScalarValue) {
        switch value {
        case .int(let v): self.init(exactly: v)
        case .uint(let v): self.init(exactly: v)
        case .float(let v): self.init(exactly: v)
        default: return nil
        }
    }
}

extension NativeInteger where Self: UnsignedInteger {
    @inlinable public var scalarValue: ScalarValue { .uint(UInt64(self)) }
    @inlinable public init?(exactly value: ScalarValue) {
        switch value {
        case .int(let v): self.init(exactly: v)
        case .uint(let v): self.init(exactly: v)
        case .float(let v): self.init(exactly: v)
        default: return nil
        }
    }
}

extension Int8: NativeInteger { @inlinable public static var ptype: PType { .int8 } }
extension Int16: NativeInteger { @inlinable public static var ptype: PType { .int16 } }
extension Int32: NativeInteger { @inlinable public static var ptype: PType { .int32 } }
extension Int64: NativeInteger { @inlinable public static var ptype: PType { .int64 } }
extension UInt8: NativeInteger { @inlinable public static var ptype: PType { .uint8 } }
extension UInt16: NativeInteger { @inlinable public static var ptype: PType { .uint16 } }
extension UInt32: NativeInteger { @inlinable public static var ptype: PType { .uint32 } }
extension UInt64: NativeInteger { @inlinable public static var ptype: PType { .uint64 } }

extension Float: NativeType {
    @inlinable public static var ptype: PType { .float32 }
    @inlinable public var scalarValue: ScalarValue { .float(Double(self)) }
    @inlinable public init?(exactly value: ScalarValue) {
        switch value {
        case .int(let v): self.init(exactly: v)
        case .uint(let v): self.init(exactly: v)
        case .float(let v):
            if v.isNaN { self = .nan } else { self.init(exactly: v) }
        default: return nil
        }
    }
}

extension Double: NativeType {
    @inlinable public static var ptype: PType { .float64 }
    @inlinable public var scalarValue: ScalarValue { .float(self) }
    @inlinable public init?(exactly value: ScalarValue) {
        switch value {
        case .int(let v): self.init(exactly: v)
        case .uint(let v): self.init(exactly: v)
        case .float(let v): self = v
        default: return nil
        }
    }
}
