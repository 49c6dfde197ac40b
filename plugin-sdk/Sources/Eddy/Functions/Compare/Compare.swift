internal import EddyKernelsC

/// A comparison operator.
@frozen
public enum CompareOperator: String, Sendable, Hashable, CaseIterable {
    /// Equal.
    case eq = "="
    /// Not equal.
    case ne = "!="
    /// Less than.
    case lt = "<"
    /// Less than or equal.
    case le = "<="
    /// Greater than.
    case gt = ">"
    /// Greater than or equal.
    case ge = ">="

    /// The operator with its operands swapped (`a < b` is `b > a`).
    public var swapped: CompareOperator {
        switch self {
        case .eq: .eq
        case .ne: .ne
        case .lt: .gt
        case .le: .ge
        case .gt: .lt
        case .ge: .le
        }
    }

    /// Whether `a op b` holds, by `T`'s own `==` and `<`.
    @inlinable
    public func apply<T: Comparable>(_ a: T, _ b: T) -> Bool {
        switch self {
        case .eq: a == b
        case .ne: a != b
        case .lt: a < b
        case .le: a <= b
        case .gt: a > b
        case .ge: a >= b
        }
    }
}

/// Element-wise comparison of two arrays of the same type (nullability aside); null if either is null.
public struct CompareFunction: ScalarFunction {
    /// The encoding of comparison nodes, whatever the operator.
    public static let id = EncodingID("eddy.compare")
    /// The operator applied.
    public let op: CompareOperator

    /// The function comparing with `op`.
    public init(_ op: CompareOperator) { self.op = op }

    public var encoding: EncodingID { Self.id }
    public var description: String { "compare(\(op.rawValue))" }

    public func returnType(_ arguments: [DType]) throws -> DType {
        guard arguments.count == 2 else { throw EddyError(.invalidArgument, "compare takes 2 arguments") }
        let (a, b) = (arguments[0], arguments[1])
        guard a.equalsIgnoringNullability(b) else {
            throw EddyError(.typeMismatch, "cannot compare \(a) with \(b)")
        }
        if case .struct = a { throw EddyError(.unsupported, "cannot compare struct values") }
        return .bool(a.nullability | b.nullability)
    }

    /// A lazy node comparing `lhs` with `rhs`.
    public static func make(_ lhs: any ArrayNode, _ op: CompareOperator, _ rhs: any ArrayNode) throws -> ScalarFnArray {
        try ScalarFnArray(CompareFunction(op), [lhs, rhs])
    }

    public func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode {
        try Compare.evaluate(arguments[0], op, arguments[1], count: count)
    }
}

/// Comparison on canonical or constant inputs, shared by the function and its kernels.
public enum Compare {
    /// `array op constant` by the engine's own comparison rules, executed to a bool array: how a
    /// kernel compares the values of an encoding (a dictionary's distinct values, a run-end's one
    /// value per run) and then spreads the answers over the rows.
    ///
    /// The constant is compared as it is given (a typed registration hands it already in the column's
    /// type); a null constant or a null value gives null.
    /// - Parameters:
    ///   - array: any array; it is executed with `ctx` first.
    ///   - op: the operator, with `array` on its left.
    ///   - constant: the right-hand side.
    ///   - ctx: the evaluation's context.
    /// - Returns: one answer per element of `array`.
    /// - Throws: ``EddyError/Code/typeMismatch`` when the constant cannot be compared with the values.
    public static func evaluate(_ array: any ArrayNode, _ op: CompareOperator, _ constant: Scalar, in ctx: ExecutionCtx)
        throws -> BoolArray
    {
        let result = try answers(array, op, constant, ctx)
        guard let bools = result as? BoolArray else {
            throw EddyError(.unsupported, "a comparison executed to \(result.encoding), not a bool array")
        }
        return bools
    }

    /// `array op constant` for every element of `array` (an encoding's distinct values, say), both
    /// executed: the answers as they come (a bool array, or a constant for a null constant).
    static func answers(_ array: any ArrayNode, _ op: CompareOperator, _ constant: Scalar, _ ctx: ExecutionCtx)
        throws -> any ArrayNode
    {
        let values = try ctx.execute(array)
        return try ctx.execute(evaluate(values, op, ConstantArray(constant, count: values.count), count: values.count))
    }

    /// Compares canonical-or-constant `lhs` with canonical-or-constant `rhs` (`count` rows each): the
    /// result is a bool array, or a constant when both sides are constant or one is null.
    ///
    /// Numbers are compared at their own type (cast the constant to the column's type first), strings
    /// and binaries byte by byte; a null on either side gives null.
    /// - Throws: ``EddyError/Code/typeMismatch`` when the two sides cannot be compared,
    ///   ``EddyError/Code/unsupported`` when `lhs` is neither canonical nor constant.
    public static func evaluate(_ lhs: any ArrayNode, _ op: CompareOperator, _ rhs: any ArrayNode, count: Int) throws
        -> any ArrayNode
    {
        let nullability = lhs.dtype.nullability | rhs.dtype.nullability
        let resultType = DType.bool(nullability)
        if let l = lhs as? ConstantArray, let r = rhs as? ConstantArray {
            return ConstantArray(scalars(l.scalar, op, r.scalar, nullability), count: count)
        }
        if lhs is ConstantArray {
            return try evaluate(rhs, op.swapped, lhs, count: count)
        }
        if let r = rhs as? ConstantArray, r.scalar.isNull {
            return ConstantArray(.null(resultType), count: count)
        }
        switch lhs {
        case let l as PrimitiveArray:
            return try l.ptype.visitThrowing(ComparePrimitive(lhs: l, rhs: rhs, op: op, nullability: nullability))
        case let l as BoolArray:
            let bits: Bitmap
            if let r = rhs as? ConstantArray {
                let b = r.scalar.boolValue!
                bits = Bitmap(count: count) { op.apply(l.bits[$0] ? 1 : 0, b ? 1 : 0) }
            } else if let r = rhs as? BoolArray {
                bits = Bitmap(count: count) { op.apply(l.bits[$0] ? 1 : 0, r.bits[$0] ? 1 : 0) }
            } else {
                throw EddyError(.typeMismatch, "cannot compare bool with \(rhs.encoding)")
            }
            return BoolArray(
                uncheckedBits: bits, validity: l.validity.and(Canonical.validity(of: rhs), count: count),
                nullability: nullability)
        case let l as VarBinArray:
            if let r = rhs as? ConstantArray {
                let needle: [UInt8] =
                    if case .utf8(let s) = r.scalar.value { Array(s.utf8) } else if case .binary(let b) = r.scalar.value
                    { b } else { [] }
                if op == .eq || op == .ne {
                    let eq = equalBitmap(l, needle)
                    return BoolArray(
                        uncheckedBits: op == .eq ? eq : ~eq, validity: l.validity, nullability: nullability)
                }
                let bits = needle.withUnsafeBytes { n in
                    Bitmap(count: count) { i in l.withBytes(at: i) { op.apply(compareBytes($0, n), 0) } }
                }
                return BoolArray(uncheckedBits: bits, validity: l.validity, nullability: nullability)
            } else if let r = rhs as? VarBinArray {
                let bits = Bitmap(count: count) { i in
                    l.withBytes(at: i) { a in r.withBytes(at: i) { b in op.apply(compareBytes(a, b), 0) } }
                }
                return BoolArray(
                    uncheckedBits: bits, validity: l.validity.and(r.validity, count: count), nullability: nullability)
            }
            throw EddyError(.typeMismatch, "cannot compare \(l.dtype) with \(rhs.encoding)")
        case is NullArray:
            return ConstantArray(.null(resultType), count: count)
        default:
            throw EddyError(.unsupported, "compare needs canonical or constant inputs, got \(lhs.encoding)")
        }
    }

    /// Bit i set when value i of `array` is byte-for-byte `needle` (length first, then memcmp).
    static func equalBitmap(_ array: VarBinArray, _ needle: [UInt8]) -> Bitmap {
        let n = array.count
        let words = (n + 63) / 64
        let storage = BufferStorage(uninitializedByteCount: words * 8)
        if n > 0 {
            let out = storage.pointer.bindMemory(to: UInt64.self, capacity: words)
            withExtendedLifetime(array) {
                needle.withUnsafeBufferPointer { nb in
                    eddy_varbin_eq(
                        array.offsets.baseAddress.assumingMemoryBound(to: Int32.self),
                        array.bytes.baseAddress.assumingMemoryBound(to: UInt8.self), n,
                        nb.baseAddress, nb.count, out)
                }
            }
        }
        return Bitmap(
            uncheckedBuffer: Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: words * 8), offset: 0, count: n
        )
    }

    /// Compares two scalars of the same type; null if either is null.
    public static func scalars(_ a: Scalar, _ op: CompareOperator, _ b: Scalar, _ nullability: Nullability) -> Scalar {
        let t = DType.bool(nullability)
        switch (a.value, b.value) {
        case (.null, _), (_, .null): return .null(t)
        case (.bool(let x), .bool(let y)): return Scalar(.bool(op.apply(x ? 1 : 0, y ? 1 : 0)), t)
        case (.int(let x), .int(let y)): return Scalar(.bool(op.apply(x, y)), t)
        case (.uint(let x), .uint(let y)): return Scalar(.bool(op.apply(x, y)), t)
        case (.float(let x), .float(let y)):
            // Compare at the operands' own precision, as the array path does.
            if a.dtype.ptype == .float32 { return Scalar(.bool(op.apply(Float(x), Float(y))), t) }
            return Scalar(.bool(op.apply(x, y)), t)
        case (.utf8(let x), .utf8(let y)):
            return Scalar(.bool(op.apply(compareByteArrays(Array(x.utf8), Array(y.utf8)), 0)), t)
        case (.binary(let x), .binary(let y)): return Scalar(.bool(op.apply(compareByteArrays(x, y), 0)), t)
        default: return .null(t)
        }
    }

    static func compareByteArrays(_ a: [UInt8], _ b: [UInt8]) -> Int {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in compareBytes(x, y) } }
    }

    /// Lexicographic byte comparison: negative, zero or positive.
    @inlinable
    static func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = Swift.min(a.count, b.count)
        if n > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let c = memcmpBytes(pa, pb, n)
            if c != 0 { return c }
        }
        return a.count - b.count
    }

    @inlinable
    static func memcmpBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Int {
        for i in 0..<n {
            let x = a.load(fromByteOffset: i, as: UInt8.self)
            let y = b.load(fromByteOffset: i, as: UInt8.self)
            if x != y { return Int(x) - Int(y) }
        }
        return 0
    }

    private struct ComparePrimitive: PTypeVisitor {
        let lhs: PrimitiveArray
        let rhs: any ArrayNode
        let op: CompareOperator
        let nullability: Nullability

        func visit<T: NativeType>(_ type: T.Type) -> Result<any ArrayNode, EddyError> {
            let n = lhs.count
            if let r = rhs as? ConstantArray {
                guard let needle = T(exactly: r.scalar.value) else {
                    return .failure(EddyError(.typeMismatch, "constant \(r.scalar) does not fit \(T.ptype)"))
                }
                let bits = lhs.withValuesUnchecked(T.self) { v in Compare.bitmap(n) { op.apply(v[$0], needle) } }
                return .success(BoolArray(uncheckedBits: bits, validity: lhs.validity, nullability: nullability))
            }
            guard let r = rhs as? PrimitiveArray, r.ptype == T.ptype else {
                return .failure(EddyError(.typeMismatch, "cannot compare \(lhs.dtype) with \(rhs.dtype)"))
            }
            let bits = lhs.withValuesUnchecked(T.self) { a in
                r.withValuesUnchecked(T.self) { b in Compare.bitmap(n) { op.apply(a[$0], b[$0]) } }
            }
            return .success(
                BoolArray(
                    uncheckedBits: bits, validity: lhs.validity.and(r.validity, count: n), nullability: nullability))
        }
    }

    /// A bitmap of `count` bits computed by `predicate`, specialised per operator so that the inner
    /// loop is branch-free.
    @inlinable
    static func bitmap(_ count: Int, _ predicate: (Int) -> Bool) -> Bitmap {
        let words = (count + 63) / 64
        let buf = Buffer.build(count: words, of: UInt64.self) { out in
            var i = 0
            for w in 0..<words {
                var word: UInt64 = 0
                let end = Swift.min(64, count - i)
                if end == 64 {
                    for b in 0..<64 { word |= (predicate(i + b) ? 1 : 0) << UInt64(b) }
                } else {
                    for b in 0..<end { word |= (predicate(i + b) ? 1 : 0) << UInt64(b) }
                }
                out[w] = word
                i += 64
            }
        }
        return Bitmap(uncheckedBuffer: buf, offset: 0, count: count)
    }
}
