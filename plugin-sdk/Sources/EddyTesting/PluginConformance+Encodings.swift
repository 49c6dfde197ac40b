@_spi(Host) import Eddy

/// A compressor hook's output and the canonical column it was given.
struct HookSample {
    /// The hook that encoded the column.
    let hook: CompressorHook
    /// A copy of the column made before the hook ran: plugin code never saw it.
    let canonical: any ArrayNode
    /// What the hook returned.
    let output: any ArrayNode

    /// The column and the hook's output, as a failure prints them.
    var inputDescription: String {
        "column given to compressor hook '\(hook.name)':\n" + canonical.treeDescription(indent: "  ")
            + "\nits output:\n" + output.treeDescription(indent: "  ")
    }
}

/// A hook's failure, thrown by ``PluginConformance/hookSample(_:hooks:dtypes:rows:samples:wanting:)``.
struct HookFailure: Error, CustomStringConvertible {
    let hook: CompressorHook
    let column: any ArrayNode
    let error: any Error
    var description: String { "compressor hook '\(hook.name)' of \(hook.owner) threw: \(error)" }
}

extension PluginConformance {
    /// A column of one of `dtypes` (or a slice of a sample column) that one of `hooks` encodes into an
    /// array `wanting` accepts, or nil when a dozen draws found none.
    /// - Throws: ``HookFailure`` when a hook throws on a column it applies to.
    static func hookSample(
        _ g: inout ArrayGenerator, hooks: [CompressorHook], dtypes: [DType], rows: Int?, samples: [any ArrayNode],
        edge: Int? = nil, wanting: (any ArrayNode) -> Bool
    ) throws -> HookSample? {
        let usable = samples.filter { s in s.isCanonical && hooks.contains { $0.applies(s.dtype) } }
        let edgeInput = edge.flatMap { ArrayGenerator.edgeInput($0, among: dtypes) }
        let dtype = edgeInput?.dtype ?? g.pick(dtypes)
        for attempt in 0..<12 {
            let column: any ArrayNode
            if attempt == 0, let edgeInput,
                let edges = try g.edgeColumn(edgeInput.dtype, count: rows ?? 0, shape: edgeInput.shape)
            {
                // First the column of edges: a hook that takes NaN or -0.0 must give them back, and the
                // kernels over its output must answer for them. A hook that declines gets random draws.
                column = edges
            } else if rows == nil, !usable.isEmpty, g.chance(0.3) {
                let s = g.pick(usable)
                let start = g.int(0...s.count)
                column = try Canonical.slice(s, start, g.int(0...(s.count - start)))
            } else {
                // The shapes a hook that encodes numbers takes: no NaN, infinities or subnormals.
                column = try g.column(dtype, count: rows ?? g.count(), extremes: g.chance(0.1))
            }
            // Copied before any plugin code runs: the reference is computed on data the hook never saw.
            let canonical = try copy(column)
            for hook in hooks where hook.applies(column.dtype) {
                let out: (any ArrayNode)?
                do {
                    out = try hook.compress(column, { try Compressor().compress($0) })
                } catch {
                    throw HookFailure(hook: hook, column: canonical, error: error)
                }
                if let out, wanting(out) { return HookSample(hook: hook, canonical: canonical, output: out) }
            }
        }
        return nil
    }

    /// A canonical array holding `column`'s values in buffers of its own.
    static func copy(_ column: any ArrayNode) throws -> any ArrayNode {
        var b = ArrayBuilder(dtype: column.dtype, capacity: column.count)
        for i in 0..<column.count { b.append(try column.scalar(at: i).value) }
        return try b.finish()
    }
}

extension PluginConformance.Checker {
    /// Why `made.output` is not a faithful encoding of `made.canonical`, or nil: the hook's output must
    /// have the column's dtype and length and decode (without kernels) to the same values, bit for bit,
    /// with the same validity.
    func hookProblem(_ made: HookSample) -> String? {
        let who = "compressor hook '\(made.hook.name)' of \(made.hook.owner)"
        let out = made.output
        guard out.dtype == made.canonical.dtype, out.count == made.canonical.count else {
            return
                "\(who) returned \(out.encoding)(\(out.dtype), len=\(out.count)) for a column of \(made.canonical.dtype), len=\(made.canonical.count)"
        }
        switch PluginConformance.reference(out, in: reference) {
        case .failure(let e):
            return "\(who) made \(out.encoding), which does not decode: \(e)"
        case .success(let decoded):
            guard
                let d = KernelConformance.bitDifference(
                    decoded, made.canonical, "decoded from its \(out.encoding) output", "in the column it was given")
            else { return nil }
            return "\(who) changed the data: \(d)"
        }
    }

    /// One column through the hook: its output must decode to the column (see ``hookProblem(_:)``).
    func checkHook(
        _ hook: CompressorHook, _ run: inout PluginConformance.KeyRun, _ index: Int, _ g: inout ArrayGenerator
    ) {
        let key = run.report.key
        let dtypes = ArrayGenerator.dtypes.filter(hook.applies)
        guard !dtypes.isEmpty || options.sampleColumns.contains(where: { hook.applies($0.dtype) }) else {
            run.lastProblem =
                "the hook applies to none of the kit's dtypes; add sample columns (ConformanceOptions.sampleColumns)"
            return
        }
        let made: HookSample
        do {
            guard
                let sample = try PluginConformance.hookSample(
                    &g, hooks: [hook], dtypes: dtypes.isEmpty ? [.null] : dtypes,
                    rows: PluginConformance.rows(index, &g),
                    samples: options.sampleColumns, edge: index < PluginConformance.edgeInputs ? index : nil,
                    wanting: { _ in true })
            else {
                run.lastProblem =
                    "the hook declined every column drawn; add sample columns (ConformanceOptions.sampleColumns)"
                return
            }
            made = sample
        } catch let e as HookFailure {
            run.generated += 1
            run.report.failures.append(
                PluginConformance.failure(
                    "\(e)", e.column, options, key, index, check: .compressorHook,
                    input: "column given to compressor hook '\(hook.name)':\n" + e.column.treeDescription(indent: "  "))
            )
            return
        } catch {
            run.lastProblem = "\(error)"
            return
        }
        run.generated += 1
        if let problem = hookProblem(made) {
            run.report.failures.append(
                PluginConformance.failure(
                    problem, made.output, options, key, index, check: .compressorHook, input: made.inputDescription))
        }
    }

    /// One array of the storage's encoding (made by the plugin's hooks) written and read back, then read
    /// again with its metadata, buffers and children damaged.
    func checkStorage(
        _ storage: EncodingStorage, _ run: inout PluginConformance.KeyRun, _ index: Int, _ g: inout ArrayGenerator
    ) {
        let key = run.report.key
        let encoding = storage.encoding
        let dtypes = ArrayGenerator.dtypes.filter { d in hooks.contains { $0.applies(d) } }
        let made: HookSample
        do {
            guard !dtypes.isEmpty,
                let sample = try PluginConformance.hookSample(
                    &g, hooks: hooks, dtypes: dtypes, rows: PluginConformance.rows(index, &g),
                    samples: options.sampleColumns, edge: index < PluginConformance.edgeInputs ? index : nil,
                    wanting: { StoredTree.first(encoding, in: $0) != nil })
            else {
                run.lastProblem =
                    "no compressor hook of the plugin made a \(encoding.name) array; add sample columns (ConformanceOptions.sampleColumns)"
                return
            }
            made = sample
        } catch {
            run.lastProblem = "\(error)"
            return
        }
        guard let node = StoredTree.first(encoding, in: made.output) else { return }
        run.generated += 1
        let who = "storage of \(encoding.name) (\(storage.owner))"
        func fail(_ problem: String) {
            run.report.failures.append(
                PluginConformance.failure(
                    "\(who): " + problem, node, options, key, index, check: .storage,
                    input: "array written:\n" + node.treeDescription(indent: "  ")))
        }
        guard case .success(let original) = PluginConformance.reference(node, in: reference) else { return }
        let stored: StoredTree
        do {
            stored = try StoredTree(node, storages)
        } catch {
            fail("writing an array its compressor hook made failed: \(error)")
            return
        }
        let back: any ArrayNode
        do {
            back = try stored.read(storages)
        } catch {
            fail("reading back what it wrote failed: \(error)")
            return
        }
        switch PluginConformance.reference(back, in: reference) {
        case .failure(let e):
            fail("what it read back does not decode: \(e)")
            return
        case .success(let decoded):
            if let d = KernelConformance.bitDifference(decoded, original, "read back", "written") {
                fail("written and read back, \(d)")
                return
            }
        }
        for mutation in stored.mutations(&g, storage: storage).shuffled(using: &g).prefix(6) {
            guard let read = try? mutation.tree.read(storages),
                case .success(let decoded) = PluginConformance.reference(read, in: reference)
            else { continue }  // an error: what a damaged node must give, unless it reads as the original
            if mutation.mustKeepValues,
                let d = KernelConformance.bitDifference(decoded, original, "read back", "written")
            {
                fail("with \(mutation.name), reading gave other values instead of an error: \(d)")
            } else if decoded.count != node.count || decoded.dtype != node.dtype {
                fail("with \(mutation.name), reading gave \(decoded.dtype), len=\(decoded.count)")
            }
        }
    }
}

/// A node and its children as an `.eddy` file holds them: each node's parts as its encoding's storage
/// wrote them, buffers as bytes (read back into fresh 64-byte aligned memory, as from a file).
struct StoredTree {
    var encoding: String
    var dtype: DType
    var count: Int
    var metadata: [UInt8]
    var version: UInt32
    var buffers: [[UInt8]]
    var children: [StoredTree]

    /// `node` written with the storages of its encodings.
    /// - Throws: when an encoding has no storage or its storage fails.
    init(_ node: any ArrayNode, _ storages: (String) -> EncodingStorage?, depth: Int = 0) throws {
        guard depth < 64 else { throw EddyError(.invalidArgument, "tree deeper than 64 nodes") }
        guard let storage = storages(node.encoding.name) else {
            throw EddyError(.unsupported, "encoding \(node.encoding.name) has no storage")
        }
        let parts = try storage.write(node)
        encoding = node.encoding.name
        dtype = node.dtype
        count = node.count
        metadata = parts.metadata
        version = storage.metadataVersion
        buffers = parts.buffers.map { b in b.withUnsafeBufferPointer(as: UInt8.self) { Array($0) } }
        children = try parts.children.map { try StoredTree($0, storages, depth: depth + 1) }
    }

    /// The node read back, children first.
    func read(_ storages: (String) -> EncodingStorage?) throws -> any ArrayNode {
        guard let storage = storages(encoding) else {
            throw EddyError(.unsupported, "encoding \(encoding) has no storage")
        }
        let buffers = try self.buffers.map { bytes in
            let storage = BufferStorage(byteCount: bytes.count, alignment: 64)
            bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress { storage.pointer.copyMemory(from: base, byteCount: raw.count) }
            }
            return try Buffer(storage: storage, byteOffset: 0, byteCount: bytes.count)
        }
        return try storage.read(
            StoredNode(
                dtype: dtype, count: count, metadata: metadata, metadataVersion: version, buffers: buffers,
                children: try children.map { try $0.read(storages) }))
    }

    /// The first node of `encoding` in `tree` (depth first), or nil.
    static func first(_ encoding: EncodingID, in tree: any ArrayNode) -> (any ArrayNode)? {
        if tree.encoding == encoding { return tree }
        for child in tree.children {
            if let found = first(encoding, in: child) { return found }
        }
        return nil
    }

    /// One way the top node can be damaged in a file.
    struct Mutation {
        let name: String
        let tree: StoredTree
        /// A damage that the format's structure shows (a count, a length, a missing part): reading must
        /// throw or give the original values. A flipped bit in a value the storage cannot check (a
        /// reference, an exponent) may read as other values — the file's CRC-32C catches that — but
        /// must not trap, and must keep the stored dtype and length.
        let mustKeepValues: Bool
    }

    /// Damaged copies of this tree: its top node's count, metadata, buffers, version and children.
    func mutations(_ g: inout ArrayGenerator, storage: EncodingStorage) -> [Mutation] {
        var out: [Mutation] = []
        func add(_ name: String, keep: Bool = true, _ change: (inout StoredTree) -> Void) {
            var t = self
            change(&t)
            out.append(Mutation(name: name, tree: t, mustKeepValues: keep))
        }
        add("the node's row count one more") { $0.count += 1 }
        if count > 0 {
            add("the node's row count one less") { $0.count -= 1 }
            add("the node's row count 0") { $0.count = 0 }
        }
        if !metadata.isEmpty {
            add("the metadata's last byte cut") { $0.metadata.removeLast() }
            add("the metadata empty") { $0.metadata = [] }
            let byte = g.int(0...(metadata.count - 1))
            let bit = UInt8(1) << UInt8(g.int(0...7))
            add("bit \(bit.trailingZeroBitCount) of metadata byte \(byte) flipped", keep: false) {
                $0.metadata[byte] ^= bit
            }
        }
        add("a byte added to the metadata") { $0.metadata.append(UInt8(truncatingIfNeeded: g.next())) }
        if !storage.readableVersions.contains(version &+ 1) {
            add("metadata version \(version &+ 1)") { $0.version = version &+ 1 }
        }
        if let last = children.last {
            add("child \(children.count - 1) dropped") { $0.children.removeLast() }
            add("an extra child") { $0.children.append(last) }
            if last.count > 0 {
                add("child \(children.count - 1) one row short") { $0.children[$0.children.count - 1].count -= 1 }
            }
        }
        if let i = buffers.indices.randomElement(using: &g) {
            add("buffer \(i) dropped") { $0.buffers.remove(at: i) }
            if !buffers[i].isEmpty {
                add("buffer \(i) cut by one byte") { $0.buffers[i].removeLast() }
                let byte = g.int(0...(buffers[i].count - 1))
                add("a bit of buffer \(i) flipped", keep: false) { $0.buffers[i][byte] ^= 0x10 }
            }
        }
        add("an extra buffer") { $0.buffers.append([UInt8](repeating: 0, count: 8)) }
        return out
    }
}

extension ArrayGenerator {
    /// Whether `encoding` can hold values of `dtype` (an integer encoding holds no text): the kit draws
    /// only those for a key, so that its budget is spent on inputs of the key.
    static func encoding(_ encoding: EncodingID, holds dtype: DType) -> Bool {
        switch encoding {
        case PrimitiveArray.id: if case .primitive = dtype { true } else { false }
        case BoolArray.id: if case .bool = dtype { true } else { false }
        case VarBinArray.id: dtype.isUTF8 || { if case .binary = dtype { true } else { false } }()
        case NullArray.id: dtype == .null
        case StructArray.id: if case .struct = dtype { true } else { false }
        case IntStringArray.id: dtype.isUTF8
        case FoRArray.id: dtype.isInteger
        case BitPackedArray.id: dtype.ptype?.isUnsignedInteger == true
        default: true
        }
    }

    /// Whether ``encode(_:as:depth:)`` makes arrays of `encoding` (the engine's canonical and
    /// compressed encodings); a plugin's encodings come from its compressor hooks.
    static func makes(_ encoding: EncodingID) -> Bool {
        [
            PrimitiveArray.id, BoolArray.id, VarBinArray.id, NullArray.id, StructArray.id, IntStringArray.id,
            ConstantArray.id, DictArray.id, RunEndArray.id, ChunkedArray.id, SliceArray.id, SparseArray.id,
            FoRArray.id, BitPackedArray.id,
        ].contains(encoding)
    }
}
