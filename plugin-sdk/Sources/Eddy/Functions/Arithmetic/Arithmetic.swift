internal import EddyKernelsC

/// An arithmetic operator.
public enum ArithmeticOperator: String, Sendable, Hashable, CaseIterable {
    /// Addition.
    case add = "+"
    /// Subtraction.
    case subtract = "-"
    /// Multiplication.
    case multiply = "*"
    /// Division; integer division truncates toward zero.
    case divide = "/"
}

/// Element-wise `+ - * /` of two numeric arrays of the same ptype; null if either operand is null.
///
/// Integer overflow and integer division by zero are errors that name the row (SQL engines such as
/// DuckDB and PostgreSQL also refuse rather than wrap). Integer division truncates toward zero.
/// Floats follow IEEE 754 (division by zero gives ±infinity or NaN).
public struct ArithmeticFunction: ScalarFunction {
    /// The encoding of nodes applying an arithmetic function, whatever the operator.
    public static let id = EncodingID("eddy.arithmetic")
    /// The operator applied.
    public let op: ArithmeticOperator

    /// The function applying `op`.
    public init(_ op: ArithmeticOperator) { self.op = op }

    public var encoding: EncodingID { Self.id }
    public var description: String { "arithmetic(\(op.rawValue))" }

    public func returnType(_ arguments: [DType]) throws -> DType {
        guard arguments.count == 2, let p = arguments[0].ptype, arguments[0].equalsIgnoringNullability(arguments[1])
        else {
            throw EddyError(
                .typeMismatch, "\(op.rawValue) needs two numbers of one type, got \(arguments.map(\.description))")
        }
        return .primitive(p, arguments[0].nullability | arguments[1].nullability)
    }

    /// A lazy node computing `a op b`.
    /// - Throws: ``EddyError/Code/typeMismatch`` unless `a` and `b` are numbers of one ptype;
    ///   ``EddyError/Code/invalidArgument`` when their lengths differ.
    public static func make(_ a: any ArrayNode, _ op: ArithmeticOperator, _ b: any ArrayNode) throws -> ScalarFnArray {
        try ScalarFnArray(ArithmeticFunction(op), [a, b])
    }

    public func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode {
        let (a, b) = (arguments[0], arguments[1])
        let dtype = try returnType([a.dtype, b.dtype])
        if let ca = a as? ConstantArray, let cb = b as? ConstantArray {
            let one = try Arithmetic.apply(
                op, Canonical.repeating(ca.scalar, count: 1), Canonical.repeating(cb.scalar, count: 1), dtype: dtype)
            return ConstantArray(try one.scalar(at: 0), count: count)
        }
        return try Arithmetic.apply(op, a, b, dtype: dtype)
    }
}

/// Unary minus; integer negation of the minimum value is an overflow error naming the row.
public struct NegateFunction: ScalarFunction {
    /// The encoding of nodes applying unary minus.
    public static let id = EncodingID("eddy.negate")
    /// The unary minus function.
    public init() {}
    public var encoding: EncodingID { Self.id }
    public var description: String { "negate" }

    public func returnType(_ arguments: [DType]) throws -> DType {
        guard arguments.count == 1, let p = arguments[0].ptype, !p.isUnsignedInteger else {
            throw EddyError(.typeMismatch, "unary minus needs a signed number, got \(arguments.map(\.description))")
        }
        return arguments[0]
    }

    /// A lazy node computing `-a`.
    /// - Throws: ``EddyError/Code/typeMismatch`` unless `a` holds signed integers or floats.
    public static func make(_ a: any ArrayNode) throws -> ScalarFnArray { try ScalarFnArray(NegateFunction(), [a]) }

    public func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode {
        let a = arguments[0]
        let p = a.dtype.ptype!
        let zero = ConstantArray(Scalar(p.isFloat ? .float(0) : .int(0), a.dtype.with(.nonNullable)), count: count)
        if let c = a as? ConstantArray {
            if c.scalar.isNull { return c }
            let one = try Arithmetic.apply(
                .subtract, Canonical.repeating(zero.scalar, count: 1),
                Canonical.repeating(c.scalar, count: 1), dtype: a.dtype)
            return ConstantArray(try one.scalar(at: 0), count: count)
        }
        if p.isFloat {
            return try Arithmetic.apply(
                .multiply, a, ConstantArray(Scalar(.float(-1), a.dtype.with(.nonNullable)), count: count),
                dtype: a.dtype)
        }
        return try Arithmetic.apply(.subtract, zero, a, dtype: a.dtype)
    }
}

/// Typed arithmetic on canonical or constant operands.
public enum Arithmetic {
    /// Applies `op` element-wise; operands are canonical primitive arrays or constants.
    public static func apply(_ op: ArithmeticOperator, _ a: any ArrayNode, _ b: any ArrayNode, dtype: DType) throws
        -> any ArrayNode
    {
        guard let p = dtype.ptype else { throw EddyError(.typeMismatch, "arithmetic on \(dtype)") }
        return try p.visitThrowing(Apply(op: op, a: a, b: b, dtype: dtype))
    }

    private struct Apply: PTypeVisitor {
        let op: ArithmeticOperator
        let a: any ArrayNode
        let b: any ArrayNode
        let dtype: DType

        func visit<T: NativeType>(_ type: T.Type) -> Result<any ArrayNode, EddyError> {
            let n = a.count
            let validity = Canonical.validity(of: a).and(Canonical.validity(of: b), count: n)
            do {
                let out = try Operand<T>.with(a) { x in
                    try Operand<T>.with(b) { y in
                        try Buffer.build(count: n, of: T.self) { dst in
                            try Arithmetic.loop(op, x, y, dst, validity)
                        }
                    }
                }
                return .success(
                    PrimitiveArray(
                        uncheckedPType: T.ptype, buffer: out, count: n, validity: validity,
                        nullability: dtype.nullability))
            } catch {
                return .failure(error as? EddyError ?? EddyError(.kernelFailed, "\(error)"))
            }
        }
    }

    /// One operand: a buffer of values or one repeated value.
    enum Operand<T: NativeType> {
        case values(UnsafeBufferPointer<T>)
        case scalar(T)

        @inline(__always) subscript(_ i: Int) -> T {
            switch self {
            case .values(let v): v[i]
            case .scalar(let s): s
            }
        }

        static func with<R>(_ array: any ArrayNode, _ body: (Operand<T>) throws -> R) throws -> R {
            if let c = array as? ConstantArray {
                return try body(.scalar(c.scalar.isNull ? T.zero : T(exactly: c.scalar.value) ?? T.zero))
            }
            guard let p = array as? PrimitiveArray, p.ptype == T.ptype else {
                throw EddyError(.typeMismatch, "arithmetic needs \(T.ptype) values, got \(array.dtype)")
            }
            return try p.withValuesUnchecked(T.self) { try body(.values($0)) }
        }
    }

    static func loop<T: NativeType>(
        _ op: ArithmeticOperator, _ x: Operand<T>, _ y: Operand<T>,
        _ dst: UnsafeMutableBufferPointer<T>, _ validity: Validity
    ) throws {
        if let I = T.self as? any NativeInteger.Type {
            func integer<I: NativeInteger>(_: I.Type) throws {
                let xi = unsafeBitCast(x, to: Operand<I>.self)
                let yi = unsafeBitCast(y, to: Operand<I>.self)
                let di = UnsafeMutableBufferPointer<I>(
                    start: UnsafeMutableRawPointer(dst.baseAddress)?.assumingMemoryBound(to: I.self), count: dst.count)
                try integerLoop(op, xi, yi, di, validity)
            }
            try integer(I)
            return
        }
        if T.self == Double.self {
            floatLoop(
                op, unsafeBitCast(x, to: Operand<Double>.self), unsafeBitCast(y, to: Operand<Double>.self),
                UnsafeMutableBufferPointer<Double>(
                    start: UnsafeMutableRawPointer(dst.baseAddress)?.assumingMemoryBound(to: Double.self),
                    count: dst.count))
        } else {
            floatLoop(
                op, unsafeBitCast(x, to: Operand<Float>.self), unsafeBitCast(y, to: Operand<Float>.self),
                UnsafeMutableBufferPointer<Float>(
                    start: UnsafeMutableRawPointer(dst.baseAddress)?.assumingMemoryBound(to: Float.self),
                    count: dst.count))
        }
    }

    static func floatLoop<F: BinaryFloatingPoint>(
        _ op: ArithmeticOperator, _ x: Operand<F>, _ y: Operand<F>,
        _ dst: UnsafeMutableBufferPointer<F>
    ) {
        switch op {
        case .add: for i in dst.indices { dst[i] = x[i] + y[i] }
        case .subtract: for i in dst.indices { dst[i] = x[i] - y[i] }
        case .multiply: for i in dst.indices { dst[i] = x[i] * y[i] }
        case .divide: for i in dst.indices { dst[i] = x[i] / y[i] }
        }
    }

    static func integerLoop<I: NativeInteger>(
        _ op: ArithmeticOperator, _ x: Operand<I>, _ y: Operand<I>,
        _ dst: UnsafeMutableBufferPointer<I>, _ validity: Validity
    ) throws {
        if I.self == Int64.self, op == .add || op == .subtract, let out = dst.baseAddress {
            // Int64 + and -: wrapping in C with the overflow flags ORed, no branch per row. Only when
            // some row overflowed does the checked loop below run, to name the first valid one.
            func parts(_ o: Operand<I>) -> (UnsafePointer<Int64>?, Int64) {
                switch o {
                case .values(let v):
                    (UnsafeRawPointer(v.baseAddress)?.assumingMemoryBound(to: Int64.self), 0)
                case .scalar(let s): (nil, Int64(truncatingIfNeeded: s))
                }
            }
            let (xp, xs) = parts(x)
            let (yp, ys) = parts(y)
            let overflowed = UnsafeMutableRawPointer(out).withMemoryRebound(to: Int64.self, capacity: dst.count) {
                eddy_add_sub_i64(op == .add ? 0 : 1, xp, xs, yp, ys, dst.count, $0)
            }
            if overflowed == 0 { return }
        }
        var failed = -1
        switch op {
        case .add:
            for i in dst.indices {
                let (r, o) = x[i].addingReportingOverflow(y[i])
                dst[i] = r
                if o && failed < 0 && validity.isValid(i) { failed = i }
            }
        case .subtract:
            for i in dst.indices {
                let (r, o) = x[i].subtractingReportingOverflow(y[i])
                dst[i] = r
                if o && failed < 0 && validity.isValid(i) { failed = i }
            }
        case .multiply:
            for i in dst.indices {
                let (r, o) = x[i].multipliedReportingOverflow(by: y[i])
                dst[i] = r
                if o && failed < 0 && validity.isValid(i) { failed = i }
            }
        case .divide:
            for i in dst.indices {
                let d = y[i]
                if d == 0 {
                    dst[i] = 0
                    if validity.isValid(i) {
                        throw EddyError(.divideByZero, "division by zero in row \(i): \(x[i]) / 0")
                    }
                    continue
                }
                let (r, o) = x[i].dividedReportingOverflow(by: d)
                dst[i] = r
                if o && failed < 0 && validity.isValid(i) { failed = i }
            }
        }
        if failed >= 0 {
            throw EddyError(
                .overflow,
                "integer overflow in row \(failed): \(x[failed]) \(op.rawValue) \(y[failed]) does not fit \(I.ptype)")
        }
    }
}
