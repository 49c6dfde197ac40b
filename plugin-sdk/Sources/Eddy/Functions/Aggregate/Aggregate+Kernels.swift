internal import EddyKernelsC

extension AggregatePartial {
    /// The partial of any array, using each encoding's structure where it can:
    /// run-end weighs each run's value by its length (O(runs)); constant is O(1); dictionary counts
    /// codes and weighs the values; frame-of-reference shifts its child's partial; chunked merges its
    /// chunks' partials. Anything else is decoded and scanned.
    public static func fused(_ array: any ArrayNode, _ ctx: ExecutionCtx, order: Bool = true) throws -> AggregatePartial
    {
        switch array {
        case let c as ConstantArray:
            var p = AggregatePartial()
            p.add(c.scalar.value, weight: c.count)
            return p
        case let re as RunEndArray:
            guard let ends = try ctx.execute(re.ends) as? PrimitiveArray else { break }
            let values = try ctx.execute(re.values)
            if let fast = runEndIntegers(re, ends, values, order: order) { return fast }
            let e = ends.uncheckedInt64Values()
            var weights = [Int](repeating: 0, count: e.count)
            var run = RunEndArray.search(e, Int64(re.offset))
            var start = 0
            while start < re.count {
                let end = Swift.min(Int(e[run]) - re.offset, re.count)
                weights[run] = end - start
                start = end
                run += 1
            }
            return try weighted(values, weights)
        case let d as DictArray:
            guard let codes = try ctx.execute(d.codes) as? PrimitiveArray, codes.ptype.isUnsignedInteger else { break }
            let values = try ctx.execute(d.values)
            let (counts, nullCodes) = try codes.ptype.visitIntegerUnchecked(
                CountCodes(codes: codes, values: values.count)
            )
            .get()
            var p = try weighted(values, counts)
            p.rows += nullCodes
            return p
        case let f as FoRArray:
            let child = try fused(f.child, ctx, order: order)
            var p = AggregatePartial()
            p.rows = child.rows
            p.nonNull = child.nonNull
            let ref = f.reference.value.asInt128
            p.intSum = child.intSum + ref * Int128(child.nonNull)
            guard let ptype = f.dtype.ptype else { break }
            let signed = ptype.isSignedInteger
            let (lo, hi) = ptype.int128Range
            // Decoding adds the reference with wrapping: only when the child's extremes land inside the
            // type (so no value wraps) are the shifted extremes and sum what decoding gives; a crafted
            // file can break that, and then the values are decoded.
            let shiftedMin = child.min.isNull ? nil : child.min.asInt128 + ref
            let shiftedMax = child.max.isNull ? nil : child.max.asInt128 + ref
            guard shiftedMin.map({ $0 >= lo && $0 <= hi }) ?? true, shiftedMax.map({ $0 >= lo && $0 <= hi }) ?? true
            else { break }
            func shift(_ x: Int128?) -> ScalarValue {
                guard let x else { return .null }
                return signed ? .int(Int64(x)) : .uint(UInt64(x))
            }
            p.min = shift(shiftedMin)
            p.max = shift(shiftedMax)
            return p
        case let c as ChunkedArray:
            var p = AggregatePartial()
            for chunk in c.chunks { p.merge(try fused(chunk, ctx, order: order)) }
            return p
        default:
            break
        }
        return try of(ctx.executeUntil(array, .columnar), order: order)
    }

    /// The partial of canonical `values` where value `j` occurs `weights[j]` times.
    static func weighted(_ values: any ArrayNode, _ weights: [Int]) throws -> AggregatePartial {
        if let prim = values as? PrimitiveArray, prim.ptype.isInteger, case .allValid = prim.validity {
            return prim.ptype.visitIntegerUnchecked(WeightedIntegers(array: prim, weights: weights))
        }
        if let prim = values as? PrimitiveArray, prim.ptype.isFloat, case .allValid = prim.validity {
            return prim.ptype == .float32
                ? weightedFloats(prim, Float.self, weights) : weightedFloats(prim, Double.self, weights)
        }
        var p = AggregatePartial()
        for (j, w) in weights.enumerated() where w > 0 { p.add(try values.scalar(at: j).value, weight: w) }
        return p
    }

    /// ``weighted(_:_:)`` for float values, typed: what `add(_:weight:)` does value by value (each value
    /// times its weight into the sum; NaN above every number for min and max).
    static func weightedFloats<F: BinaryFloatingPoint & NativeType>(
        _ array: PrimitiveArray, _: F.Type, _ weights: [Int]
    ) -> AggregatePartial {
        var p = AggregatePartial()
        array.withValuesUnchecked(F.self) { v in
            var extremes = FloatExtremes()
            for j in 0..<Swift.min(v.count, weights.count) where weights[j] > 0 {
                let x = Double(v[j])
                let w = weights[j]
                p.rows += w
                p.nonNull += w
                p.floatSum += x * Double(w)
                extremes.add(x)
            }
            p.min = extremes.min
            p.max = extremes.max
        }
        return p
    }

    private struct WeightedIntegers: IntegerPTypeVisitor {
        let array: PrimitiveArray
        let weights: [Int]
        func visit<T: NativeInteger>(_ type: T.Type) -> AggregatePartial {
            var p = AggregatePartial()
            array.withValuesUnchecked(T.self) { v in
                weights.withUnsafeBufferPointer { w in
                    var sum = SpillingSum()
                    var rows = 0
                    var lo: T?
                    var hi: T?
                    for j in 0..<v.count where w[j] > 0 {
                        let x = v[j]
                        rows += w[j]
                        // Sum in 64 bits while it fits; spill to 128 bits on overflow.
                        let (prod, o1) = Int64(truncatingIfNeeded: x).multipliedReportingOverflow(by: Int64(w[j]))
                        let exact = T.isSigned || x <= T(truncatingIfNeeded: Int64.max)
                        if !o1 && exact {
                            sum.add(prod)
                        } else {
                            sum.wide += Int128(x) * Int128(w[j])
                        }
                        if lo == nil || x < lo! { lo = x }
                        if hi == nil || x > hi! { hi = x }
                    }
                    p.rows = rows
                    p.nonNull = rows
                    p.intSum = sum.total
                    p.min = lo?.scalarValue ?? .null
                    p.max = hi?.scalarValue ?? .null
                }
            }
            return p
        }
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
                    // First and last runs that overlap the window.
                    var first = 0
                    var l = 0, h = e.count
                    while l < h { let m = (l + h) / 2; if Int(e[m]) <= lo { l = m + 1 } else { h = m } }
                    first = l
                    l = first; h = e.count
                    while l < h { let m = (l + h) / 2; if Int(e[m]) < hi { l = m + 1 } else { h = m } }
                    let last = Swift.min(l, e.count - 1)
                    var mn = v[first]
                    var mx = v[first]
                    // When every |value| < 2^31 and the window < 2^32 rows, no product or partial sum
                    // can overflow 64 bits (2^31 · 2^32 = 2^63 bounds the whole sum): one tight loop that
                    // also ORs the values' magnitudes, checked after it (the exact loop below runs only
                    // when a value was too large).
                    if hi - lo < (1 << 32) {
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
                        if magnitudes < (1 << 31) {
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
    }
}

/// A running integer sum kept in 64 bits, spilling into 128 bits when an addition overflows.
struct SpillingSum {
    var narrow: Int64 = 0
    var wide: Int128 = 0

    mutating func add(_ value: Int64) {
        let (s, overflow) = narrow.addingReportingOverflow(value)
        if overflow {
            wide += Int128(narrow) + Int128(value)
            narrow = 0
        } else {
            narrow = s
        }
    }

    var total: Int128 { wide + Int128(narrow) }
}

/// How many rows use each dictionary value, and how many rows have a null code: one pass over the
/// codes in their own width (a code past the values is an error).
private struct CountCodes: IntegerPTypeVisitor {
    let codes: PrimitiveArray
    let values: Int
    func visit<C: NativeInteger>(_ type: C.Type) -> Result<([Int], Int), EddyError> {
        var counts = [Int](repeating: 0, count: values)
        var nulls = 0
        let validity = codes.validity
        let bits = ValidityBits(validity)
        var bad: C?
        codes.withValuesUnchecked(C.self) { list in
            withExtendedLifetime(validity) {
                counts.withUnsafeMutableBufferPointer { out in
                    for i in 0..<list.count {
                        guard bits.isValid(i) else {
                            nulls += 1
                            continue
                        }
                        let c = list[i]
                        guard c >= 0, UInt64(truncatingIfNeeded: c) < UInt64(values) else {
                            if bad == nil { bad = c }
                            continue
                        }
                        out[Int(truncatingIfNeeded: c)] += 1
                    }
                }
            }
        }
        if let bad {
            return .failure(EddyError(.outOfBounds, "dictionary code \(bad) out of bounds for \(values) values"))
        }
        return .success((counts, nulls))
    }
}

extension AggregatePartial {
    /// The exact sum of `x op y` (`op` + or −) over the rows where both are valid, and how many rows
    /// that is, computed as Σx ± Σy over those rows straight from the packed words, without building
    /// `x`, `y` or `x op y`. Only when both are Int64 frames of reference over unsigned bit-packed
    /// values of at most 32 bits without patches in their window (or Int64 bit-packed values of at
    /// most 32 bits), and their bounds prove that no row's `x op y` can overflow Int64 — so the
    /// checked per-row operation could not have failed, and the sums are the same numbers. Nil
    /// otherwise: the caller evaluates `x op y` and sums it.
    @_spi(Host) public static func sumOfSumOrDifference(
        _ op: ArithmeticOperator, _ x: any ArrayNode, _ y: any ArrayNode
    ) -> (sum: Int128, count: Int)? {
        guard op == .add || op == .subtract, x.count == y.count, x.count < 1 << 32,
            let a = PackedInt64(x), let b = PackedInt64(y)
        else { return nil }
        let (lo, hi) =
            op == .add ? (a.low + b.low, a.high + b.high) : (a.low - b.high, a.high - b.low)
        guard lo >= Int128(Int64.min), hi <= Int128(Int64.max) else { return nil }
        let mask = a.packed.validity.and(b.packed.validity, count: x.count)
        let bits: (UnsafePointer<UInt8>?, Int, Buffer?)
        switch mask {
        case .allValid: bits = (nil, 0, nil)
        case .allInvalid: return (0, 0)
        case .bitmap(let m): bits = (m.buffer.baseAddress.assumingMemoryBound(to: UInt8.self), m.offset, m.buffer)
        }
        func sum(_ p: PackedInt64) -> (Int128, Int) {
            withExtendedLifetime((p.packed.packed, bits.2)) {
                var counted = 0
                let s = eddy_packed_masked_sum(
                    p.packed.packed.baseAddress.assumingMemoryBound(to: UInt64.self), Int32(p.packed.bitWidth),
                    p.packed.offset, p.packed.count, bits.0, bits.1, &counted)
                return (Int128(s) + p.reference * Int128(counted), counted)
            }
        }
        let (sa, n) = sum(a)
        let (sb, _) = sum(b)
        return (op == .add ? sa + sb : sa - sb, n)
    }

    /// An Int64 array stored as packed values plus a reference, with the bounds every row lies in.
    private struct PackedInt64 {
        let packed: BitPackedArray
        let reference: Int128
        let low: Int128
        let high: Int128

        init?(_ array: any ArrayNode) {
            guard array.dtype.ptype == .int64 else { return nil }
            let child: BitPackedArray
            let reference: Int64
            if let f = array as? FoRArray, let bp = f.child as? BitPackedArray, bp.ptype.isUnsignedInteger,
                let r = f.reference.int64Value
            {
                (child, reference) = (bp, r)
            } else if let bp = array as? BitPackedArray, bp.ptype == .int64 {
                (child, reference) = (bp, 0)
            } else {
                return nil
            }
            guard child.bitWidth <= 32, child.patchRange.isEmpty else { return nil }
            let high = Int128(reference) + (Int128(1) << child.bitWidth) - 1
            // A frame whose values would wrap past Int64.max decodes by wrapping: not these sums.
            guard high <= Int128(Int64.max) else { return nil }
            self.packed = child
            self.reference = Int128(reference)
            self.low = Int128(reference)
            self.high = high
        }
    }
}
