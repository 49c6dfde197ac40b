extension FoRArray {
    /// The aggregate partial of the frame of reference: its child's, shifted by the reference; nil
    /// when a shifted extreme would leave the type (the caller decodes and scans).
    func aggregatePartial(_ ctx: ExecutionCtx, order: Bool) throws -> AggregatePartial? {
        let inner = try AggregatePartial.fused(child, ctx, order: order)
        var p = AggregatePartial()
        p.rows = inner.rows
        p.nonNull = inner.nonNull
        let ref = reference.value.asInt128
        p.intSum = inner.intSum + ref * Int128(inner.nonNull)
        guard let ptype = dtype.ptype else { return nil }
        let signed = ptype.isSignedInteger
        let (lo, hi) = ptype.int128Range
        // Decoding adds the reference with wrapping: only when the child's extremes land inside the
        // type (so no value wraps) are the shifted extremes and sum what decoding gives; a crafted
        // file can break that, and then the values are decoded. A partial without order has no
        // extremes: bounds come from the child's bit width, or from its partial with order.
        let shiftedMin = inner.min.isNull ? nil : inner.min.asInt128 + ref
        let shiftedMax = inner.max.isNull ? nil : inner.max.asInt128 + ref
        var bounds = (shiftedMin, shiftedMax)
        if inner.nonNull > 0, shiftedMin == nil || shiftedMax == nil {
            guard let (childLo, childHi) = try childBounds(ctx) else { return nil }
            bounds = (childLo + ref, childHi + ref)
        }
        guard bounds.0.map({ $0 >= lo && $0 <= hi }) ?? true, bounds.1.map({ $0 >= lo && $0 <= hi }) ?? true
        else { return nil }
        func shift(_ x: Int128?) -> ScalarValue {
            guard let x else { return .null }
            return signed ? .int(Int64(x)) : .uint(UInt64(x))
        }
        p.min = shift(shiftedMin)
        p.max = shift(shiftedMax)
        return p
    }

    /// Bounds of the child's values as decoding reads them: 0 and 2^width − 1 for bit-packed values
    /// without a patch in the window (and no wider than their type), else the child's own extremes;
    /// nil when it has none.
    private func childBounds(_ ctx: ExecutionCtx) throws -> (Int128, Int128)? {
        if let bp = child as? BitPackedArray, bp.bitWidth < 64, bp.readsAsPacked {
            return (0, (Int128(1) << bp.bitWidth) - 1)
        }
        let ordered = try AggregatePartial.fused(child, ctx, order: true)
        guard !ordered.min.isNull, !ordered.max.isNull else { return nil }
        return (ordered.min.asInt128, ordered.max.asInt128)
    }
}
