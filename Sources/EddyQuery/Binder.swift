@_spi(Host) public import Eddy
import EddyIO

/// A typed expression over a schema's columns, ready to become engine nodes for each batch.
public indirect enum Bound: Sendable {
    case column(Int, DType)
    case literal(Scalar)
    case function(any ScalarFunction, [Bound], DType)
    /// An aggregate; only at the top of a select item.
    case aggregate(AggregateFunction, Bound?, DType)

    public var dtype: DType {
        switch self {
        case .column(_, let t), .function(_, _, let t), .aggregate(_, _, let t): t
        case .literal(let s): s.dtype
        }
    }

    var isAggregate: Bool { if case .aggregate = self { true } else { false } }

    /// Columns this expression reads.
    var columns: Set<Int> {
        switch self {
        case .column(let i, _): [i]
        case .literal: []
        case .function(_, let args, _): args.reduce(into: Set<Int>()) { $0.formUnion($1.columns) }
        case .aggregate(_, let arg, _): arg?.columns ?? []
        }
    }

    /// The engine node of this expression over `columns` (each `count` long).
    public func node(_ columns: [any ArrayNode], count: Int) throws -> any ArrayNode {
        switch self {
        case .column(let i, _): return columns[i]
        case .literal(let s): return ConstantArray(s, count: count)
        case .function(let f, let args, _): return try ScalarFnArray(f, args.map { try $0.node(columns, count: count) })
        case .aggregate(let f, let arg, _):
            return try AggregateArray(f, arg?.node(columns, count: count) ?? ConstantArray(.bool(true), count: count))
        }
    }
}

/// Resolves names and types: columns against a schema, literals adapted to the other operand's type,
/// numeric operands promoted to a common type with casts.
public struct Binder {
    public let schema: Schema
    public let source: String

    public init(schema: Schema, source: String) {
        self.schema = schema
        self.source = source
    }

    func error(_ message: String, _ e: Expr, hint: String? = nil) -> QueryError {
        QueryError(message, source: source, position: e.position, hint: hint)
    }

    public func bind(_ e: Expr, allowAggregates: Bool = false) throws -> Bound {
        switch e {
        case .column(let name, _):
            return try bindColumn(name, e)
        case .literal(let v, _):
            switch v {
            case .null: return .literal(.null(.null))
            case .bool: return .literal(Scalar(v, .bool(.nonNullable)))
            case .int: return .literal(Scalar(v, .primitive(.int64, .nonNullable)))
            case .uint: return .literal(Scalar(v, .primitive(.uint64, .nonNullable)))
            case .float: return .literal(Scalar(v, .primitive(.float64, .nonNullable)))
            case .utf8: return .literal(Scalar(v, .utf8(.nonNullable)))
            default: throw error("unsupported literal", e)
            }
        case .negate(let inner, _):
            let a = try bind(inner)
            guard let p = a.dtype.ptype, !p.isUnsignedInteger else {
                throw error("unary minus needs a signed number, found \(a.dtype)", e)
            }
            return try function(NegateFunction(), [a], e)
        case .not(let inner, _):
            let a = try boolOperand(inner)
            return try function(NotFunction(), [a], e)
        case .isNull(let inner, let negated, _):
            let node = try function(IsNullFunction(), [try bind(inner)], e)
            return negated ? try function(NotFunction(), [node], e) : node
        case .like(let inner, let pattern, let negated, _):
            let a = try bind(inner)
            guard a.dtype.isUTF8 || a.dtype == .null else { throw error("like needs text, found \(a.dtype)", inner) }
            return try function(LikeFunction(pattern: pattern, negated: negated), [a], e)
        case .cast(let inner, let type, _):
            let a = try bind(inner)
            return try cast(a, to: type, e)
        case .logical(let op, let terms, _):
            let operands = try terms.map { try boolOperand($0) }
            return try function(BooleanFunction(op == "and" ? .and : .or), operands, e)
        case .binary(let op, let l, let r, _):
            return try bindBinary(op, l, r, e)
        case .call(let name, let args, let star, _):
            return try bindCall(name, args, star: star, e, allowAggregates: allowAggregates)
        }
    }

    /// A column by name, or an error naming the columns there are (or the one meant, when only the case
    /// differs).
    func bindColumn(_ name: String, _ e: Expr) throws -> Bound {
        guard let i = schema.index(of: name) else {
            let near = schema.names.filter { $0.lowercased() == name.lowercased() }
            // Names are shown escaped and cut short: a hostile expression or header can make them
            // megabytes long, or put control characters in them.
            func shown(_ s: String) -> String { shortForDisplay(s, limit: 60) }
            let listed = schema.names.prefix(20).map(shown).joined(separator: ", ")
            throw error(
                "unknown column '\(shown(name))'", e,
                hint: near.isEmpty
                    ? "columns: \(listed)\(schema.names.count > 20 ? ", … (\(schema.names.count) in all)" : "")"
                    : "did you mean \(near.prefix(5).map { "\"\(shown($0))\"" }.joined(separator: " or "))? (names are case-sensitive)"
            )
        }
        return .column(i, schema.fields[i].dtype)
    }

    /// `l op r`: a boolean connective, arithmetic or a comparison, its operands coerced to one type.
    func bindBinary(_ op: String, _ l: Expr, _ r: Expr, _ e: Expr) throws -> Bound {
        switch op {
        case "and", "or":
            let a = try boolOperand(l)
            let b = try boolOperand(r)
            return try function(BooleanFunction(op == "and" ? .and : .or), [a, b], e)
        case "+", "-", "*", "/":
            let (a, b) = try coerce(try bind(l), try bind(r), e, numeric: true)
            let o: ArithmeticOperator = op == "+" ? .add : op == "-" ? .subtract : op == "*" ? .multiply : .divide
            return try function(ArithmeticFunction(o), [a, b], e)
        default:
            guard let o = CompareOperator(rawValue: op) else { throw error("unknown operator '\(op)'", e) }
            let (left, right) = (try bind(l), try bind(r))
            if let exact = try exactIntegerComparison(o, left, right, e) { return exact }
            let (a, b) = try coerce(left, right, e, numeric: false)
            return try function(CompareFunction(o), [a, b], e)
        }
    }

    /// A function call: an aggregate (where allowed) or a scalar function.
    func bindCall(_ name: String, _ args: [Expr], star: Bool, _ e: Expr, allowAggregates: Bool) throws -> Bound {
        if let kind = aggregateKind(name, star: star) {
            guard allowAggregates else {
                throw error("aggregate \(name)() is only allowed at the top of a select item", e)
            }
            if kind == .countAll {
                guard args.isEmpty else { throw error("count(*) takes no arguments", e) }
                return .aggregate(AggregateFunction(.countAll), nil, .primitive(.int64, .nonNullable))
            }
            guard args.count == 1 else { throw error("\(name)() takes one argument", e) }
            let a = try bind(args[0])
            let f = AggregateFunction(kind)
            do {
                return .aggregate(f, a, try f.returnType(a.dtype))
            } catch let err as EddyError {
                throw error(err.message, args[0])
            }
        }
        switch name {
        case "coalesce":
            return try bindCoalesce(args, e)
        default:
            throw error(
                "unknown function '\(name)'", e,
                hint: "functions: count, sum, min, max, mean, avg, coalesce, cast(x as type)")
        }
    }

    /// coalesce(…): every argument cast to the type they all meet.
    func bindCoalesce(_ args: [Expr], _ e: Expr) throws -> Bound {
        guard !args.isEmpty else { throw error("coalesce() needs arguments", e) }
        var bound = try args.map { try bind($0) }
        // The type every argument meets, as a comparison of each pair would make it (integers
        // widen, a float makes f64, a literal takes a column's type when it fits, text meets
        // only text): not the first argument's type, which cut 2.7 to 2 in coalesce(i, f).
        var common: Bound?
        for i in bound.indices where bound[i].dtype != .null {
            guard let so = common else {
                common = bound[i]
                continue
            }
            common = try coerce(so, bound[i], args[i], numeric: false).0
        }
        let target = common?.dtype.with(.nonNullable) ?? .null
        for i in bound.indices
        where bound[i].dtype != .null && !bound[i].dtype.equalsIgnoringNullability(target) {
            bound[i] = try cast(bound[i], to: target, args[i])
        }
        return try function(
            CoalesceFunction(), bound.map { $0.dtype == .null ? .literal(.null(target)) : $0 }, e)
    }

    func aggregateKind(_ name: String, star: Bool) -> AggregateFunction.Kind? {
        switch name {
        case "count": star ? .countAll : .count
        case "sum": .sum
        case "min": .min
        case "max": .max
        case "mean", "avg": .mean
        default: nil
        }
    }

    func boolOperand(_ e: Expr) throws -> Bound {
        let a = try bind(e)
        if a.dtype == .null { return .literal(.null(.bool(.nullable))) }
        guard a.dtype.isBool else { throw error("expected a bool expression, found \(a.dtype)", e) }
        return a
    }

    func function(_ f: any ScalarFunction, _ args: [Bound], _ e: Expr) throws -> Bound {
        do {
            let t = try f.returnType(args.map(\.dtype))
            return .function(f, args, t)
        } catch let err as EddyError {
            throw error(err.message, e)
        }
    }

    /// - Parameter meeting: for a cast the binder chose to make two operands one type, the other
    ///   operand's type (a literal that does not fit is named with it).
    func cast(_ a: Bound, to type: DType, _ e: Expr, meeting: DType? = nil) throws -> Bound {
        if case .literal(let s) = a {
            do {
                let v = try Cast.value(s, to: type, row: 0)
                return .literal(Scalar(v, type.with(s.dtype.nullability)))
            } catch let err as EddyError where err.code == .invalidCast {
                // A literal has no row: say which value, and why the cast was asked for.
                let target = type.with(.nonNullable)
                let why =
                    meeting.map {
                        let other = $0.with(.nonNullable)
                        return other == target
                            ? " (the other operand is \(other))"
                            : " (the other operand is \(other); the two meet as \(target))"
                    } ?? ""
                throw error("the literal \(s.value) does not fit \(target)\(why)", e)
            } catch let err as EddyError {
                throw error(err.message, e)
            }
        }
        return try function(CastFunction(to: type), [a], e)
    }

    /// Makes two operands the same type: a literal takes the other side's type when its value fits;
    /// otherwise integers widen (mixed signedness to i64) and anything with a float becomes f64.
    func coerce(_ a: Bound, _ b: Bound, _ e: Expr, numeric: Bool) throws -> (Bound, Bound) {
        if a.dtype.equalsIgnoringNullability(b.dtype) && (!numeric || a.dtype.ptype != nil) { return (a, b) }
        if case .literal(let s) = a, s.isNull { return (.literal(.null(b.dtype)), b) }
        if case .literal(let s) = b, s.isNull { return (a, .literal(.null(a.dtype))) }
        if case .literal(let s) = b, let t = a.dtype.ptype, let fitted = fit(s, t) { return (a, .literal(fitted)) }
        if case .literal(let s) = a, let t = b.dtype.ptype, let fitted = fit(s, t) { return (.literal(fitted), b) }
        guard let pa = a.dtype.ptype, let pb = b.dtype.ptype else {
            throw error("type mismatch: \(a.dtype.with(.nonNullable)) and \(b.dtype.with(.nonNullable))", e)
        }
        let common: PType
        if pa.isFloat || pb.isFloat {
            common = .float64
        } else if pa.isSignedInteger == pb.isSignedInteger {
            common = pa.byteWidth >= pb.byteWidth ? pa : pb
        } else {
            common = .int64
        }
        let t = DType.primitive(common, .nonNullable)
        let ca = a.dtype.ptype == common ? a : try cast(a, to: t, e, meeting: b.dtype)
        let cb = b.dtype.ptype == common ? b : try cast(b, to: t, e, meeting: a.dtype)
        return (ca, cb)
    }

    /// A literal as a value of `ptype`, if it is exactly representable.
    func fit(_ s: Scalar, _ p: PType) -> Scalar? {
        guard s.dtype.ptype != nil else { return nil }
        if case .float = s.value, p.isInteger { return nil }
        let value: ScalarValue? = p.visit(Fit(value: s.value))
        return value.map { Scalar($0, .primitive(p, .nonNullable)) }
    }

    private struct Fit: PTypeVisitor {
        let value: ScalarValue
        func visit<T: NativeType>(_ type: T.Type) -> ScalarValue? { T(exactly: value)?.scalarValue }
    }
}
