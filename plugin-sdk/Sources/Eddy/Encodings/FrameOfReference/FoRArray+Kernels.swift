extension FoRArray {
    static var kernels: [ExecuteParentKernel] {
        [
            ExecuteParentKernel("compare shifted by reference", parent: CompareFunction.id, child: id) {
                parent, child, slot, _ in
                guard let f = child as? FoRArray, let other = KernelSupport.otherConstant(parent, slot),
                    let op = KernelSupport.compareOp(parent, slot), !other.scalar.isNull,
                    let childType = f.child.dtype.ptype
                else { return nil }
                let needle: Int128
                switch other.scalar.value {
                case .int(let v): needle = Int128(v)
                case .uint(let v): needle = Int128(v)
                default: return nil
                }
                let ref = f.reference.value.asInt128
                let shifted = needle - ref
                let (lo, hi) = childType.int128Range
                // Inside the child's range, compare the child with the shifted constant; outside it, every
                // value sits on one side of the constant, which a compare against the range's edge expresses
                // while keeping the child's nulls.
                let (newOp, bound): (CompareOperator, Int128)
                if shifted < lo {
                    switch op {
                    case .eq, .lt, .le: (newOp, bound) = (.lt, lo)  // never true
                    case .ne, .gt, .ge: (newOp, bound) = (.ge, lo)  // always true
                    }
                } else if shifted > hi {
                    switch op {
                    case .eq, .gt, .ge: (newOp, bound) = (.gt, hi)  // never true
                    case .ne, .lt, .le: (newOp, bound) = (.le, hi)  // always true
                    }
                } else {
                    (newOp, bound) = (op, shifted)
                }
                let value: ScalarValue = childType.isSignedInteger ? .int(Int64(bound)) : .uint(UInt64(bound))
                let constant = ConstantArray(
                    Scalar(value, .primitive(childType, other.scalar.dtype.nullability)),
                    count: f.count)
                let node = try CompareFunction.make(f.child, newOp, constant)
                return node.dtype == parent.dtype ? node : nil
            },
            ExecuteParentKernel("filter frame-of-reference child", parent: FilterArray.id, child: id) {
                parent, child, slot, _ in
                guard slot == 0, let filter = parent as? FilterArray, let f = child as? FoRArray else { return nil }
                return try FoRArray(
                    reference: f.reference,
                    child: FilterArray(f.child, mask: filter.mask, count: filter.count))
            },
            ExecuteParentKernel("slice frame-of-reference child", parent: SliceArray.id, child: id) {
                parent, child, _, _ in
                guard let s = parent as? SliceArray, let f = child as? FoRArray else { return nil }
                return try FoRArray(reference: f.reference, child: SliceArray(f.child, start: s.start, length: s.count))
            },
        ]
    }
}

extension ScalarValue {
    /// An integer value widened to `Int128`; zero for anything else.
    var asInt128: Int128 {
        switch self {
        case .int(let v): Int128(v)
        case .uint(let v): Int128(v)
        default: 0
        }
    }
}

extension PType {
    /// The smallest and largest value of an integer ptype.
    var int128Range: (Int128, Int128) {
        switch self {
        case .int8: (Int128(Int8.min), Int128(Int8.max))
        case .int16: (Int128(Int16.min), Int128(Int16.max))
        case .int32: (Int128(Int32.min), Int128(Int32.max))
        case .int64: (Int128(Int64.min), Int128(Int64.max))
        case .uint8: (0, Int128(UInt8.max))
        case .uint16: (0, Int128(UInt16.max))
        case .uint32: (0, Int128(UInt32.max))
        case .uint64: (0, Int128(UInt64.max))
        case .float32, .float64: (0, 0)
        }
    }
}
