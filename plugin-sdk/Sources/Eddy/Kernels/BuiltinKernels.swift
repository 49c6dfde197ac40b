/// The engine's own kernels and rules, registered into every new ``Session``.
enum BuiltinKernels {
    static func register(into registry: ArrayKernels) {
        var kernels: [ExecuteParentKernel] = []
        kernels += CanonicalKernels.all
        kernels += DictArray.kernels
        kernels += RunEndArray.kernels
        kernels += ConstantArray.kernels
        kernels += FoRArray.kernels
        kernels += BitPackedArray.kernels
        kernels += ChunkedArray.kernels
        kernels += AggregateFunction.kernels
        kernels += ScalarKernels.all
        registry.register(kernels: kernels, rules: [])
    }
}

/// Helpers shared by kernels over scalar-function parents.
enum KernelSupport {
    /// For a two-argument function node with `child` at `slot`: the other argument as a constant, if it is one.
    static func otherConstant(_ parent: any ArrayNode, _ slot: Int) -> ConstantArray? {
        guard let fn = parent as? ScalarFnArray, fn.arguments.count == 2 else { return nil }
        return fn.arguments[1 - slot] as? ConstantArray
    }

    /// The operator of a compare node, as seen with the child on the left.
    static func compareOp(_ parent: any ArrayNode, _ slot: Int) -> CompareOperator? {
        guard let fn = parent as? ScalarFnArray, let c = fn.function as? CompareFunction else { return nil }
        return slot == 0 ? c.op : c.op.swapped
    }
}

/// Filter and take straight on canonical data (the fast typed paths; the nodes' own `execute` is
/// the element-by-element reference).
enum CanonicalKernels {
    static let canonicalIDs = [PrimitiveArray.id, BoolArray.id, VarBinArray.id, NullArray.id, StructArray.id]

    static var all: [ExecuteParentKernel] {
        canonicalIDs.flatMap { id in
            [
                ExecuteParentKernel("filter canonical", parent: FilterArray.id, child: id) { parent, child, slot, _ in
                    guard slot == 0, child.isCanonical, let f = parent as? FilterArray, let bits = f.maskBits else {
                        return nil
                    }
                    return try Canonical.filter(child, mask: bits)
                },
                ExecuteParentKernel("take canonical", parent: TakeArray.id, child: id) { parent, child, slot, _ in
                    guard slot == 0, child.isCanonical, let t = parent as? TakeArray,
                          let idx = t.indices as? PrimitiveArray
                    else { return nil }
                    return try Canonical.take(child, indices: idx)
                },
            ]
        }
    }
}
