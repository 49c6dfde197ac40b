@_spi(Host) import Eddy

/// Comparisons of an integer operand with a number its type cannot hold, made exact.
///
/// Meeting as f64 (the usual promotion with a float) made two integers past 2^53 equal to one literal
/// (`i = 9007199254740992.0` matched 2^53 and 2^53 + 1); meeting as i64 (mixed signedness) made a u64
/// column met by `-1` fail on its first value past 2^63 with a cast the query never wrote. DuckDB
/// compares such pairs exactly. Here the comparison is rewritten as one against a literal of the
/// operand's own type that answers the same for every value of that type: `i > 2.5` is `i > 2`,
/// `i >= 2.5` is `i > 2`, `u > -1` holds for every non-null `u` (`u >= 0`), `i = 2.5` for none
/// (`i < min`); a null operand stays null. NaN compares as IEEE 754 says: only `!=` holds.
extension Binder {
    /// Where a literal lies against an integer type's values.
    private enum Position {
        case below, above, notANumber
        /// Inside the range: `floor` is the literal rounded down, exact when `integral`.
        case inside(floor: ScalarValue, integral: Bool)
    }

    private struct Locate: IntegerPTypeVisitor {
        let value: ScalarValue
        func visit<T: NativeInteger>(_ type: T.Type) -> Position {
            switch value {
            case .int(let v):
                if let exact = T(exactly: v) { return .inside(floor: exact.scalarValue, integral: true) }
                return v < 0 ? .below : .above
            case .uint(let v):
                if let exact = T(exactly: v) { return .inside(floor: exact.scalarValue, integral: true) }
                return .above
            case .float(let d):
                if d.isNaN { return .notANumber }
                // T.min is a power of two (or zero) and T.max + 1 is one: both exact as doubles.
                if d < Double(T.min) { return .below }
                let end = Double(sign: .plus, exponent: T.bitWidth - (T.isSigned ? 1 : 0), significand: 1)
                if d >= end { return .above }
                let down = d.rounded(.down)
                guard let floor = T(exactly: down) else { return d < 0 ? .below : .above }
                return .inside(floor: floor.scalarValue, integral: down == d)
            default:
                return .notANumber
            }
        }
    }

    private struct Minimum: IntegerPTypeVisitor {
        func visit<T: NativeInteger>(_ type: T.Type) -> ScalarValue { T.min.scalarValue }
    }

    /// `a op b` made exact when one side is an integer expression and the other a numeric literal its
    /// type cannot hold; nil when the pair is not one of those (the usual promotion applies).
    func exactIntegerComparison(_ op: CompareOperator, _ a: Bound, _ b: Bound, _ e: Expr) throws -> Bound? {
        // The integer operand on the left: `5.5 < i` is `i > 5.5`.
        let (operand, literal, o): (Bound, Scalar, CompareOperator)
        if case .literal(let s) = b, !isLiteral(a) {
            (operand, literal, o) = (a, s, op)
        } else if case .literal(let s) = a, !isLiteral(b) {
            (operand, literal, o) = (b, s, Self.mirrored(op))
        } else {
            return nil
        }
        guard let p = operand.dtype.ptype, p.isInteger, literal.dtype.ptype != nil, !literal.isNull,
            fit(literal, p) == nil
        else { return nil }
        let position = try p.visitInteger(Locate(value: literal.value))
        let type = DType.primitive(p, .nonNullable)
        let minimum = Scalar(try p.visitInteger(Minimum()), type)
        func compare(_ o: CompareOperator, _ value: ScalarValue) throws -> Bound {
            try function(CompareFunction(o), [operand, .literal(Scalar(value, type))], e)
        }
        // True for every value of the type (null stays null), and false for every one.
        let always = { try compare(.ge, minimum.value) }
        let never = { try compare(.lt, minimum.value) }
        switch position {
        case .notANumber:
            return try o == .ne ? always() : never()
        case .below:
            return try [.gt, .ge, .ne].contains(o) ? always() : never()
        case .above:
            return try [.lt, .le, .ne].contains(o) ? always() : never()
        case .inside(let floor, true):
            return try compare(o, floor)
        case .inside(let floor, false):
            switch o {
            case .gt, .ge: return try compare(.gt, floor)
            case .lt, .le: return try compare(.le, floor)
            case .eq: return try never()
            case .ne: return try always()
            }
        }
    }

    private func isLiteral(_ b: Bound) -> Bool {
        if case .literal = b { return true }
        return false
    }

    /// The operator that gives the same answer with its operands swapped.
    static func mirrored(_ op: CompareOperator) -> CompareOperator {
        switch op {
        case .eq, .ne: op
        case .lt: .gt
        case .le: .ge
        case .gt: .lt
        case .ge: .le
        }
    }
}
