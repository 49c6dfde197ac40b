extension RunEndArray {
    static var kernels: [ExecuteParentKernel] {
        [
            ExecuteParentKernel("compare over run values", parent: CompareFunction.id, child: id) {
                parent, child, slot, ctx in
                guard let re = child as? RunEndArray, let other = KernelSupport.otherConstant(parent, slot),
                    let op = KernelSupport.compareOp(parent, slot)
                else { return nil }
                let values = try ctx.execute(re.values)
                let onValues = try ctx.execute(
                    Compare.evaluate(values, op, ConstantArray(other.scalar, count: values.count), count: values.count))
                return try RunEndArray(ends: re.ends, values: onValues, offset: re.offset, count: re.count)
            },
            ExecuteParentKernel("filter runs", parent: FilterArray.id, child: id) { parent, child, slot, _ in
                guard slot == 0, let f = parent as? FilterArray, let bits = f.maskBits, let re = child as? RunEndArray,
                    let endsArray = re.ends as? PrimitiveArray, f.count > 0
                else { return nil }
                let ends = endsArray.uncheckedInt64Values()
                var newEnds: [UInt64] = []
                var keptRuns: [UInt32] = []
                var kept = 0
                var run = re.firstRun(ends)
                var rowStart = 0
                while rowStart < re.count {
                    let rowEnd = Swift.min(Int(ends[run]) - re.offset, re.count)
                    let n = countSetBits(bits, rowStart, rowEnd)
                    if n > 0 {
                        kept += n
                        newEnds.append(UInt64(kept))
                        keptRuns.append(UInt32(run))
                    }
                    rowStart = rowEnd
                    run += 1
                }
                return try RunEndArray(
                    ends: PrimitiveArray(newEnds),
                    values: TakeArray(re.values, indices: PrimitiveArray(keptRuns)))
            },
            ExecuteParentKernel("take through runs", parent: TakeArray.id, child: id) { parent, child, slot, _ in
                guard slot == 0, let t = parent as? TakeArray, let idx = t.indices as? PrimitiveArray,
                    let re = child as? RunEndArray, let endsArray = re.ends as? PrimitiveArray
                else { return nil }
                let ends = endsArray.uncheckedInt64Values()
                let positions = idx.int128Values()
                var runs = [UInt32](repeating: 0, count: positions.count)
                for (k, p) in positions.enumerated() where idx.validity.isValid(k) {
                    guard p >= 0 && p < re.count else {
                        throw EddyError(
                            .outOfBounds, "take index \(p) at position \(k) is out of bounds for length \(re.count)")
                    }
                    runs[k] = UInt32(RunEndArray.search(ends, Int64(p) + Int64(re.offset)))
                }
                let runIndices = PrimitiveArray(
                    uncheckedPType: .uint32, buffer: Buffer(copying: runs), count: runs.count,
                    validity: idx.validity, nullability: idx.dtype.nullability)
                return try TakeArray(re.values, indices: runIndices)
            },
            ExecuteParentKernel("slice runs by binary search", parent: SliceArray.id, child: id) {
                parent, child, _, _ in
                guard let s = parent as? SliceArray, let re = child as? RunEndArray, s.count > 0,
                    let endsArray = re.ends as? PrimitiveArray
                else { return nil }
                let ends = endsArray.uncheckedInt64Values()
                let first = RunEndArray.search(ends, Int64(re.offset + s.start))
                let last = RunEndArray.search(ends, Int64(re.offset + s.start + s.count - 1))
                let m = last - first + 1
                return try RunEndArray(
                    ends: SliceArray(re.ends, start: first, length: m).reduce() ?? re.ends,
                    values: SliceArray(re.values, start: first, length: m),
                    offset: re.offset + s.start, count: s.count)
            },
        ]
    }
}

/// Number of set bits in `bits[start ..< end]`.
func countSetBits(_ bits: Bitmap, _ start: Int, _ end: Int) -> Int {
    var n = 0
    var i = start
    while i < end {
        let take = Swift.min(64, end - i)
        var w = bits.word(at: i)
        if take < 64 { w &= (UInt64(1) << UInt64(take)) - 1 }
        n += w.nonzeroBitCount
        i += take
    }
    return n
}
