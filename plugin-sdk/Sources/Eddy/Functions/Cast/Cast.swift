/// Converts values to another type: between numeric types, bool and utf8.
///
/// A value that cannot be represented (out of range, not a number, text that does not parse) is an
/// error naming the value and its row. Floats cast to integers truncate toward zero.
public struct CastFunction: ScalarFunction {
    /// The encoding of cast nodes, whatever the target type.
    public static let id = EncodingID("eddy.cast")
    /// The type converted to; the result takes its nullability from the input (nullable for a `null` input).
    public let target: DType

    /// - Parameter target: the type to convert to (its nullability is taken from the input).
    public init(to target: DType) { self.target = target }

    public var encoding: EncodingID { Self.id }
    public var description: String { "cast(\(target.with(.nonNullable)))" }

    public func returnType(_ arguments: [DType]) throws -> DType {
        guard arguments.count == 1 else { throw EddyError(.invalidArgument, "cast takes one argument") }
        let from = arguments[0]
        guard Cast.isSupported(from: from, to: target) else {
            throw EddyError(.typeMismatch, "cannot cast \(from) to \(target.with(.nonNullable))")
        }
        if case .null = from { return target.asNullable }
        return target.with(from.nullability)
    }

    /// A lazy node converting `a` to `target`, with the nullability of `a`.
    /// - Throws: ``EddyError/Code/typeMismatch`` when there is no cast between the two types.
    public static func make(_ a: any ArrayNode, to target: DType) throws -> ScalarFnArray {
        try ScalarFnArray(CastFunction(to: target), [a])
    }

    public func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode {
        let a = arguments[0]
        let out = try returnType([a.dtype])
        if let c = a as? ConstantArray {
            if count == 0 {
                let empty = ArrayBuilder(dtype: out, capacity: 0)
                return try empty.finish()
            }
            return ConstantArray(Scalar(try Cast.value(c.scalar, to: out, row: 0), out), count: count)
        }
        if a.dtype == out { return a }
        if let p = a as? PrimitiveArray, let fast = try Cast.numeric(p, to: out) { return fast }
        var b = ArrayBuilder(dtype: out, capacity: count)
        for i in 0..<count { b.append(try Cast.value(a.scalar(at: i), to: out, row: i)) }
        return try b.finish()
    }
}

/// Value conversions shared by the cast function and its kernels.
public enum Cast {
    static func isSupported(from: DType, to: DType) -> Bool {
        switch (from, to) {
        case (.null, _): return true
        case (.primitive, .primitive), (.primitive, .bool), (.primitive, .utf8),
            (.bool, .primitive), (.bool, .bool), (.bool, .utf8),
            (.utf8, .primitive), (.utf8, .bool), (.utf8, .utf8), (.binary, .binary), (.utf8, .binary):
            return true
        default: return false
        }
    }

    /// `scalar` converted to `target`.
    /// - Throws: ``EddyError/Code/invalidCast`` naming the value and `row`.
    public static func value(_ scalar: Scalar, to target: DType, row: Int) throws -> ScalarValue {
        let v = scalar.value
        if v.isNull { return .null }
        func fail() -> EddyError {
            EddyError(.invalidCast, "cannot cast \(v) to \(target.with(.nonNullable)) (row \(row))")
        }
        switch target {
        case .primitive(let p, _):
            let source: ScalarValue
            switch v {
            case .bool(let b): source = .int(b ? 1 : 0)
            case .utf8(let s):
                let t = s.trimmingSpaces
                if let i = Int64(t) {
                    source = .int(i)
                } else if let u = UInt64(t) {
                    source = .uint(u)
                } else if !t.utf8.contains(0), let d = Double(t),
                    d.isFinite || t.lowercased().holds("inf") || t.lowercased().holds("nan")
                {
                    // Double(String) stops at a NUL as C does, and reads "1e400" as infinity: neither is a number.
                    source = .float(d)
                } else {
                    throw fail()
                }
            default: source = v
            }
            return try p.visitThrowing(ToNative(value: source, error: fail()))
        case .bool:
            switch v {
            case .bool: return v
            case .int(let i): return .bool(i != 0)
            case .uint(let u): return .bool(u != 0)
            case .float(let d): return .bool(d != 0)
            case .utf8(let s):
                switch s.trimmingSpaces.lowercased() {
                case "true", "t", "1", "yes": return .bool(true)
                case "false", "f", "0", "no": return .bool(false)
                default: throw fail()
                }
            default: throw fail()
            }
        case .utf8:
            switch v {
            case .utf8: return v
            case .float(let d) where scalar.dtype.ptype == .float32: return .utf8(String(Float(d)))
            case .float(let d): return .utf8(String(d))
            case .int(let i): return .utf8(String(i))
            case .uint(let u): return .utf8(String(u))
            case .bool(let b): return .utf8(b ? "true" : "false")
            default: throw fail()
            }
        case .binary:
            if case .utf8(let s) = v { return .binary(Array(s.utf8)) }
            if case .binary = v { return v }
            throw fail()
        default:
            throw fail()
        }
    }

    private struct ToNative: PTypeVisitor {
        let value: ScalarValue
        let error: EddyError
        func visit<T: NativeType>(_ type: T.Type) -> Result<ScalarValue, EddyError> {
            if let exact = T(exactly: value) { return .success(exact.scalarValue) }
            // Floats to integers truncate toward zero when in range; integers to floats round.
            switch value {
            case .float(let d) where T.ptype.isInteger:
                guard d.isFinite, let t = T(exactly: .float(d.rounded(.towardZero))) else { return .failure(error) }
                return .success(t.scalarValue)
            case .int(let i) where T.ptype.isFloat:
                return .success(T.ptype == .float32 ? .float(Double(Float(i))) : .float(Double(i)))
            case .uint(let u) where T.ptype.isFloat:
                return .success(T.ptype == .float32 ? .float(Double(Float(u))) : .float(Double(u)))
            case .float(let d) where T.ptype == .float32:
                // Rounds to the nearest f32; a finite number past f32's range is an error, not an infinity
                // (as DuckDB: "out of range for the destination type FLOAT").
                let f = Float(d)
                guard f.isFinite || !d.isFinite else { return .failure(error) }
                return .success(.float(Double(f)))
            default:
                return .failure(error)
            }
        }
    }

    /// Numeric-to-numeric casts of a whole array without going through scalars; nil when not numeric.
    static func numeric(_ array: PrimitiveArray, to target: DType) throws -> (any ArrayNode)? {
        guard let p = target.ptype else { return nil }
        return try array.ptype.visitThrowing(NumericFrom(array: array, target: p, nullability: target.nullability))
    }

    private struct NumericFrom: PTypeVisitor {
        let array: PrimitiveArray
        let target: PType
        let nullability: Nullability
        func visit<S: NativeType>(_ type: S.Type) -> Result<(any ArrayNode)?, EddyError> {
            target.visit(NumericTo<S>(array: array, nullability: nullability))
        }
    }

    private struct NumericTo<S: NativeType>: PTypeVisitor {
        let array: PrimitiveArray
        let nullability: Nullability
        func visit<T: NativeType>(_ type: T.Type) -> Result<(any ArrayNode)?, EddyError> {
            var bad: Int?
            let out = array.withValuesUnchecked(S.self) { src in
                Buffer.build(count: src.count, of: T.self) { dst in
                    for i in 0..<src.count {
                        if let v = T(exactly: src[i].scalarValue) {
                            dst[i] = v
                        } else if array.validity.isValid(i) {
                            // Slow path: truncation and rounding rules live in `Cast.value`.
                            if let r = try? Cast.value(
                                Scalar(src[i].scalarValue, array.dtype), to: .primitive(T.ptype, .nonNullable), row: i),
                                let v = T(exactly: r)
                            {
                                dst[i] = v
                            } else {
                                dst[i] = T.zero
                                if bad == nil { bad = i }
                            }
                        } else {
                            dst[i] = T.zero
                        }
                    }
                }
            }
            if let bad {
                return .failure(
                    EddyError(
                        .invalidCast,
                        "cannot cast \(array.withValuesUnchecked(S.self) { $0[bad] }) to \(T.ptype) (row \(bad))"))
            }
            return .success(
                PrimitiveArray(
                    uncheckedPType: T.ptype, buffer: out, count: array.count, validity: array.validity,
                    nullability: nullability))
        }
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
