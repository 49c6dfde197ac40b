internal import EddyKernelsC

extension RunEndArray {
    /// The aggregate partial of the run-end array: each run's value weighed by its length (O(runs));
    /// nil when the ends are not integers (the caller decodes and scans).
    func aggregatePartial(_ ctx: ExecutionCtx, order: Bool) throws -> AggregatePartial? {
        guard let endsArray = try ctx.execute(ends) as? PrimitiveArray else { return nil }
        let runValues = try ctx.execute(values)
        if let fast = AggregatePartial.runEndIntegers(self, endsArray, runValues, order: order) { return fast }
        let e = endsArray.uncheckedInt64Values()
        var weights = [Int](repeating: 0, count: e.count)
        var run = RunEndArray.search(e, Int64(offset))
        var start = 0
        while start < count {
            let end = Swift.min(Int(e[run]) - offset, count)
            weights[run] = end - start
            start = end
            run += 1
        }
        return try AggregatePartial.weighted(runValues, weights)
    }
}

extension AggregatePartial {
    /// Run-end over dense integer values with UInt32 ends: weights are computed on the fly, and the
    /// sum stays in 64 bits while it provably cannot overflow.
    static func runEndIntegers(_ re: RunEndArray, _ ends: PrimitiveArray, _ values: any ArrayNode, order: Bool)
        -> AggregatePartial?
    {
        guard ends.ptype == .uint32, let v = values as? PrimitiveArray, v.ptype.isInteger, case .allValid = v.validity,
            re.count > 0
        else { return nil }
        return v.ptype.visitIntegerUnchecked(RunEndWeighted(re: re, ends: ends, values: v, order: order))
    }

    private struct RunEndWeighted: IntegerPTypeVisitor {
        let re: RunEndArray
        let ends: PrimitiveArray
        let values: PrimitiveArray
        let order: Bool
        func visit<T: NativeInteger>(_ type: T.Type) -> AggregatePartial? {
            var p = AggregatePartial()
            let lo = re.offset
            let hi = re.offset + re.count
            ends.withValuesUnchecked(UInt32.self) { e in
                values.withValuesUnchecked(T.self) { v in
                    let (first, last) = Self.runs(e, overlapping: lo, hi)
                    var mn = v[first]
                    var mx = v[first]
                    // When every |value| < 2^31 and the window < 2^32 rows, no product or partial sum
                    // can overflow 64 bits (2^31 · 2^32 = 2^63 bounds the whole sum): one tight loop that
                    // also ORs the values' magnitudes, checked after it (the exact loop below runs only
                    // when a value was too large).
                    if hi - lo < (1 << 32), let sum = Self.boundedSum(e, v, first: first, last: last, lo: lo, hi: hi) {
                        if order {
                            for j in first...last {
                                mn = Swift.min(mn, v[j])
                                mx = Swift.max(mx, v[j])
                            }
                        }
                        p.rows = re.count
                        p.nonNull = re.count
                        p.intSum = Int128(sum)
                        p.min = mn.scalarValue
                        p.max = mx.scalarValue
                        return
                    }
                    var sum = SpillingSum()
                    var previous = lo
                    for j in first...last {
                        let end = Swift.min(Int(e[j]), hi)
                        let w = Int64(end - previous)
                        previous = end
                        let x = v[j]
                        mn = Swift.min(mn, x)
                        mx = Swift.max(mx, x)
                        let (prod, o1) = Int64(truncatingIfNeeded: x).multipliedReportingOverflow(by: w)
                        if o1 || (!T.isSigned && T.bitWidth == 64 && Int64(truncatingIfNeeded: x) < 0) {
                            sum.wide += Int128(x) * Int128(w)
                            continue
                        }
                        sum.add(prod)
                    }
                    p.rows = re.count
                    p.nonNull = re.count
                    p.intSum = sum.total
                    p.min = mn.scalarValue
                    p.max = mx.scalarValue
                }
            }
            return p
        }

        /// The first and last runs that overlap rows `lo..<hi`.
        static func runs(_ e: UnsafeBufferPointer<UInt32>, overlapping lo: Int, _ hi: Int) -> (first: Int, last: Int) {
            var l = 0, h = e.count
            while l < h { let m = (l + h) / 2; if Int(e[m]) <= lo { l = m + 1 } else { h = m } }
            let first = l
            l = first; h = e.count
            while l < h { let m = (l + h) / 2; if Int(e[m]) < hi { l = m + 1 } else { h = m } }
            return (first, Swift.min(l, e.count - 1))
        }

        /// The weighted sum of runs `first...last` clipped to rows `lo..<hi` (fewer than 2^32) in
        /// wrapping 64-bit arithmetic, exact when every |value| < 2^31; nil when some value is larger.
        static func boundedSum<T: NativeInteger>(
            _ e: UnsafeBufferPointer<UInt32>, _ v: UnsafeBufferPointer<T>, first: Int, last: Int, lo: Int, hi: Int
        ) -> Int64? {
            // First and last runs are clipped to the window; interior runs weigh e[j] - e[j-1],
            // which has no loop-carried state, so the loop pipelines.
            let clippedFirst = Int64(Swift.min(Int(e[first]), hi) - lo)
            let x0 = Int64(truncatingIfNeeded: v[first])
            // Unsigned values count by their bits (2^63 or more reads as negative in Int64).
            @inline(__always) func magnitude(_ x: Int64) -> UInt64 {
                T.isSigned ? UInt64(bitPattern: x ^ (x >> 63)) : UInt64(bitPattern: x)
            }
            var magnitudes = magnitude(x0)
            var sum = x0 &* clippedFirst
            if last > first, T.self == Int64.self, let ePtr = e.baseAddress, let vPtr = v.baseAddress {
                // Four runs at a time in C (AVX2), exact when its bounds hold; else the loop below.
                var interior: Int64 = 0
                let exact = UnsafeRawPointer(vPtr).withMemoryRebound(to: Int64.self, capacity: v.count) {
                    eddy_runend_weighted_sum_i64($0, ePtr, first + 1, last, &interior)
                }
                let xl = Int64(truncatingIfNeeded: v[last])
                magnitudes |= exact == 1 ? magnitude(xl) : .max
                let lastWeight = Int64(Swift.min(Int(e[last]), hi) - Int(e[last - 1]))
                sum &+= interior &+ xl &* lastWeight
            } else if last > first, let ePtr = e.baseAddress, let vPtr = v.baseAddress {
                var j = first + 1
                var acc0: Int64 = 0
                var acc1: Int64 = 0
                var m0: UInt64 = 0
                var m1: UInt64 = 0
                while j + 1 < last {
                    let a = Int64(truncatingIfNeeded: vPtr[j])
                    let b = Int64(truncatingIfNeeded: vPtr[j &+ 1])
                    m0 |= magnitude(a)
                    m1 |= magnitude(b)
                    acc0 &+= a &* Int64(ePtr[j] &- ePtr[j &- 1])
                    acc1 &+= b &* Int64(ePtr[j &+ 1] &- ePtr[j])
                    j &+= 2
                }
                while j < last {
                    let a = Int64(truncatingIfNeeded: vPtr[j])
                    m0 |= magnitude(a)
                    acc0 &+= a &* Int64(ePtr[j] &- ePtr[j &- 1])
                    j &+= 1
                }
                let xl = Int64(truncatingIfNeeded: v[last])
                magnitudes |= m0 | m1 | magnitude(xl)
                let lastWeight = Int64(Swift.min(Int(e[last]), hi) - Int(e[last - 1]))
                sum &+= acc0 &+ acc1 &+ xl &* lastWeight
            }
            return magnitudes < (1 << 31) ? sum : nil
        }
    }
}
