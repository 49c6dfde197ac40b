internal import EddyKernelsC

extension DictArray {
    static var kernels: [ExecuteParentKernel] {
        [
            ExecuteParentKernel("compare over dictionary values", parent: CompareFunction.id, child: id) {
                parent, child, slot, ctx in
                guard let dict = child as? DictArray, let other = KernelSupport.otherConstant(parent, slot),
                    let op = KernelSupport.compareOp(parent, slot)
                else { return nil }
                let values = try ctx.execute(dict.values)
                let onValues = try ctx.execute(
                    Compare.evaluate(values, op, ConstantArray(other.scalar, count: values.count), count: values.count))
                guard let lut = onValues as? BoolArray else { return nil }
                // Codes are usually narrow and bit-packed: unpacking them is cheap next to a per-row lookup.
                if let codes = try ctx.execute(dict.codes) as? PrimitiveArray,
                    let fast = mapCodes(codes, lut, parent.dtype)
                {
                    return fast
                }
                return try DictArray(codes: dict.codes, values: lut)
            },
            ExecuteParentKernel("filter dictionary codes", parent: FilterArray.id, child: id) {
                parent, child, slot, _ in
                guard slot == 0, let f = parent as? FilterArray, let d = child as? DictArray else { return nil }
                return try DictArray(codes: FilterArray(d.codes, mask: f.mask, count: f.count), values: d.values)
            },
            ExecuteParentKernel("take dictionary codes", parent: TakeArray.id, child: id) { parent, child, slot, _ in
                guard slot == 0, let t = parent as? TakeArray, let d = child as? DictArray else { return nil }
                return try DictArray(codes: TakeArray(d.codes, indices: t.indices), values: d.values)
            },
            ExecuteParentKernel("slice dictionary codes", parent: SliceArray.id, child: id) { parent, child, _, _ in
                guard let s = parent as? SliceArray, let d = child as? DictArray else { return nil }
                return try DictArray(codes: SliceArray(d.codes, start: s.start, length: s.count), values: d.values)
            },
        ]
    }

    /// Looks each code up in the per-value results, writing the bitmap a word at a time (with AVX2
    /// when the CPU has it). Null codes give null rows: the codes' validity is the result's (the code
    /// stored in a null row is looked up too, so it must lie within the values like any other: Parquet
    /// chunks hold 0 there). Nil when the fast path does not apply: nulls among the results, codes
    /// that are not unsigned, or a code outside the values (left to the checked path).
    static func mapCodes(_ codes: PrimitiveArray, _ lut: BoolArray, _ dtype: DType) -> (any ArrayNode)? {
        guard case .allValid = lut.validity else { return nil }
        switch codes.validity {
        case .allValid: break
        case .allInvalid: return nil
        case .bitmap: guard dtype.nullability == .nullable else { return nil }
        }
        let n = codes.count
        if n == 0 {
            return BoolArray(uncheckedBits: Bitmap(repeating: false, count: 0), nullability: dtype.nullability)
        }
        let bits = lut.bits
        // Count the true values a word at a time; the byte table is only needed for several.
        var trueCount = 0
        var lastTrue = 0
        var i = 0
        while i < bits.count {
            let w = bits.word(at: i)
            if w != 0 {
                trueCount += w.nonzeroBitCount
                lastTrue = i + 63 - w.leadingZeroBitCount
            }
            i += 64
        }
        let table: [UInt8] =
            trueCount == 1
            ? []
            : [UInt8](unsafeUninitializedCapacity: bits.count) { t, initialized in
                var i = 0
                while i < bits.count {
                    var w = bits.word(at: i)
                    for b in 0..<Swift.min(64, bits.count - i) {
                        t[i + b] = UInt8(truncatingIfNeeded: w & 1)
                        w >>= 1
                    }
                    i += 64
                }
                initialized = bits.count
            }
        let tableCount = bits.count
        let words = (n + 63) / 64
        let storage = BufferStorage(uninitializedByteCount: words * 8)
        let out = storage.pointer.bindMemory(to: UInt64.self, capacity: words)
        let single = trueCount == 1
        let k = lastTrue
        let maxCode: Int? = table.withUnsafeBufferPointer { t in
            switch codes.ptype {
            case .uint8:
                codes.withValuesUnchecked(UInt8.self) { c in
                    Int(
                        single
                            ? eddy_eq_u8(c.baseAddress, n, UInt8(truncatingIfNeeded: k), out)
                            : eddy_lut_u8(c.baseAddress, n, t.baseAddress, t.count, out))
                }
            case .uint16:
                codes.withValuesUnchecked(UInt16.self) { c in
                    Int(
                        single
                            ? eddy_eq_u16(c.baseAddress, n, UInt16(truncatingIfNeeded: k), out)
                            : eddy_lut_u16(c.baseAddress, n, t.baseAddress, t.count, out))
                }
            case .uint32:
                codes.withValuesUnchecked(UInt32.self) { c in
                    Int(
                        single
                            ? eddy_eq_u32(c.baseAddress, n, UInt32(truncatingIfNeeded: k), out)
                            : eddy_lut_u32(c.baseAddress, n, t.baseAddress, t.count, out))
                }
            default: nil
            }
        }
        guard let maxCode, maxCode < tableCount else { return nil }
        let result = Bitmap(
            uncheckedBuffer: Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: words * 8), offset: 0, count: n
        )
        return BoolArray(uncheckedBits: result, validity: codes.validity, nullability: dtype.nullability)
    }
}

extension DictArray {
    /// A per-value result mapped back to the rows: row `i` is `perValue[codes[i]]`. Compute a predicate
    /// once per distinct value (`perValue` has one entry per dictionary value), then call this.
    ///
    /// Null where the code is null or the value's result is null; the result's nullability is that of
    /// the dictionary and `perValue` together. Word-at-a-time (with AVX2 when the CPU has it) when codes
    /// and results have no nulls.
    /// - Parameters:
    ///   - perValue: one result per dictionary value, in value order.
    ///   - ctx: the context the codes are executed in.
    /// - Throws: ``EddyError/Code/outOfBounds`` for a code past `perValue`, and what executing the codes throws.
    public func mapCodes(through perValue: BoolArray, _ ctx: ExecutionCtx) throws -> BoolArray {
        let nullability = dtype.nullability | perValue.dtype.nullability
        guard let codes = try ctx.execute(self.codes) as? PrimitiveArray else {
            throw EddyError(.typeMismatch, "dictionary codes did not execute to integers")
        }
        let result =
            try DictArray.mapCodes(codes, perValue, .bool(nullability)) ?? Canonical.take(perValue, indices: codes)
        guard let bools = KernelResult.conform(result, to: .bool(nullability)) as? BoolArray,
            bools.dtype == .bool(nullability)
        else {
            throw EddyError(.typeMismatch, "mapping codes gave \(result.dtype), expected \(DType.bool(nullability))")
        }
        return bools
    }
}
