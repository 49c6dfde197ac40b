@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Everything a file's footer says.
public struct EddyFooter: Sendable {
    public var schema: Schema
    public var encodings: [StoredEncoding]
    public var rows: Int
    public var chunks: [ChunkLayout]

    func encoded() -> [UInt8] {
        var w = MetadataWriter()
        w.u32(UInt32(EddyFileFormat.version))
        w.int(schema.fields.count)
        for f in schema.fields {
            w.string(f.name)
            w.dtype(f.dtype)
        }
        w.int(encodings.count)
        for e in encodings {
            w.string(e.name)
            w.string(e.pluginName)
            w.string(e.pluginVersion)
            w.string(e.pluginHash)
            w.u32(e.metadataVersion)
        }
        w.int(rows)
        w.int(chunks.count)
        for c in chunks {
            w.int(c.rows)
            for col in c.columns {
                w.int(col.segmentOffset)
                w.int(col.segmentLength)
                w.u32(col.checksum)
                w.int(col.stats.nullCount)
                w.int(col.stats.plainBytes)
                w.int(col.stats.storedBytes)
                for bound in [col.stats.min, col.stats.max] {
                    w.bool(bound != nil)
                    if let bound { w.scalarValue(bound.value) }
                }
                w.int(col.nodes.count)
                for n in col.nodes {
                    w.int(n.encoding)
                    w.dtype(n.dtype)
                    w.int(n.count)
                    w.blob(n.metadata)
                    w.int(n.buffers.count)
                    for b in n.buffers {
                        w.int(b.offset)
                        w.int(b.length)
                    }
                    w.int(n.children.count)
                    for c in n.children { w.int(c) }
                }
            }
        }
        return w.bytes
    }

    /// Parses and checks a footer: every count bounded by the bytes left, every offset inside the data
    /// region, every tree a tree (children before parents, each used once), depth and sizes bounded.
    static func decode(_ bytes: [UInt8], dataEnd: Int) throws -> EddyFooter {
        var r = MetadataReader(bytes)
        let version = try r.u32()
        guard version == UInt32(EddyFileFormat.version) else {
            throw EddyError(
                .unsupported, "footer format version \(version); this build reads \(EddyFileFormat.version)")
        }
        // Every element takes at least one byte, so no count may exceed the bytes left.
        let ncols = try r.int(max: Swift.min(EddyFileFormat.maxColumns, r.remaining))
        var fields: [StructField] = []
        var names = Set<String>()
        for _ in 0..<ncols {
            let name = try r.string()
            guard names.insert(name).inserted else { throw EddyError(.invalidArgument, "column '\(name)' twice") }
            fields.append(StructField(name, try r.dtype()))
        }
        let nenc = try r.int(max: Swift.min(EddyFileFormat.maxNodes, r.remaining))
        var encodings: [StoredEncoding] = []
        for _ in 0..<nenc {
            encodings.append(
                StoredEncoding(
                    name: try r.string(), pluginName: try r.string(), pluginVersion: try r.string(),
                    pluginHash: try r.string(), metadataVersion: try r.u32()))
        }
        let rows = try r.int(max: Int(Int64.max / 2))
        let nchunks = try r.int(max: r.remaining)
        var chunks: [ChunkLayout] = []
        var total = 0
        for k in 0..<nchunks {
            let crows = try r.int(max: EddyFileFormat.maxChunkRows)
            total += crows
            var cols: [ColumnChunkLayout] = []
            for c in 0..<ncols {
                do {
                    cols.append(try decodeColumn(&r, fields[c].dtype, rows: crows, encodings: nenc, dataEnd: dataEnd))
                } catch let e as EddyError {
                    throw EddyError(e.code, "chunk \(k), column '\(fields[c].name)': \(e.message)")
                }
            }
            chunks.append(ChunkLayout(rows: crows, columns: cols))
        }
        try r.finish()
        guard total == rows else {
            throw EddyError(.invalidArgument, "chunks hold \(total) rows but the footer says \(rows)")
        }
        return EddyFooter(schema: Schema(fields), encodings: encodings, rows: rows, chunks: chunks)
    }

    private static func decodeColumn(
        _ r: inout MetadataReader, _ dtype: DType, rows: Int, encodings: Int, dataEnd: Int
    ) throws -> ColumnChunkLayout {
        let offset = try r.int(max: dataEnd)
        let length = try r.int(max: dataEnd - offset)
        guard offset >= EddyFileFormat.headerSize else {
            throw EddyError(.outOfBounds, "segment at \(offset) overlaps the header")
        }
        let checksum = try r.u32()
        let nulls = try r.int(max: rows)
        // Sizes are for display; bounded so that sums over a file's chunks stay far from overflow.
        let plain = try r.int(max: 1 << 40)
        let stored = try r.int(max: 1 << 40)
        var bounds: [Scalar?] = []
        for _ in 0..<2 {
            bounds.append(try r.bool() ? try r.scalarValue(of: dtype.with(.nonNullable)) : nil)
        }
        let nnodes = try r.int(max: Swift.min(EddyFileFormat.maxNodes, r.remaining))
        guard nnodes > 0 else { throw EddyError(.invalidArgument, "empty tree") }
        var nodes: [StoredNodeLayout] = []
        var used = [Bool](repeating: false, count: nnodes)
        var depth = [Int](repeating: 1, count: nnodes)
        guard encodings > 0 else { throw EddyError(.invalidArgument, "a tree but no encodings in the footer") }
        for i in 0..<nnodes {
            let enc = try r.int(max: encodings - 1)
            let t = try r.dtype()
            let count = try r.int(max: EddyFileFormat.maxChunkRows)
            let meta = try r.blob()
            let nbuf = try r.int(max: r.remaining)
            var buffers: [(offset: Int, length: Int)] = []
            for _ in 0..<nbuf {
                let bo = try r.int(max: length)
                let bl = try r.int(max: length - bo)
                guard (offset + bo) % EddyFileFormat.alignment == 0 else {
                    throw EddyError(.invalidArgument, "node \(i): buffer at \(offset + bo) is not 64-byte aligned")
                }
                buffers.append((bo, bl))
            }
            let nchild = try r.int(max: r.remaining)
            var children: [Int] = []
            for _ in 0..<nchild {
                let c = try r.int(max: Int(Int32.max))
                guard c < i else {
                    throw EddyError(.invalidArgument, "node \(i): child \(c) is not stored before its parent")
                }
                guard !used[c] else { throw EddyError(.invalidArgument, "node \(i): child \(c) has two parents") }
                used[c] = true
                depth[i] = Swift.max(depth[i], depth[c] + 1)
                children.append(c)
            }
            guard depth[i] <= EddyFileFormat.maxDepth else {
                throw EddyError(.invalidArgument, "tree deeper than \(EddyFileFormat.maxDepth) nodes")
            }
            nodes.append(
                StoredNodeLayout(
                    encoding: enc, dtype: t, count: count, metadata: meta, buffers: buffers, children: children))
        }
        if let orphan = used.dropLast().firstIndex(of: false) {
            throw EddyError(.invalidArgument, "node \(orphan) belongs to no parent")
        }
        guard let root = nodes.last, root.dtype == dtype, root.count == rows else {
            throw EddyError(
                .invalidArgument,
                "root is \(nodes.last.map { "\($0.dtype), len=\($0.count)" } ?? "missing"); the column is \(dtype), len=\(rows)"
            )
        }
        return ColumnChunkLayout(
            segmentOffset: offset, segmentLength: length, checksum: checksum, nodes: nodes,
            stats: ChunkColumnStats(
                nullCount: nulls, min: bounds[0], max: bounds[1], plainBytes: plain, storedBytes: stored))
    }
}
