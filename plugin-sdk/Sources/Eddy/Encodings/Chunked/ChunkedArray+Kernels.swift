extension ChunkedArray {
    static var kernels: [ExecuteParentKernel] {
        [
            ExecuteParentKernel("filter per chunk", parent: FilterArray.id, child: id) { parent, child, slot, _ in
                guard slot == 0, let f = parent as? FilterArray, let bits = f.maskBits, let c = child as? ChunkedArray
                else { return nil }
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
            },
            ExecuteParentKernel("slice overlapping chunks", parent: SliceArray.id, child: id) { parent, child, _, _ in
                guard let s = parent as? SliceArray, let c = child as? ChunkedArray else { return nil }
                var parts: [any ArrayNode] = []
                let lo = s.start
                let hi = s.start + s.count
                for (k, chunk) in c.chunks.enumerated() {
                    let cs = c.chunkOffsets[k]
                    let ce = c.chunkOffsets[k + 1]
                    let a = Swift.max(lo, cs)
                    let b = Swift.min(hi, ce)
                    guard a < b else { continue }
                    parts.append(a == cs && b == ce ? chunk : try SliceArray(chunk, start: a - cs, length: b - a))
                }
                return try ChunkedArray(chunks: parts, dtype: c.dtype)
            },
        ]
    }
}
