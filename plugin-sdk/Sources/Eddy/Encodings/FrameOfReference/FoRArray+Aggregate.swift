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
        // file can break that, and then the values are decoded.
        let shiftedMin = inner.min.isNull ? nil : inner.min.asInt128 + ref
        let shiftedMax = inner.max.isNull ? nil : inner.max.asInt128 + ref
        guard shiftedMin.map({ $0 >= lo && $0 <= hi }) ?? true, shiftedMax.map({ $0 >= lo && $0 <= hi }) ?? true
        else { return nil }
        func shift(_ x: Int128?) -> ScalarValue {
            guard let x else { return .null }
            return signed ? .int(Int64(x)) : .uint(UInt64(x))
        }
        p.min = shift(shiftedMin)
        p.max = shift(shiftedMax)
        return p
    }
}
