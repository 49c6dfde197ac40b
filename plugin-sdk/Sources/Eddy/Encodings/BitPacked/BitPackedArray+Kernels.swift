internal import EddyKernelsC

extension BitPackedArray {
    /// The bit-packed kernels: compare without unpacking to a buffer, filter by unpacking only the kept
    /// values, slice as a window.
    static func register(into registrar: PluginRegistrar) {
        registrar.compareWithConstant(on: BitPackedArray.self, name: "compare on packed values") {
            bp, op, scalar, resultType, _ in
            // A signed type packed at its full width stores negative values as their two's complement
            // bits: compared as packed (unsigned), they would sort above the positive ones.
            guard !scalar.isNull, !(bp.ptype.isSignedInteger && bp.bitWidth >= bp.ptype.byteWidth * 8) else {
                return nil
            }
            let needle = scalar.value.asInt128
            let maxPacked: Int128 = bp.bitWidth == 64 ? Int128(UInt64.max) : (Int128(1) << bp.bitWidth) - 1
            let n = bp.count
            let bits: Bitmap
            if needle < 0 || needle > maxPacked {
                // Every packed value lies on one side of the constant.
                let result = op.apply(needle < 0 ? 1 : 0, needle < 0 ? 0 : 1)
                bits = Bitmap(repeating: result, count: n)
            } else {
                bits = bp.compareWords(op, UInt64(needle))
            }
            var out = bits
            let range = bp.patchRange
            if !range.isEmpty, let pv = bp.patchValues {
                let patched = pv.int128Values()
                let words = (n + 63) / 64
                let buf = Buffer.build(count: words, of: UInt64.self) { w in
                    for k in 0..<words { w[k] = bits.word(at: k * 64) }
                    for k in range {
                        let i = bp.patchIndices[k] - bp.offset
                        let r = op.apply(patched[k], needle)
                        if r { w[i >> 6] |= 1 << UInt64(i & 63) } else { w[i >> 6] &= ~(1 << UInt64(i & 63)) }
                    }
                }
                out = Bitmap(uncheckedBuffer: buf, offset: 0, count: n)
            }
            return BoolArray(uncheckedBits: out, validity: bp.validity, nullability: resultType.nullability)
        }
        registrar.filterNode(on: BitPackedArray.self, name: "filter packed values") { bp, f, _ in
            guard let bits = f.maskBits else { return nil }
            return bp.ptype.visitIntegerUnchecked(GatherPacked(array: bp, mask: bits, resultCount: f.count))
        }
        registrar.slice(on: BitPackedArray.self, name: "slice packed window") { bp, range, _ in
            try bp.slice(range.lowerBound, range.count)
        }
    }

    /// Compares every packed value in the window with `needle`, without unpacking to a buffer.
    func compareWords(_ op: CompareOperator, _ needle: UInt64) -> Bitmap {
        compareWords(op, needle, wantMax: false).bits
    }

    /// The window's values are unpacked 1,024 at a time into a scratch block (whole words streamed,
    /// see ``unpackAll(_:_:_:_:into:)``), then compared 64 at a time into the result's words (in C,
    /// four values to an AVX2 instruction). With `wantMax`, also the largest value in the window
    /// (patches not applied), which a dictionary's codes are checked against.
    func compareWords(_ op: CompareOperator, _ needle: UInt64, wantMax: Bool) -> (bits: Bitmap, max: UInt64) {
        let n = count
        let base = offset
        let width = bitWidth
        let words = (n + 63) / 64
        let code: Int32 =
            switch op {
            case .eq: 0
            case .ne: 1
            case .lt: 2
            case .le: 3
            case .gt: 4
            case .ge: 5
            }
        var largest: UInt64 = 0
        let buf = withExtendedLifetime(packed) {
            Buffer.build(count: words, of: UInt64.self) { out in
                guard let o = out.baseAddress else { return }
                let w = packed.baseAddress.assumingMemoryBound(to: UInt64.self)
                withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 1024) { block in
                    guard let values = block.baseAddress else { return }
                    var i = 0
                    while i < n {
                        let length = Swift.min(1024, n &- i)
                        BitPackedArray.unpackAll(
                            w, width, base &+ i, length, into: UnsafeMutableBufferPointer(start: values, count: length))
                        // i is a multiple of 1,024: the block's answers start at a word of their own.
                        let m = eddy_compare_u64(values, length, code, needle, wantMax ? 1 : 0, o + (i >> 6))
                        largest = Swift.max(largest, m)
                        i &+= length
                    }
                }
            }
        }
        return (Bitmap(uncheckedBuffer: buf, offset: 0, count: n), largest)
    }
}

/// The values a mask keeps, taking patched positions from the patches. A mask that keeps one value in
/// eight or more unpacks the window block by block (whole words, see ``BitPackedArray/unpackAll``) and
/// keeps the masked values of each block; a sparser one extracts each kept value alone.
private struct GatherPacked: IntegerPTypeVisitor {
    let array: BitPackedArray
    let mask: Bitmap
    let resultCount: Int

    func visit<T: NativeInteger>(_ type: T.Type) -> any ArrayNode {
        let a = array
        let range = a.patchRange
        let patchValues: [T] = a.patchValues.map { pv in pv.withValuesUnchecked(T.self) { Array($0[range]) } } ?? []
        let patchPositions = Array(a.patchIndices[range])
        let out =
            resultCount >= 64 && resultCount >= a.count / 8
            ? dense(T.self, patchValues: patchValues, patchPositions: patchPositions)
            : sparse(T.self, patchValues: patchValues, patchPositions: patchPositions)
        return PrimitiveArray(
            uncheckedPType: T.ptype, buffer: out, count: resultCount,
            validity: a.validity.filter(mask, resultCount: resultCount),
            nullability: a.dtype.nullability)
    }

    /// Unpacks 1,024 values at a time into a scratch block of `T` (8, 16 or 32 bits a value where they
    /// fit), patches it, then copies the kept ones in C.
    private func dense<T: NativeInteger>(_: T.Type, patchValues: [T], patchPositions: [Int]) -> Buffer {
        let a = array
        let n = Swift.min(a.count, mask.count)
        let base = a.offset
        let width = a.bitWidth
        let mask = mask
        let resultCount = resultCount
        return withExtendedLifetime((a.packed, mask.buffer)) {
            Buffer.build(count: resultCount, of: T.self) { dst in
                let words = a.packed.baseAddress.assumingMemoryBound(to: UInt64.self)
                let maskBytes = mask.buffer.baseAddress.assumingMemoryBound(to: UInt8.self)
                var o = 0
                withUnsafeTemporaryAllocation(of: T.self, capacity: 1024) { block in
                    var p = 0
                    var i = 0
                    while i < n && o < resultCount {
                        let length = Swift.min(1024, n &- i)
                        let values = UnsafeMutableBufferPointer(rebasing: block[0..<length])
                        BitPackedArray.unpackAll(words, width, base &+ i, length, into: values)
                        let start = base &+ i
                        while p < patchPositions.count && patchPositions[p] < start { p &+= 1 }
                        while p < patchPositions.count && patchPositions[p] < start &+ length {
                            values[patchPositions[p] &- start] = patchValues[p]
                            p &+= 1
                        }
                        guard let from = values.baseAddress, let to = dst.baseAddress else { break }
                        o &+= eddy_compress_values(
                            from, Int32(MemoryLayout<T>.size), length, maskBytes, mask.buffer.byteCount,
                            mask.offset &+ i, to + o, resultCount &- o)
                        i &+= length
                    }
                }
                // The kernel checked that the mask keeps exactly resultCount rows; fill defensively.
                while o < resultCount {
                    dst[o] = 0
                    o &+= 1
                }
            }
        }
    }

    /// Extracts each kept value alone.
    private func sparse<T: NativeInteger>(_: T.Type, patchValues: [T], patchPositions: [Int]) -> Buffer {
        let a = array
        return a.withPackedValues { packed in
            Buffer.build(count: resultCount, of: T.self) { dst in
                var o = 0
                var p = 0
                mask.forEachSetBit { i in
                    guard o < resultCount else { return }
                    let position = a.offset &+ i
                    while p < patchPositions.count && patchPositions[p] < position { p += 1 }
                    if p < patchPositions.count && patchPositions[p] == position {
                        dst[o] = patchValues[p]
                    } else {
                        dst[o] = T(truncatingIfNeeded: packed.value(at: position))
                    }
                    o &+= 1
                }
                // The kernel checked that the mask keeps exactly resultCount rows; fill defensively.
                while o < resultCount {
                    dst[o] = 0
                    o &+= 1
                }
            }
        }
    }
}
