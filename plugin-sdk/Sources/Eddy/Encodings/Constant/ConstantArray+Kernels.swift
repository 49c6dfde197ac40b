extension ConstantArray {
    static var kernels: [ExecuteParentKernel] {
        [
            ExecuteParentKernel("compare with a constant", parent: CompareFunction.id, child: id) {
                parent, child, slot, _ in
                guard let c = child as? ConstantArray, let fn = parent as? ScalarFnArray, fn.arguments.count == 2,
                    let op = KernelSupport.compareOp(parent, slot)
                else { return nil }
                let other = fn.arguments[1 - slot]
                guard other.isColumnar else { return nil }
                return try Compare.evaluate(other, op.swapped, c, count: c.count)
            }
        ]
    }
}
