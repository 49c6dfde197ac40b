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
                if let codes = dict.codes as? PrimitiveArray, let fast = mapCodes(codes, lut, parent.dtype) { return fast }
                return try DictArray(codes: dict.codes, values: lut)
            },
            ExecuteParentKernel("filter dictionary codes", parent: FilterArray.id, child: id) { parent, child, slot, _ in
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

    /// Looks each code up in the per-value results, building the bitmap a word at a time.
    /// Nil when the fast path does not apply (nulls among codes or results, or wide codes).
    static func mapCodes(_ codes: PrimitiveArray, _ lut: BoolArray, _ dtype: DType) -> (any ArrayNode)? {
        guard case .allValid = codes.validity, case .allValid = lut.validity else { return nil }
        let table = lut.bits.bools
        let trueCodes = table.indices.filter { table[$0] }
        switch codes.ptype {
        case .uint8: return codes.withValues(UInt8.self) { lookup($0, table, trueCodes, dtype) }
        case .uint16: return codes.withValues(UInt16.self) { lookup($0, table, trueCodes, dtype) }
        case .uint32: return codes.withValues(UInt32.self) { lookup($0, table, trueCodes, dtype) }
        default: return nil
        }
    }

    static func lookup<C: NativeInteger & UnsignedInteger>(
        _ codes: UnsafeBufferPointer<C>, _ table: [Bool], _ trueCodes: [Int], _ dtype: DType
    ) -> (any ArrayNode)? {
        let n = codes.count
        let nullability = dtype.nullability
        // Every code must index the table; a bad code falls back to the checked path.
        if trueCodes.isEmpty { return ConstantArray(Scalar(.bool(false), dtype), count: n).checkedCodes(codes, table.count) }
        if trueCodes.count == table.count { return ConstantArray(Scalar(.bool(true), dtype), count: n).checkedCodes(codes, table.count) }
        var maxCode: C = 0
        let bits: Bitmap
        if trueCodes.count == 1 {
            let k = C(truncatingIfNeeded: trueCodes[0])
            bits = Compare.bitmap(n) { i in
                let c = codes[i]
                maxCode = Swift.max(maxCode, c)
                return c == k
            }
        } else {
            let bytes = table.map { $0 ? UInt8(1) : 0 }
            bits = bytes.withUnsafeBufferPointer { t in
                Compare.bitmap(n) { i in
                    let c = codes[i]
                    maxCode = Swift.max(maxCode, c)
                    return Int(c) < t.count ? t[Int(c)] != 0 : false
                }
            }
        }
        if n > 0 && Int(maxCode) >= table.count { return nil }
        return BoolArray(bits: bits, nullability: nullability)
    }
}

extension ConstantArray {
    /// Self, if every code indexes a table of `size` entries; nil otherwise.
    fileprivate func checkedCodes<C: NativeInteger>(_ codes: UnsafeBufferPointer<C>, _ size: Int) -> (any ArrayNode)? {
        var m: C = 0
        for c in codes { m = Swift.max(m, c) }
        return codes.isEmpty || Int(m) < size ? self : nil
    }
}
