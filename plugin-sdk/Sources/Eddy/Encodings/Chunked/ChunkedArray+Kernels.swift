extension ChunkedArray {
    /// The chunked array's kernels: filter and slice per chunk, aggregates merged from the chunks'.
    static func register(into registrar: PluginRegistrar) {
        registrar.filterNode(on: ChunkedArray.self, name: "filter per chunk") { c, f, _ in
            guard let bits = f.maskBits else { return nil }
            var parts: [any ArrayNode] = []
            for (k, chunk) in c.chunks.enumerated() {
                let start = c.chunkOffsets[k]
                let m = countSetBits(bits, start, start + chunk.count)
                if m == 0 { continue }
                parts.append(
                    m == chunk.count
                        ? chunk
                        : try FilterArray(
                            chunk, mask: BoolArray(uncheckedBits: bits.slice(start, chunk.count)), count: m))
            }
            return try ChunkedArray(chunks: parts, dtype: c.dtype)
        }
        registrar.slice(on: ChunkedArray.self, name: "slice overlapping chunks") { c, range, _ in
            var parts: [any ArrayNode] = []
            let lo = range.lowerBound
            let hi = range.upperBound
            for (k, chunk) in c.chunks.enumerated() {
                let cs = c.chunkOffsets[k]
                let ce = c.chunkOffsets[k + 1]
                let a = Swift.max(lo, cs)
                let b = Swift.min(hi, ce)
                guard a < b else { continue }
                parts.append(a == cs && b == ce ? chunk : try SliceArray(chunk, start: a - cs, length: b - a))
            }
            return try ChunkedArray(chunks: parts, dtype: c.dtype)
        }
        registrar.fusedAggregates(on: ChunkedArray.self)
    }

    /// The aggregate partial of the chunked array: its chunks' partials, merged.
    func aggregatePartial(_ ctx: ExecutionCtx, order: Bool) throws -> AggregatePartial {
        var p = AggregatePartial()
        for chunk in chunks { p.merge(try AggregatePartial.fused(chunk, ctx, order: order)) }
        return p
    }
}
