internal import EddyKernelsC

extension AggregatePartial {
    /// The partial of any array, using each encoding's structure where it can (each encoding's
    /// `aggregatePartial` in its folder): run-end weighs each run's value by its length (O(runs));
    /// constant is O(1); dictionary counts codes and weighs the values; frame-of-reference shifts its
    /// child's partial; chunked merges its chunks' partials; bit-packed sums its packed words under its
    /// validity when no order is asked for. Anything else is decoded and scanned.
    public static func fused(_ array: any ArrayNode, _ ctx: ExecutionCtx, order: Bool = true) throws -> AggregatePartial
    {
        let partial: AggregatePartial?
        switch array {
        case let c as ConstantArray: partial = c.aggregatePartial()
        case let re as RunEndArray: partial = try re.aggregatePartial(ctx, order: order)
        case let d as DictArray: partial = try d.aggregatePartial(ctx)
        case let f as FoRArray: partial = try f.aggregatePartial(ctx, order: order)
        case let c as ChunkedArray: partial = try c.aggregatePartial(ctx, order: order)
        case let bp as BitPackedArray: partial = order ? nil : bp.sumPartial()
        default: partial = nil
        }
        return try partial ?? of(ctx.executeUntil(array, .columnar), order: order)
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
