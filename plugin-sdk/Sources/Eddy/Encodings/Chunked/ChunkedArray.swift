/// An array made of chunks of the same dtype, one after another.
public final class ChunkedArray: ArrayNode {
    public static let id = EncodingID("eddy.chunked")
    /// The chunks in order, each of the array's dtype; their lengths may differ (zero included).
    public let chunks: [any ArrayNode]
    public let dtype: DType
    public let count: Int
    /// `chunkOffsets[k]` is the position of chunk `k`'s first element; one extra entry holds `count`.
    public let chunkOffsets: [Int]

    /// - Throws: when a chunk's dtype differs from `dtype`.
    public init(chunks: [any ArrayNode], dtype: DType) throws {
        for (k, c) in chunks.enumerated() where c.dtype != dtype {
            throw EddyError(.typeMismatch, "chunk \(k) has dtype \(c.dtype), expected \(dtype)")
        }
        self.chunks = chunks
        self.dtype = dtype
        var offsets = [0]
        offsets.reserveCapacity(chunks.count + 1)
        for c in chunks { offsets.append(offsets.last! + c.count) }
        self.chunkOffsets = offsets
        self.count = offsets.last!
    }

    public var encoding: EncodingID { Self.id }
    public var children: [any ArrayNode] { chunks }
    public var metadataDescription: String { "chunks=\(chunks.count)" }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try ChunkedArray(chunks: children, dtype: dtype)
    }

    public func reduce() throws -> (any ArrayNode)? {
        if chunks.count == 1 { return chunks[0] }
        return nil
    }

    /// Decodes every chunk, then concatenates.
    ///
    /// Chunks are executed here with the same context rather than one slot at a time through the
    /// executor's stack: handing back one slot per step would rebuild this node (and copy its chunk
    /// list) once per chunk, quadratic in the chunk count. Nesting is bounded by how deep chunked
    /// arrays nest, not by the tree's size.
    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        let canonical = try chunks.map { try $0.isCanonical ? $0 : ctx.execute($0) }
        return .done(try Canonical.concat(canonical, dtype: dtype))
    }

    /// The chunk holding element `index`.
    public func chunkIndex(of index: Int) -> Int {
        var lo = 0
        var hi = chunks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if chunkOffsets[mid + 1] <= index { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        let k = chunkIndex(of: index)
        return try chunks[k].scalar(at: index - chunkOffsets[k])
    }
}
