extension RunEndArray {
    /// The run-end kernels: compare, element-wise functions and aggregates once per run; filter, take
    /// and slice by runs.
    static func register(into registrar: PluginRegistrar) {
        registrar.compareWithConstant(on: RunEndArray.self, name: "compare over run values") { re, op, scalar, _, ctx in
            let onValues = try Compare.answers(re.values, op, scalar, ctx)
            return try RunEndArray(ends: re.ends, values: onValues, offset: re.offset, count: re.count)
        }
        registrar.filterNode(on: RunEndArray.self, name: "filter runs") { re, f, _ in
            guard let bits = f.maskBits, let endsArray = re.ends as? PrimitiveArray, f.count > 0 else { return nil }
            return try re.filtered(bits, ends: endsArray.uncheckedInt64Values())
        }
        registrar.takeNode(on: RunEndArray.self, name: "take through runs") { re, t, _ in
            guard let idx = t.indices as? PrimitiveArray, let endsArray = re.ends as? PrimitiveArray else { return nil }
            return try re.taken(idx, ends: endsArray.uncheckedInt64Values())
        }
        registrar.slice(on: RunEndArray.self, name: "slice runs by binary search") { re, range, _ in
            guard !range.isEmpty, let endsArray = re.ends as? PrimitiveArray else { return nil }
            let ends = endsArray.uncheckedInt64Values()
            let first = RunEndArray.search(ends, Int64(re.offset + range.lowerBound))
            let last = RunEndArray.search(ends, Int64(re.offset + range.upperBound - 1))
            let m = last - first + 1
            return try RunEndArray(
                ends: SliceArray(re.ends, start: first, length: m).reduce() ?? re.ends,
                values: SliceArray(re.values, start: first, length: m),
                offset: re.offset + range.lowerBound, count: range.count)
        }
        for function in ElementwiseCall.functions {
            registrar.elementwise(function, on: RunEndArray.self, name: "\(function.name) over run values") {
                re, call, ctx in
                guard let values = try call.applied(to: re.values, ctx) else { return nil }
                let result = try RunEndArray(ends: re.ends, values: values, offset: re.offset, count: re.count)
                return result.dtype == call.resultType ? result : nil
            }
        }
        registrar.fusedAggregates(on: RunEndArray.self)
    }

    /// The rows `bits` keeps: each run that keeps a row, with the number it keeps as its length.
    private func filtered(_ bits: Bitmap, ends: [Int64]) throws -> RunEndArray {
        var newEnds: [UInt64] = []
        var keptRuns: [UInt32] = []
        var kept = 0
        var run = firstRun(ends)
        var rowStart = 0
        while rowStart < count {
            let rowEnd = Swift.min(Int(ends[run]) - offset, count)
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
            ends: PrimitiveArray(newEnds), values: TakeArray(values, indices: PrimitiveArray(keptRuns)))
    }

    /// The rows at `idx`, as a take of the run values at the runs that hold them.
    private func taken(_ idx: PrimitiveArray, ends: [Int64]) throws -> TakeArray {
        let positions = idx.int128Values()
        var runs = [UInt32](repeating: 0, count: positions.count)
        for (k, p) in positions.enumerated() where idx.validity.isValid(k) {
            guard p >= 0 && p < count else {
                throw EddyError(.outOfBounds, "take index \(p) at position \(k) is out of bounds for length \(count)")
            }
            runs[k] = UInt32(RunEndArray.search(ends, Int64(p) + Int64(offset)))
        }
        let runIndices = PrimitiveArray(
            uncheckedPType: .uint32, buffer: Buffer(copying: runs), count: runs.count,
            validity: idx.validity, nullability: idx.dtype.nullability)
        return try TakeArray(values, indices: runIndices)
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
