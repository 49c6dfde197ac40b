/// Kernels that push an element-wise function through a dictionary or run-end child: the function
/// runs once per distinct value (or run) instead of once per row, and the codes or ends are kept.
///
/// They apply when every other argument is a constant. If the function fails on the values (an
/// overflow on a dictionary value no row uses, say), the kernel declines, so that the error — or the
/// absence of one — is exactly what decoding first would give.
enum ScalarKernels {
    static let functions = [ArithmeticFunction.id, NegateFunction.id, CastFunction.id, LikeFunction.id, NotFunction.id]

    static var all: [ExecuteParentKernel] {
        functions.flatMap { fn in
            [
                ExecuteParentKernel("\(fn.name) over dictionary values", parent: fn, child: DictArray.id) {
                    parent, child, slot, ctx in
                    guard let d = child as? DictArray, let values = try onValues(parent, slot, d.values, ctx) else {
                        return nil
                    }
                    let result = try DictArray(codes: d.codes, values: values)
                    return result.dtype == parent.dtype ? result : nil
                },
                ExecuteParentKernel("\(fn.name) over run values", parent: fn, child: RunEndArray.id) {
                    parent, child, slot, ctx in
                    guard let re = child as? RunEndArray, let values = try onValues(parent, slot, re.values, ctx) else {
                        return nil
                    }
                    let result = try RunEndArray(ends: re.ends, values: values, offset: re.offset, count: re.count)
                    return result.dtype == parent.dtype ? result : nil
                },
            ]
        }
    }

    /// The parent's function applied to `values` in place of argument `slot`, executed; nil to decline.
    static func onValues(_ parent: any ArrayNode, _ slot: Int, _ values: any ArrayNode, _ ctx: ExecutionCtx) throws
        -> (any ArrayNode)?
    {
        guard let fn = parent as? ScalarFnArray else { return nil }
        var args: [any ArrayNode] = []
        for (i, a) in fn.arguments.enumerated() {
            if i == slot {
                args.append(values)
            } else if let c = a as? ConstantArray {
                args.append(ConstantArray(c.scalar, count: values.count))
            } else {
                return nil
            }
        }
        do {
            return try ctx.execute(ScalarFnArray(fn.function, args))
        } catch {
            return nil
        }
    }
}
