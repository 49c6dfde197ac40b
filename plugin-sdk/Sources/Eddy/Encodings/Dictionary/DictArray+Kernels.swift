internal import EddyKernelsC

extension DictArray {
    /// The dictionary's kernels: compare, filter, take and slice on the codes; element-wise functions
    /// and aggregates once per distinct value.
    static func register(into registrar: PluginRegistrar) {
        registrar.compareWithConstant(on: DictArray.self, name: "compare over dictionary values") {
            dict, op, scalar, resultType, ctx in
            guard let lut = try Compare.answers(dict.values, op, scalar, ctx) as? BoolArray else { return nil }
            // Codes are usually narrow and bit-packed: compared as packed when one value answers true,
            // else unpacked (cheap next to a per-row lookup) and looked up.
            if let packed = dict.codes as? BitPackedArray, let fast = comparePacked(packed, lut, resultType) {
                return fast
            }
            if let codes = try ctx.execute(dict.codes) as? PrimitiveArray, let fast = mapCodes(codes, lut, resultType) {
                return fast
            }
            return try DictArray(codes: dict.codes, values: lut)
        }
        registrar.filterNode(on: DictArray.self, name: "filter dictionary codes") { d, f, _ in
            try DictArray(codes: FilterArray(d.codes, mask: f.mask, count: f.count), values: d.values)
        }
        registrar.takeNode(on: DictArray.self, name: "take dictionary codes") { d, t, _ in
            try DictArray(codes: TakeArray(d.codes, indices: t.indices), values: d.values)
        }
        registrar.slice(on: DictArray.self, name: "slice dictionary codes") { d, range, _ in
            try DictArray(codes: SliceArray(d.codes, start: range.lowerBound, length: range.count), values: d.values)
        }
        for function in ElementwiseCall.functions {
            registrar.elementwise(function, on: DictArray.self, name: "\(function.name) over dictionary values") {
                d, call, ctx in
                guard let values = try call.applied(to: d.values, ctx) else { return nil }
                let result = try DictArray(codes: d.codes, values: values)
                return result.dtype == call.resultType ? result : nil
            }
        }
        registrar.fusedAggregates(on: DictArray.self)
    }

    /// Bit-packed codes (no patches in the window) compared with the one code whose value answers
    /// true, as packed: unpacked a block at a time into scratch and compared there, never written out
    /// as an array of codes. Null codes give null rows, as in ``mapCodes(_:_:_:)``; nil when the path
    /// does not apply (results with nulls, several or no true values, codes that are not unsigned,
    /// or a code outside the values).
    static func comparePacked(_ codes: BitPackedArray, _ lut: BoolArray, _ dtype: DType) -> (any ArrayNode)? {
        guard case .allValid = lut.validity, codes.patchRange.isEmpty, codes.count > 0 else { return nil }
        switch codes.ptype {
        case .uint8, .uint16, .uint32: break
        default: return nil
        }
        guard codesMayGiveRows(codes.validity, dtype) else { return nil }
        let (trueCount, k) = trueValues(lut.bits)
        guard trueCount == 1 else { return nil }
        let (bits, maxCode) = codes.compareWords(.eq, UInt64(k), wantMax: true)
        guard maxCode < UInt64(lut.bits.count) else { return nil }
        return BoolArray(uncheckedBits: bits, validity: codes.validity, nullability: dtype.nullability)
    }

    /// Whether codes with `validity` may give the rows of a `dtype` result on the fast paths: null codes
    /// give null rows, so only into a nullable result, and codes that are all null are left to the
    /// checked path.
    static func codesMayGiveRows(_ validity: Validity, _ dtype: DType) -> Bool {
        switch validity {
        case .allValid: true
        case .allInvalid: false
        case .bitmap: dtype.nullability == .nullable
        }
    }

    /// How many of the per-value results are true, and the index of the last true one (0 when none).
    /// Counted a word at a time.
    static func trueValues(_ bits: Bitmap) -> (count: Int, last: Int) {
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
        return (trueCount, lastTrue)
    }

    /// Looks each code up in the per-value results, writing the bitmap a word at a time (with AVX2
    /// when the CPU has it). Null codes give null rows: the codes' validity is the result's (the code
    /// stored in a null row is looked up too, so it must lie within the values like any other: Parquet
    /// chunks hold 0 there). Nil when the fast path does not apply: nulls among the results, codes
    /// that are not unsigned, or a code outside the values (left to the checked path).
    static func mapCodes(_ codes: PrimitiveArray, _ lut: BoolArray, _ dtype: DType) -> (any ArrayNode)? {
        guard case .allValid = lut.validity else { return nil }
        guard codesMayGiveRows(codes.validity, dtype) else { return nil }
        let n = codes.count
        if n == 0 {
            return BoolArray(uncheckedBits: Bitmap(repeating: false, count: 0), nullability: dtype.nullability)
        }
        let bits = lut.bits
        let (trueCount, lastTrue) = trueValues(bits)
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
