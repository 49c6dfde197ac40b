/// The typed registrations' engine-side shapes: what the built-in kernels need beyond the public forms
/// of `TypedKernels.swift`, which are built on them. Each finds the operand of encoding `E` and the
/// parts of the parent its body uses, and declines on anything else; unlike the public forms they
/// leave the parent's mask, indices and null constants to the body, and do not adjust the result's
/// nullability (a built-in returns the parent's exact dtype).
extension PluginRegistrar {
    /// `array op scalar` over an array of encoding `E`, with the operator already swapped when the
    /// constant was on the left. The constant may be null; `resultType` is the parent's dtype.
    func compareWithConstant<E: Encoding>(
        on encoding: E.Type, name: String,
        _ body:
            @escaping @Sendable (
                _ array: E, _ op: CompareOperator, _ scalar: Scalar, _ resultType: DType, _ ctx: ExecutionCtx
            ) throws -> (any ArrayNode)?
    ) {
        register(name, parent: CompareFunction.id, child: E.id) { parent, child, slot, ctx in
            guard let array = child as? E, let call = BinaryCall(parent, slot),
                let fn = call.function as? CompareFunction
            else { return nil }
            return try body(array, call.side == .left ? fn.op : fn.op.swapped, call.scalar, parent.dtype, ctx)
        }
    }

    /// `array op other` for a two-argument compare whatever the other argument is, with the operator
    /// seen with the array on the left.
    func compareWithArray<E: Encoding>(
        on encoding: E.Type, name: String,
        _ body:
            @escaping @Sendable (_ array: E, _ op: CompareOperator, _ other: any ArrayNode, _ ctx: ExecutionCtx) throws
            -> (any ArrayNode)?
    ) {
        register(name, parent: CompareFunction.id, child: E.id) { parent, child, slot, ctx in
            guard let array = child as? E, let fn = parent as? ScalarFnArray, fn.arguments.count == 2,
                slot == 0 || slot == 1, let compare = fn.function as? CompareFunction
            else { return nil }
            return try body(array, slot == 0 ? compare.op : compare.op.swapped, fn.arguments[1 - slot], ctx)
        }
    }

    /// The filter node over an array of encoding `E` (its first child): the body reads the mask as it
    /// is (``FilterArray/maskBits`` is nil until the mask is a plain bool array) or pushes it down.
    func filterNode<E: Encoding>(
        on encoding: E.Type, name: String,
        _ body: @escaping @Sendable (_ array: E, _ filter: FilterArray, _ ctx: ExecutionCtx) throws -> (any ArrayNode)?
    ) {
        firstChildNode(FilterArray.self, on: encoding, name: name, body)
    }

    /// The take node over an array of encoding `E` (its first child): the body reads the indices as
    /// they are, or pushes them down.
    func takeNode<E: Encoding>(
        on encoding: E.Type, name: String,
        _ body: @escaping @Sendable (_ array: E, _ take: TakeArray, _ ctx: ExecutionCtx) throws -> (any ArrayNode)?
    ) {
        firstChildNode(TakeArray.self, on: encoding, name: name, body)
    }

    /// A node of type `P` over an array of encoding `E` as its first child, both cast for the body: the one
    /// shape behind ``filterNode(on:name:_:)`` and ``takeNode(on:name:_:)``.
    private func firstChildNode<P: Encoding, E: Encoding>(
        _ node: P.Type, on encoding: E.Type, name: String,
        _ body: @escaping @Sendable (_ array: E, _ node: P, _ ctx: ExecutionCtx) throws -> (any ArrayNode)?
    ) {
        register(name, parent: P.id, child: E.id) { parent, child, slot, ctx in
            guard slot == 0, let array = child as? E, let typed = parent as? P else { return nil }
            return try body(array, typed, ctx)
        }
    }

    /// An element-wise scalar function (``ElementwiseCall/functions``) over an array of encoding `E`
    /// whose other arguments are constants: the body applies the call to the encoding's distinct values.
    func elementwise<E: Encoding>(
        _ function: EncodingID, on encoding: E.Type, name: String,
        _ body:
            @escaping @Sendable (_ array: E, _ call: ElementwiseCall, _ ctx: ExecutionCtx) throws -> (any ArrayNode)?
    ) {
        register(name, parent: function, child: E.id) { parent, child, slot, ctx in
            guard let array = child as? E, let node = parent as? ScalarFnArray else { return nil }
            return try body(array, ElementwiseCall(node: node, slot: slot), ctx)
        }
    }

    /// Every aggregate but `count(*)` over an array of encoding `E`, named `KIND over ENCODING`, from
    /// the partial ``AggregatePartial/fused(_:_:order:)`` computes on the encoding's structure.
    func fusedAggregates<E: Encoding>(on encoding: E.Type) {
        for kind in AggregateFunction.Kind.allCases where kind != .countAll {
            aggregate(kind, on: E.self, name: "\(kind.rawValue) over \(E.id.name)") { array, ctx in
                // The result contract: a float sum is the doubles added one by one in row order.
                // Weighing a value by its count, or adding chunks' sums, rounds differently; and a
                // dictionary's values are not in row order, which decides between -0.0 and 0.0 for
                // min and max. Those decode and scan instead.
                if array.dtype.ptype?.isFloat == true, kind == .sum || kind == .mean || array is DictArray {
                    return nil
                }
                let partial = try AggregatePartial.fused(array, ctx, order: kind == .min || kind == .max)
                return try AggregateFunction(kind).finish(partial, input: array.dtype).value
            }
        }
    }
}

/// An element-wise scalar function with the encoded array in argument `slot`: applied once per
/// distinct value (or run) instead of once per row, the codes or ends being kept.
///
/// If the function fails on the values (an overflow on a dictionary value no row uses, say),
/// ``applied(to:_:)`` gives nil and the kernel declines, so that the error — or the absence of
/// one — is exactly what decoding first would give.
struct ElementwiseCall {
    /// The functions whose result at a row depends on that row's arguments alone.
    static let functions = [ArithmeticFunction.id, NegateFunction.id, CastFunction.id, LikeFunction.id, NotFunction.id]

    let node: ScalarFnArray
    let slot: Int

    /// The parent's dtype: what the kernel's result must have.
    var resultType: DType { node.dtype }

    /// The function applied to `values` in place of argument `slot`, every other argument a constant
    /// stretched to their length, executed; nil to decline (another argument is not a constant, or the
    /// function failed on the values).
    func applied(to values: any ArrayNode, _ ctx: ExecutionCtx) throws -> (any ArrayNode)? {
        var args: [any ArrayNode] = []
        for (i, a) in node.arguments.enumerated() {
            if i == slot {
                args.append(values)
            } else if let c = a as? ConstantArray {
                args.append(ConstantArray(c.scalar, count: values.count))
            } else {
                return nil
            }
        }
        do {
            return try ctx.execute(ScalarFnArray(node.function, args))
        } catch {
            return nil
        }
    }
}
