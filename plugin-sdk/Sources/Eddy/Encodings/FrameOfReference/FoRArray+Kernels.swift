extension FoRArray {
    /// The frame of reference's kernels: compare its child with the shifted constant, filter and slice
    /// its child (or gather from packed values), aggregates shifted from its child's.
    static func register(into registrar: PluginRegistrar) {
        registrar.compareWithConstant(on: FoRArray.self, name: "compare shifted by reference") {
            f, op, scalar, resultType, _ in
            guard !scalar.isNull, let childType = f.child.dtype.ptype else { return nil }
            let needle: Int128
            switch scalar.value {
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
                Scalar(value, .primitive(childType, scalar.dtype.nullability)),
                count: f.count)
            let node = try CompareFunction.make(f.child, newOp, constant)
            return node.dtype == resultType ? node : nil
        }
        registrar.filterNode(on: FoRArray.self, name: "filter frame-of-reference over packed values") {
            f, filter, _ in
            // One pass: unpack only the kept values and add the reference as they are written.
            guard let bp = f.child as? BitPackedArray, bp.patchRange.isEmpty, case .allValid = bp.validity,
                let ptype = f.dtype.ptype, let mask = filter.maskBits, mask.count == f.count,
                mask.trueCount == filter.count
            else { return nil }
            return ptype.visitIntegerUnchecked(
                GatherPackedWithReference(
                    array: bp, referenceBits: f.referenceBits, mask: mask, resultCount: filter.count,
                    nullability: f.dtype.nullability))
        }
        registrar.filterNode(on: FoRArray.self, name: "filter frame-of-reference child") { f, filter, _ in
            try FoRArray(reference: f.reference, child: FilterArray(f.child, mask: filter.mask, count: filter.count))
        }
        registrar.slice(on: FoRArray.self, name: "slice frame-of-reference child") { f, range, _ in
            try FoRArray(
                reference: f.reference, child: SliceArray(f.child, start: range.lowerBound, length: range.count))
        }
        registrar.fusedAggregates(on: FoRArray.self)
    }
}

/// Writes `reference + unpacked value` for each row a mask keeps (no patches, no nulls: checked by
/// the kernel). Stops at `resultCount` values whatever the mask holds.
private struct GatherPackedWithReference: IntegerPTypeVisitor {
    let array: BitPackedArray
    let referenceBits: UInt64
    let mask: Bitmap
    let resultCount: Int
    let nullability: Nullability

    func visit<T: NativeInteger>(_ type: T.Type) -> any ArrayNode {
        let a = array
        let reference = referenceBits
        let out = a.withPackedValues { packed in
            Buffer.build(count: resultCount, of: T.self) { dst in
                let start = a.offset
                var o = 0
                mask.forEachSetBit { i in
                    guard o < resultCount else { return }
                    dst[o] = T(truncatingIfNeeded: reference &+ packed.value(at: start &+ i))
                    o &+= 1
                }
                // The kernel checked that the mask keeps exactly resultCount rows; fill defensively.
                while o < resultCount {
                    dst[o] = 0
                    o &+= 1
                }
            }
        }
        return PrimitiveArray(
            uncheckedPType: T.ptype, buffer: out, count: resultCount, validity: .allValid, nullability: nullability)
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
