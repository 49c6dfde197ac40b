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
            ExecuteParentKernel("filter frame-of-reference over packed values", parent: FilterArray.id, child: id) {
                parent, child, slot, _ in
                // One pass: unpack only the kept values and add the reference as they are written.
                guard slot == 0, let filter = parent as? FilterArray, let f = child as? FoRArray,
                    let bp = f.child as? BitPackedArray, bp.patchRange.isEmpty, case .allValid = bp.validity,
                    let ptype = f.dtype.ptype, let mask = filter.maskBits, mask.count == f.count,
                    mask.trueCount == filter.count
                else { return nil }
                return ptype.visitIntegerUnchecked(
                    GatherPackedWithReference(
                        array: bp, referenceBits: f.referenceBits, mask: mask, resultCount: filter.count,
                        nullability: f.dtype.nullability))
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
        let out = withExtendedLifetime(a.packed) {
            Buffer.build(count: resultCount, of: T.self) { dst in
                let words = a.packed.baseAddress.assumingMemoryBound(to: UInt64.self)
                let bytes = a.packed.baseAddress
                let byteCount = a.packed.byteCount
                let width = a.bitWidth
                let valueMask: UInt64 = width >= 64 ? ~0 : (1 << UInt64(width)) &- 1
                let start = a.offset
                let reference = referenceBits
                var o = 0
                // A value of up to 57 bits lies within the 8 bytes from its first byte: one unaligned
                // load and a shift, no branch on whether it straddles two words (except near the end).
                let fast = width <= 57
                mask.forEachSetBit { i in
                    guard o < resultCount else { return }
                    let position = start &+ i
                    let bit = position &* width
                    let byte = bit >> 3
                    let v: UInt64
                    if fast && byte &+ 8 <= byteCount {
                        v = (bytes.loadUnaligned(fromByteOffset: byte, as: UInt64.self) >> UInt64(bit & 7)) & valueMask
                    } else {
                        v = BitPackedArray.unpack(words, width, position)
                    }
                    dst[o] = T(truncatingIfNeeded: reference &+ v)
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
