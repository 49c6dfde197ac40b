/// Helpers shared by kernels over scalar-function parents (the typed registrations of
/// ``PluginRegistrar`` use ``BinaryCall`` below).
enum KernelSupport {
    /// For a two-argument function node with `child` at `slot`: the other argument as a constant, if it is one.
    static func otherConstant(_ parent: any ArrayNode, _ slot: Int) -> ConstantArray? {
        guard let fn = parent as? ScalarFnArray, fn.arguments.count == 2, slot == 0 || slot == 1 else { return nil }
        return fn.arguments[1 - slot] as? ConstantArray
    }

    /// The operator of a compare node, as seen with the child on the left.
    static func compareOp(_ parent: any ArrayNode, _ slot: Int) -> CompareOperator? {
        guard let fn = parent as? ScalarFnArray, let c = fn.function as? CompareFunction else { return nil }
        return slot == 0 ? c.op : c.op.swapped
    }
}

/// A two-argument scalar function with a constant on the other side of the child.
struct BinaryCall {
    let function: any ScalarFunction
    let scalar: Scalar
    let side: OperandSide

    init?(_ parent: any ArrayNode, _ slot: Int) {
        guard let fn = parent as? ScalarFnArray, fn.arguments.count == 2, slot == 0 || slot == 1,
            let constant = fn.arguments[1 - slot] as? ConstantArray
        else { return nil }
        function = fn.function
        scalar = constant.scalar
        side = slot == 0 ? .left : .right
    }
}
