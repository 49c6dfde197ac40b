@_spi(Host) import Eddy

extension PluginConformance {
    /// One input for a kernel key: the tree the kernels run on and, when the child was made by a
    /// compressor hook, the same tree over the canonical column the hook was given.
    struct Input {
        let node: any ArrayNode
        var made: HookSample?
        /// `node` with the hook's output replaced by the canonical column (never seen by plugin code).
        var canonicalNode: (any ArrayNode)?
    }

    /// One input for the key: a child of the child encoding under a parent of the parent encoding,
    /// or nil when this draw does not fit (the next index draws again). `edge` (the input's index
    /// among a key's first ones) makes the child from an edge column
    /// (``ArrayGenerator/edgeColumn(_:count:)``) when the encodings hold one; else a random draw.
    static func makeInput(
        _ g: inout ArrayGenerator, parent: EncodingID, child: EncodingID, hooks: [CompressorHook],
        rows: Int?, samples: [any ArrayNode] = [], edge: Int? = nil
    ) throws -> Input? {
        let dtypes = ArrayGenerator.dtypes.filter { dtype in
            switch parent {
            case LikeFunction.id: if case .utf8 = dtype { true } else { false }
            case ArithmeticFunction.id, NegateFunction.id: if case .primitive = dtype { true } else { false }
            case NotFunction.id: if case .bool = dtype { true } else { false }
            default: true
            }
        }
        if !ArrayGenerator.makes(child) {
            // A plugin's encoding comes only from its compressor hooks: draw only the dtypes and column
            // shapes they take, so that every input of the budget is one of this key's.
            let fit = dtypes.filter { d in hooks.contains { $0.applies(d) } }
            guard !fit.isEmpty else {
                throw EddyError(
                    .unsupported, "no compressor hook of the plugin applies to a dtype \(parent.name) takes")
            }
            guard
                let made = try hookSample(
                    &g, hooks: hooks, dtypes: fit, rows: rows, samples: samples, edge: edge,
                    wanting: { $0.encoding == child })
            else { return nil }
            // The parent is put over the canonical column first (its constants come from the column, not
            // from plugin code), then the hook's output takes the column's place.
            guard let canonicalNode = try g.parent(parent, over: made.canonical),
                let node = try substitute(made.output, for: made.canonical, in: canonicalNode)
            else { return nil }
            return Input(node: node, made: made, canonicalNode: canonicalNode)
        }
        // Only the dtypes the child encoding holds, so that each draw is one of this key's inputs.
        let holds = dtypes.filter { ArrayGenerator.encoding(child, holds: $0) }
        let pool = holds.isEmpty ? dtypes : holds
        var node: (any ArrayNode)?
        if let edge, let (dtype, shape) = ArrayGenerator.edgeInput(edge, among: pool),
            let column = try g.edgeColumn(dtype, count: rows ?? 0, shape: shape)
        {
            // An encoding that cannot hold the column's edges (a frame of reference over NaN) gives
            // nil: the input is then a random draw.
            node = try encodeEdge(&g, column, as: child)
        }
        if node == nil { node = try makeChild(&g, child, dtype: g.pick(pool), hooks: hooks, rows: rows) }
        guard let node, let parentNode = try g.parent(parent, over: node) else { return nil }
        return Input(node: parentNode)
    }

    /// An edge column encoded with `encoding` on top (nested encodings below it), or nil when the
    /// encoding does not hold it.
    static func encodeEdge(_ g: inout ArrayGenerator, _ column: any ArrayNode, as encoding: EncodingID) throws
        -> (any ArrayNode)?
    {
        if encoding == column.encoding { return column }
        return try g.encode(column, as: encoding, depth: g.int(1...2))
    }

    /// `tree` with the node `old` (by identity) replaced by `new`, or nil when `old` is not in it.
    static func substitute(_ new: any ArrayNode, for old: any ArrayNode, in tree: any ArrayNode) throws
        -> (any ArrayNode)?
    {
        if tree === old { return new }
        var children = tree.children
        for i in children.indices {
            if let replaced = try substitute(new, for: old, in: children[i]) {
                children[i] = replaced
                return try tree.replacingChildren(children)
            }
        }
        return nil
    }

    /// An array whose top encoding is `encoding`, one the generators make (a plugin's encodings come
    /// from ``makeInput(_:parent:child:hooks:rows:samples:)``).
    static func makeChild(
        _ g: inout ArrayGenerator, _ encoding: EncodingID, dtype: DType, hooks: [CompressorHook],
        rows: Int?
    ) throws -> (any ArrayNode)? {
        let n = rows ?? g.count()
        let column = try g.column(dtype, count: n)
        let ownHooks = hooks.filter { $0.applies(dtype) }
        if !ownHooks.isEmpty, g.chance(0.5) {
            // A plugin's hook may also make one of the engine's encodings: its output is an input too.
            for _ in 0..<2 {
                let candidate = try g.column(dtype, count: n, extremes: false)
                for hook in ownHooks {
                    if let r = try hook.compress(candidate, { try Compressor().compress($0) }), r.encoding == encoding {
                        return r
                    }
                }
            }
        }
        if encoding == DictArray.id, rows == nil, g.chance(0.05), n > 0 {
            // Malformed: a code past the values. Decoding fails; a kernel must fail too, not crash.
            let values = try g.column(dtype, count: g.int(1...4))
            let codes = (0..<n).map { _ in UInt32(g.int(0...(values.count - 1))) }
            var bad = codes
            bad[g.int(0...(n - 1))] = UInt32(values.count + g.int(0...2))
            return try DictArray(codes: PrimitiveArray(bad), values: values)
        }
        if encoding == IntStringArray.id, rows == nil {
            // Ids with a number in fixed text are one column shape in several: draw until one is.
            for _ in 0..<12 {
                let ids = try g.column(dtype, count: n)
                if let made = try g.encode(ids, as: encoding, depth: g.int(1...3)) { return made }
            }
            return nil
        }
        if encoding == column.encoding { return try g.encode(column, as: encoding, depth: 1) }
        return try g.encode(column, as: encoding, depth: g.int(1...3))
    }
}
