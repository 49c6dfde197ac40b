/// Which side of a two-argument function the encoded array is on.
public enum OperandSide: Sendable, Hashable {
    /// `array op scalar`
    case left
    /// `scalar op array`
    case right
}

/// A compiled `like` pattern (`%` any run of characters, `_` exactly one), with its negation.
public struct LikePattern: Sendable, CustomStringConvertible {
    /// The pattern as written.
    public let pattern: String
    /// True for `not like`.
    public let negated: Bool
    let matcher: LikeMatcher

    /// Compiles `pattern`.
    public init(_ pattern: String, negated: Bool = false) {
        self.pattern = pattern
        self.negated = negated
        matcher = LikeMatcher(pattern)
    }

    /// Whether `value` satisfies the predicate (`like`, or `not like` when negated).
    public func matches(_ value: String) -> Bool {
        var s = value
        return s.withUTF8 { matcher.matches(UnsafeRawBufferPointer($0)) } != negated
    }

    /// Whether the UTF-8 bytes satisfy the predicate (`like`, or `not like` when negated).
    public func matches(utf8 bytes: UnsafeRawBufferPointer) -> Bool { matcher.matches(bytes) != negated }

    public var description: String { (negated ? "not like " : "like ") + "'\(pattern)'" }
}

/// The typed registrations: each finds the operand of encoding `E`, the operator and the constant,
/// declines on anything else, and keeps the result contract (the parent's length and dtype), so that
/// the body is only the kernel's own work. A body returns nil to decline (the next kernel, or the
/// engine's decode-then-compute path, runs instead).
extension PluginRegistrar {
    /// `array op scalar` over an array of encoding `E`, with the operator already swapped when the
    /// constant was on the left. A null constant declines without calling `body` (the engine gives the
    /// all-null result, or the error a malformed child raises).
    /// A `BoolArray` result takes the parent's nullability.
    public func compare<E: Encoding>(
        on encoding: E.Type, name: String? = nil,
        _ body:
            @escaping @Sendable (_ array: E, _ op: CompareOperator, _ scalar: Scalar, _ ctx: ExecutionCtx) throws
            -> (any ArrayNode)?
    ) {
        compareWithConstant(on: E.self, name: name ?? "compare on \(E.id.name)") { array, op, scalar, resultType, ctx in
            if scalar.isNull { return nil }  // the engine's own path: all null, or the child's error
            return try body(array, op, scalar, ctx).map { KernelResult.conform($0, to: resultType) }
        }
    }

    /// `array like pattern` (or `not like`) over an array of encoding `E`.
    public func like<E: Encoding>(
        on encoding: E.Type, name: String? = nil,
        _ body: @escaping @Sendable (_ array: E, _ pattern: LikePattern, _ ctx: ExecutionCtx) throws -> (any ArrayNode)?
    ) {
        register(name ?? "like on \(E.id.name)", parent: LikeFunction.id, child: E.id) { parent, child, slot, ctx in
            guard slot == 0, let array = child as? E, let fn = parent as? ScalarFnArray,
                let like = fn.function as? LikeFunction
            else { return nil }
            return try body(array, LikePattern(like.pattern, negated: like.negated), ctx)
                .map { KernelResult.conform($0, to: parent.dtype) }
        }
    }

    /// `array op scalar` (side `.left`) or `scalar op array` (side `.right`) over an array of
    /// encoding `E`; the result must have `resultType`. A null constant declines without calling `body`.
    public func arithmetic<E: Encoding>(
        on encoding: E.Type, name: String? = nil,
        _ body:
            @escaping @Sendable (
                _ array: E, _ op: ArithmeticOperator, _ scalar: Scalar, _ side: OperandSide,
                _ resultType: DType, _ ctx: ExecutionCtx
            ) throws -> (any ArrayNode)?
    ) {
        register(name ?? "arithmetic on \(E.id.name)", parent: ArithmeticFunction.id, child: E.id) {
            parent, child, slot, ctx in
            guard let array = child as? E, let call = BinaryCall(parent, slot),
                let fn = call.function as? ArithmeticFunction
            else { return nil }
            if call.scalar.isNull { return nil }  // the engine's own path: all null, or the child's error
            return try body(array, fn.op, call.scalar, call.side, parent.dtype, ctx)
                .map { KernelResult.conform($0, to: parent.dtype) }
        }
    }

    /// `cast(array as target)` over an array of encoding `E`; the result must have dtype `target`.
    public func cast<E: Encoding>(
        on encoding: E.Type, name: String? = nil,
        _ body: @escaping @Sendable (_ array: E, _ target: DType, _ ctx: ExecutionCtx) throws -> (any ArrayNode)?
    ) {
        register(name ?? "cast on \(E.id.name)", parent: CastFunction.id, child: E.id) { parent, child, slot, ctx in
            guard slot == 0, let array = child as? E, let fn = parent as? ScalarFnArray, fn.function is CastFunction
            else { return nil }
            return try body(array, parent.dtype, ctx).map { KernelResult.conform($0, to: parent.dtype) }
        }
    }

    /// An aggregate of `kind` over a whole array of encoding `E`: `body` returns the value (of the
    /// aggregate's result type, ``AggregateFunction/returnType(_:)``; `.null` for no value) or nil to
    /// decline. The SDK wraps it in the one-row result.
    public func aggregate<E: Encoding>(
        _ kind: AggregateFunction.Kind, on encoding: E.Type, name: String? = nil,
        _ body: @escaping @Sendable (_ array: E, _ ctx: ExecutionCtx) throws -> ScalarValue?
    ) {
        register(name ?? "\(kind.rawValue) on \(E.id.name)", parent: AggregateFunction(kind).encoding, child: E.id) {
            parent, child, _, ctx in
            guard let array = child as? E, let agg = parent as? AggregateArray, agg.function.kind == kind,
                let value = try body(array, ctx)
            else { return nil }
            guard value.isNull || value.fits(agg.dtype) else {
                throw EddyError(.kernelContract, "\(kind.rawValue) returned \(value), not a value of \(agg.dtype)")
            }
            return ConstantArray(Scalar(value, agg.dtype), count: 1)
        }
    }

    /// Rows of an array of encoding `E` where `mask` is set (a null mask bit drops the row).
    public func filter<E: Encoding>(
        on encoding: E.Type, name: String? = nil,
        _ body: @escaping @Sendable (_ array: E, _ mask: Bitmap, _ ctx: ExecutionCtx) throws -> (any ArrayNode)?
    ) {
        filterNode(on: E.self, name: name ?? "filter on \(E.id.name)") { array, f, ctx in
            guard let mask = try f.maskBits ?? (ctx.execute(f.mask) as? BoolArray)?.trueAndValid else { return nil }
            return try body(array, mask, ctx).map { KernelResult.conform($0, to: f.dtype) }
        }
    }

    /// Rows of an array of encoding `E` at `indices` (integers, executed to a plain array; a null
    /// index gives a null row, an index out of range must be an error).
    public func take<E: Encoding>(
        on encoding: E.Type, name: String? = nil,
        _ body:
            @escaping @Sendable (_ array: E, _ indices: PrimitiveArray, _ ctx: ExecutionCtx) throws -> (any ArrayNode)?
    ) {
        takeNode(on: E.self, name: name ?? "take on \(E.id.name)") { array, t, ctx in
            guard let indices = try ctx.execute(t.indices) as? PrimitiveArray else { return nil }
            return try body(array, indices, ctx).map { KernelResult.conform($0, to: t.dtype) }
        }
    }

    /// Rows `range` of an array of encoding `E` (the range is within the array).
    public func slice<E: Encoding>(
        on encoding: E.Type, name: String? = nil,
        _ body: @escaping @Sendable (_ array: E, _ range: Range<Int>, _ ctx: ExecutionCtx) throws -> (any ArrayNode)?
    ) {
        register(name ?? "slice on \(E.id.name)", parent: SliceArray.id, child: E.id) { parent, child, _, ctx in
            guard let array = child as? E, let s = parent as? SliceArray else { return nil }
            return try body(array, s.start..<(s.start + s.count), ctx).map {
                KernelResult.conform($0, to: parent.dtype)
            }
        }
    }
}

/// Helpers for building results that keep the contract.
public enum KernelResult {
    /// `result` with the nullability of `dtype` when it is a plain bool or primitive array of the same
    /// type that differs only there (a non-nullable result for a nullable parent is common: the
    /// parent is nullable, this input had no nulls). Anything else is returned unchanged, and the
    /// executor checks it.
    public static func conform(_ result: any ArrayNode, to dtype: DType) -> any ArrayNode {
        guard result.dtype != dtype, result.dtype.with(dtype.nullability) == dtype else { return result }
        if let b = result as? BoolArray {
            if dtype.nullability == .nonNullable, !b.validity.isAllValid { return result }
            return BoolArray(uncheckedBits: b.bits, validity: b.validity, nullability: dtype.nullability)
        }
        if let p = result as? PrimitiveArray {
            if dtype.nullability == .nonNullable, !p.validity.isAllValid { return result }
            return PrimitiveArray(
                uncheckedPType: p.ptype, buffer: p.buffer, count: p.count, validity: p.validity,
                nullability: dtype.nullability)
        }
        return result
    }
}
