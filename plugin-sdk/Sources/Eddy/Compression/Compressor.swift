/// Turns a canonical column into an encoded tree, choosing encodings from the column's statistics.
///
/// Candidates: constant; sparse (one dominant value); run-end (long runs; values compressed again);
/// dictionary (few distinct utf8 or integer values; codes bit-packed, values compressed again);
/// frame-of-reference with bit-packing and patches for outliers (integers); numbers in fixed text
/// (``IntStringArray``: ids such as `T00042`, the numbers compressed again). Each choice is kept only
/// if it is smaller than what it replaces, so the result never grows. The round trip is exact.
@_spi(Host)
public struct Compressor: Sendable {
    /// How deep cascades may go (dictionary codes bit-packed, run values dictionary-encoded …).
    public var maxDepth: Int
    /// Hooks that may propose an encoding of their own (a plugin's, for instance) before the built-ins;
    /// each is asked only for the goal its ``CompressorHook/purpose`` names.
    public var hooks: [CompressorHook]
    /// What the encoded column is for.
    public var goal: Goal

    /// What to compress for.
    public enum Goal: Sendable {
        /// The smallest tree the schemes find (cascades included): for data kept and read many times.
        /// Only hooks whose ``CompressorHook/purpose`` includes ``CompressorHook/Purpose/storage`` are asked.
        case storage
        /// One pass of a query over data just parsed: only encodings whose kernels repay their cost in
        /// that pass — a dictionary for low-cardinality strings (found on a sample, so a column of
        /// distinct strings costs one small sample), narrow codes, no cascades, numbers left plain. Only
        /// hooks whose ``CompressorHook/purpose`` includes ``CompressorHook/Purpose/query`` are asked.
        case query
        /// Decided per column by how the query at hand uses it (``ColumnUse``): a column the query filters
        /// on is encoded as for ``query`` (a comparison over a dictionary runs once per distinct value); a
        /// column it only computes with or outputs stays as parsed (one pass over it costs less than
        /// encoding it). The loaded plugins' kernels never change the choice. What `eddy eval` does by default.
        case auto
        /// ``storage`` when `storage`, else ``query``, with every hook asked whatever its purpose: what
        /// ``goal(for:)`` gives. Neither `eddy eval` nor `eddy serve` uses it (both take the goal the user
        /// names, ``auto`` by default); kept so that plugins built against SDK 1.x still link.
        case serving(storage: Bool)
    }

    /// How a query uses a column: what ``Goal/auto`` decides by.
    public enum ColumnUse: Sendable {
        /// Named in the filter (`--where`): compared, matched or tested once per row.
        case filtered
        /// Only computed with, aggregated or output.
        case computed
    }

    /// ``Goal/serving(storage:)``, storage when a plugin has kernels or rules on the engine's compressed
    /// encodings (a dictionary, run-end, bit-packed, frame-of-reference, sparse or constant child). Not used
    /// by the host any more: switching every column of every batch to storage compression because a plugin
    /// was loaded made CSV queries 2–3× slower. `eddy eval` and `eddy serve` both encode by the goal the
    /// user names (``Goal/auto`` by default). Kept for plugins built against SDK 1.x.
    public static func goal(for snapshot: KernelSnapshot) -> Goal {
        let compressed: Set<EncodingID> = [
            DictArray.id, RunEndArray.id, BitPackedArray.id, FoRArray.id, SparseArray.id, ConstantArray.id,
        ]
        return .serving(storage: !snapshot.pluginKernelChildren.isDisjoint(with: compressed))
    }

    public init(maxDepth: Int = 3, hooks: [CompressorHook] = [], goal: Goal = .storage) {
        self.maxDepth = maxDepth
        self.hooks = hooks
        self.goal = goal
    }

    /// The encoded form of canonical `array`, or the array itself when nothing is smaller.
    public func compress(_ array: any ArrayNode) throws -> any ArrayNode {
        try compress(array, use: .filtered)
    }

    /// The encoded form of canonical `array`, used by a query as `use` says (which only ``Goal/auto``
    /// looks at), or the array itself when no encoding pays.
    public func compress(_ array: any ArrayNode, use: ColumnUse) throws -> any ArrayNode {
        switch goal {
        case .storage, .serving(storage: true): try compress(array, depth: 0)
        case .query, .serving(storage: false): try compressForQuery(array)
        case .auto: use == .filtered ? try compressForQuery(array) : array
        }
    }

    /// The indices of the hooks asked for `purpose` that apply to `dtype`, as schemes (every hook that
    /// applies, whatever its purpose, under ``Goal/serving(storage:)``).
    private func hookSchemes(_ purpose: CompressorHook.Purpose, _ dtype: DType) -> [Scheme] {
        let every: Bool = if case .serving = goal { true } else { false }
        return hooks.indices.filter { (every || hooks[$0].purpose.contains(purpose)) && hooks[$0].applies(dtype) }
            .map { .hook($0) }
    }

    /// See ``Goal/query``.
    private func compressForQuery(_ array: any ArrayNode) throws -> any ArrayNode {
        guard array.isCanonical, array.count > 0, maxDepth > 0 else { return array }
        let hooked = hookSchemes(.query, array.dtype)
        if !hooked.isEmpty, let encoded = try pick(hooked, array, 0, stats: nil) { return encoded }
        guard let strings = array as? VarBinArray, strings.count >= 64 else { return array }
        // A sample of up to 1,024 rows, evenly spaced: few distinct values there → try a dictionary.
        let n = strings.count
        let sampleSize = Swift.min(n, 1_024)
        let offsets = strings.offsets.typed(Int32.self)
        let base = strings.bytes.baseAddress
        var table = ByteHashTable(capacity: 256)
        var distinct = 0
        for k in 0..<sampleSize {
            let i = k * n / sampleSize
            guard strings.validity.isValid(i) else { continue }
            let s = Int(offsets[i])
            let bytes = UnsafeRawBufferPointer(start: base + s, count: Int(offsets[i + 1]) - s)
            if table.insert(bytes, code: UInt32(distinct)).1 {
                distinct += 1
                if distinct * 8 > sampleSize { return array }
            }
        }
        return try dictionary(array, limit: Swift.min(65_536, Swift.max(n / 4, 1)), parts: { $0 }) ?? array
    }

    /// The first of `schemes` (ranked on a sample for long columns, else tried in full) whose tree is
    /// smaller than `array`, or nil.
    private func pick(_ schemes: [Scheme], _ array: any ArrayNode, _ depth: Int, stats: ColumnStats?) throws
        -> (any ArrayNode)?
    {
        if array.count > Self.sampleThreshold {
            let sample = try Self.sample(array)
            let plain = Double(sample.byteSize)
            var ranked: [(Scheme, Double)] = []
            for scheme in schemes {
                if scheme == .dictionary, let stats, stats.distinct > 0, !array.dtype.isInteger {
                    // A sample of 1,024 rows sees nearly every value once when the column has a few
                    // thousand: estimate from the column's distinct count instead (codes bit-packed,
                    // one copy of each value). Integers keep the sample's verdict: frame-of-reference is
                    // about as small there, and its kernels compare packed values without decoding.
                    let n = Double(array.count)
                    let bits = Double(Swift.max(1, Int.bitWidth - (stats.distinct - 1).leadingZeroBitCount))
                    let perValue = Double(array.byteSize) / n
                    ranked.append((scheme, (n * bits / 8 + Double(stats.distinct) * perValue) / Double(array.byteSize)))
                    continue
                }
                if let encoded = try apply(scheme, sample, depth, stats: stats.map { _ in ColumnStats(sample) }) {
                    ranked.append((scheme, Double(encoded.byteSize) / plain))
                }
            }
            // The full column must still beat plain: take the first scheme that does.
            for (scheme, _) in ranked.filter({ $0.1 < 1 }).sorted(by: { $0.1 < $1.1 }) {
                if let encoded = try apply(scheme, array, depth, stats: stats), encoded.byteSize < array.byteSize,
                    encoded.dtype == array.dtype
                {
                    return encoded
                }
            }
            return nil
        }
        var best: (any ArrayNode)?
        var bestSize = array.byteSize
        for scheme in schemes {
            guard let c = try apply(scheme, array, depth, stats: stats), c.count == array.count, c.dtype == array.dtype
            else { continue }
            let size = c.byteSize
            if size < bestSize {
                best = c
                bestSize = size
            }
        }
        return best
    }

    /// One way to encode a column.
    enum Scheme: Equatable {
        case hook(Int), sparse, runEnd, dictionary, frameOfReference, intString
    }

    /// The first 64 rows of a text column: a cheap check of whether ``IntStringArray`` may fit it.
    static func head(_ v: VarBinArray) -> VarBinArray { v.count <= 64 ? v : v.uncheckedSlice(0, 64) }

    /// Columns longer than this choose their scheme on a sample (16 runs of 64 rows) and apply only
    /// the winner to the whole column; shorter ones try every candidate in full.
    static let sampleThreshold = 8_192

    func compress(_ array: any ArrayNode, depth: Int) throws -> any ArrayNode {
        guard array.isCanonical, array.count > 0, depth < maxDepth else { return array }
        let stats = ColumnStats(array)
        if stats.isConstant {
            return ConstantArray(try array.scalar(at: 0), count: array.count)
        }
        var schemes = hookSchemes(.storage, array.dtype)
        if stats.dominantFraction >= 0.9, stats.dominant != nil { schemes.append(.sparse) }
        if stats.averageRun >= 4 { schemes.append(.runEnd) }
        if stats.distinct <= Swift.max(array.count / 4, 1), stats.distinct <= 65_536,
            array.dtype.isUTF8 || array.dtype.isBinary || array.dtype.isInteger || array.dtype.ptype?.isFloat == true
        {
            schemes.append(.dictionary)
        }
        if let p = array as? PrimitiveArray, p.ptype.isInteger { schemes.append(.frameOfReference) }
        if let v = array as? VarBinArray, v.dtype.isUTF8, IntStringArray.encode(Self.head(v)) != nil {
            schemes.append(.intString)
        }
        if schemes.isEmpty { return array }

        return try pick(schemes, array, depth, stats: stats) ?? array
    }
}

// ByteHashTable stays in this file: the ABI baseline names its private stored properties by this file's
// name (a private declaration's mangled name carries its file), so moving it reads as an ABI change.
/// Open-addressing hash table from byte strings to codes, for dictionary-encoding text.
struct ByteHashTable {
    private var slots: [Int32]
    private var hashes: [UInt64]
    private var keys: [(start: Int, count: Int)] = []
    private var storage: [UInt8] = []
    private var mask: Int

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        hashes = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    static func hash(_ b: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(b.count)
        var i = 0
        while i + 8 <= b.count {
            h = (h ^ b.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x100_0000_01b3
            h ^= h >> 29
            i += 8
        }
        while i < b.count {
            h = (h ^ UInt64(b[i])) &* 0x100_0000_01b3
            i += 1
        }
        return h ^ (h >> 32)
    }

    /// The code of `bytes`, inserting it with `code` if new.
    mutating func insert(_ bytes: UnsafeRawBufferPointer, code: UInt32) -> (UInt32, Bool) {
        if keys.count * 2 >= slots.count { grow() }
        let h = Self.hash(bytes)
        var s = Int(truncatingIfNeeded: h) & mask
        while true {
            let k = slots[s]
            if k < 0 {
                slots[s] = Int32(keys.count)
                hashes[s] = h
                keys.append((storage.count, bytes.count))
                storage.append(contentsOf: bytes)
                return (code, true)
            }
            if hashes[s] == h {
                let key = keys[Int(k)]
                if key.count == bytes.count
                    && storage.withUnsafeBytes({ st in
                        bytes.count == 0 || memcmpEqual(st.baseAddress! + key.start, bytes.baseAddress!, bytes.count)
                    })
                {
                    return (UInt32(k), false)
                }
            }
            s = (s + 1) & mask
        }
    }

    private mutating func grow() {
        let size = slots.count * 2
        var newSlots = [Int32](repeating: -1, count: size)
        var newHashes = [UInt64](repeating: 0, count: size)
        let newMask = size - 1
        for s in slots.indices where slots[s] >= 0 {
            var t = Int(truncatingIfNeeded: hashes[s]) & newMask
            while newSlots[t] >= 0 { t = (t + 1) & newMask }
            newSlots[t] = slots[s]
            newHashes[t] = hashes[s]
        }
        slots = newSlots
        hashes = newHashes
        mask = newMask
    }
}

func memcmpEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    for i in 0..<n where a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) {
        return false
    }
    return true
}
