/// Kleene `and` / `or` of two or more bool arrays: `false and null` is false, `true or null` is true,
/// otherwise a null operand gives null. A chain `a and b and c …` is one node with one argument per
/// term, evaluated in one pass over the words of each argument (linear in the number of terms).
public struct BooleanFunction: ScalarFunction {
    /// The connective: `and` or `or`.
    public enum Operator: String, Sendable {
        /// Kleene conjunction: false if any operand is false, else null if any is null, else true.
        case and
        /// Kleene disjunction: true if any operand is true, else null if any is null, else false.
        case or
    }
    /// The encoding of `and` nodes.
    public static let andID = EncodingID("eddy.and")
    /// The encoding of `or` nodes.
    public static let orID = EncodingID("eddy.or")
    /// The connective applied.
    public let op: Operator

    /// The function applying `op` to two or more bool arguments.
    public init(_ op: Operator) { self.op = op }

    public var encoding: EncodingID { op == .and ? Self.andID : Self.orID }
    public var description: String { op.rawValue }

    public func returnType(_ arguments: [DType]) throws -> DType {
        guard arguments.count >= 2, arguments.allSatisfy(\.isBool) else {
            throw EddyError(
                .typeMismatch, "\(op.rawValue) needs two or more bool arguments, got \(arguments.map(\.description))")
        }
        return .bool(arguments.reduce(Nullability.nonNullable) { $0 | $1.nullability })
    }

    /// A lazy node computing `a and b`.
    /// - Throws: ``EddyError/Code/typeMismatch`` unless both are bool; ``EddyError/Code/invalidArgument``
    ///   when their lengths differ.
    public static func and(_ a: any ArrayNode, _ b: any ArrayNode) throws -> ScalarFnArray {
        try ScalarFnArray(BooleanFunction(.and), [a, b])
    }

    /// A lazy node computing `a or b`.
    /// - Throws: ``EddyError/Code/typeMismatch`` unless both are bool; ``EddyError/Code/invalidArgument``
    ///   when their lengths differ.
    public static func or(_ a: any ArrayNode, _ b: any ArrayNode) throws -> ScalarFnArray {
        try ScalarFnArray(BooleanFunction(.or), [a, b])
    }

    public func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode {
        guard let first = arguments.first, arguments.count >= 2 else {
            throw EddyError(.invalidArgument, "\(op.rawValue) needs two or more arguments, got \(arguments.count)")
        }
        let nullability = arguments.reduce(Nullability.nonNullable) { $0 | $1.dtype.nullability }
        // Fold left to right. For and: the result is known false where any side is a valid false; known
        // true where all are valid true. `or` is the dual.
        var (values, validity) = try BoolOperand.words(first, count: count)
        for argument in arguments.dropFirst() {
            let (bv, bValid) = try BoolOperand.words(argument, count: count)
            switch op {
            case .and:
                let aFalse = validity.combinedWords(values) { $0 & ~$1 }
                let bFalse = bValid.combinedWords(bv) { $0 & ~$1 }
                values = values & bv
                validity = (validity & bValid) | aFalse | bFalse
            case .or:
                let aTrue = validity & values
                let bTrue = bValid & bv
                values = aTrue | bTrue
                validity = (validity & bValid) | aTrue | bTrue
            }
        }
        let v: Validity = nullability == .nullable ? Validity.bitmap(validity).normalized(count: count) : .allValid
        // Null rows hold false, so that a filter can use `values` directly.
        let cleaned: Bitmap = if case .allValid = v { values } else { values & validity }
        return BoolArray(uncheckedBits: cleaned, validity: v, nullability: nullability)
    }
}

/// Logical negation; null stays null.
public struct NotFunction: ScalarFunction {
    /// The encoding of `not` nodes.
    public static let id = EncodingID("eddy.not")
    /// The logical negation function.
    public init() {}
    public var encoding: EncodingID { Self.id }
    public var description: String { "not" }

    public func returnType(_ arguments: [DType]) throws -> DType {
        guard arguments.count == 1, arguments[0].isBool else {
            throw EddyError(.typeMismatch, "not needs one bool argument, got \(arguments.map(\.description))")
        }
        return arguments[0]
    }

    /// A lazy node computing `not a`.
    /// - Throws: ``EddyError/Code/typeMismatch`` unless `a` is bool.
    public static func make(_ a: any ArrayNode) throws -> ScalarFnArray { try ScalarFnArray(NotFunction(), [a]) }

    public func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode {
        let a = arguments[0]
        let (values, valid) = try BoolOperand.words(a, count: count)
        let v: Validity = a.dtype.isNullable ? Validity.bitmap(valid).normalized(count: count) : .allValid
        return BoolArray(
            uncheckedBits: values.combinedWords(valid) { ~$0 & $1 }, validity: v, nullability: a.dtype.nullability)
    }
}

/// `is_null(x)`: true where `x` is null; never null itself.
public struct IsNullFunction: ScalarFunction {
    /// The encoding of `is_null` nodes.
    public static let id = EncodingID("eddy.is_null")
    /// The `is_null` function.
    public init() {}
    public var encoding: EncodingID { Self.id }
    public var description: String { "is_null" }

    public func returnType(_ arguments: [DType]) throws -> DType {
        guard arguments.count == 1 else { throw EddyError(.invalidArgument, "is_null takes one argument") }
        return .bool(.nonNullable)
    }

    /// A lazy node computing `is_null(a)`, for `a` of any type.
    public static func make(_ a: any ArrayNode) throws -> ScalarFnArray { try ScalarFnArray(IsNullFunction(), [a]) }

    public func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode {
        let a = arguments[0]
        if let c = a as? ConstantArray { return ConstantArray(.bool(c.scalar.isNull), count: count) }
        return BoolArray(uncheckedBits: ~Canonical.validity(of: a).toBitmap(count: count))
    }
}

enum BoolOperand {
    /// The values and validity of a canonical or constant bool array as bitmaps.
    static func words(_ a: any ArrayNode, count: Int) throws -> (values: Bitmap, validity: Bitmap) {
        switch a {
        case let b as BoolArray:
            return (b.bits, b.validity.toBitmap(count: count))
        case let c as ConstantArray:
            return (
                Bitmap(repeating: c.scalar.boolValue ?? false, count: count),
                Bitmap(repeating: !c.scalar.isNull, count: count)
            )
        default:
            throw EddyError(.unsupported, "boolean function needs canonical or constant input, got \(a.encoding)")
        }
    }
}
