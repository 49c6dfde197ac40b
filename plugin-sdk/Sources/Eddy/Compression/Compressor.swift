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

    private func apply(_ scheme: Scheme, _ array: any ArrayNode, _ depth: Int, stats: ColumnStats?) throws -> (
        any ArrayNode
    )? {
        switch scheme {
        case .hook(let k):
            let hook = hooks[k]
            let recurse: (any ArrayNode) throws -> any ArrayNode = { try self.compress($0, depth: depth + 1) }
            let r: (any ArrayNode)?
            do {
                r =
                    try hook.callSite.map { site in try site.run { try hook.compress(array, recurse) } }
                    ?? hook.compress(array, recurse)
            } catch let e as EddyError where e.source != nil {
                throw e
            } catch {
                throw EddyError(
                    .kernelFailed, "compressor hook '\(hook.name)' of \(hook.owner) failed", cause: error,
                    source: hook.owner.description)
            }
            guard let r else { return nil }
            guard r.count == array.count, r.dtype == array.dtype else {
                throw EddyError(
                    .kernelContract,
                    "compressor hook '\(hook.name)' of \(hook.owner) returned length \(r.count) and dtype "
                        + "\(r.dtype) for a column of length \(array.count) and dtype \(array.dtype)",
                    source: hook.owner.description)
            }
            if !hook.owner.isBuiltin, let impostor = EngineEncodings.impostor(in: r) {
                throw EddyError(
                    .kernelContract,
                    "compressor hook '\(hook.name)' of \(hook.owner) returned a \(type(of: impostor)) that claims the "
                        + "engine's encoding \(impostor.encoding) (a plugin's encodings are named after the plugin)",
                    source: hook.owner.description)
            }
            return r
        case .sparse:
            guard let stats else { return nil }
            return try sparse(array, stats, depth)
        case .runEnd: return try runEnd(array, depth)
        case .dictionary: return try dictionary(array, depth)
        case .frameOfReference:
            guard let p = array as? PrimitiveArray else { return nil }
            return try frameOfReference(p, depth)
        case .intString:
            guard let v = array as? VarBinArray, let e = IntStringArray.encode(v) else { return nil }
            return try IntStringArray(
                prefix: e.prefix, suffix: e.suffix, width: e.width, numbers: compress(e.numbers, depth: depth + 1),
                nullability: v.dtype.nullability)
        }
    }

    /// 16 runs of 64 consecutive rows, evenly spaced (runs keep run-end and delta visible).
    static func sample(_ array: any ArrayNode) throws -> any ArrayNode {
        let runs = 16
        let length = 64
        let step = array.count / runs
        var rows: [Int64] = []
        rows.reserveCapacity(runs * length)
        for r in 0..<runs {
            let start = r * step
            for k in 0..<Swift.min(length, array.count - start) { rows.append(Int64(start + k)) }
        }
        return try Canonical.take(array, indices: PrimitiveArray(rows)).withDType(array.dtype)
    }

    private func sparse(_ array: any ArrayNode, _ stats: ColumnStats, _ depth: Int) throws -> (any ArrayNode)? {
        guard let fill = stats.dominant else { return nil }
        var positions: [UInt32] = []
        for i in 0..<array.count where !(try array.scalar(at: i).value.isIdentical(to: fill)) {
            positions.append(UInt32(i))
        }
        let values = try Canonical.take(array, indices: PrimitiveArray(positions))
        let indices = try compress(PrimitiveArray(positions), depth: depth + 1)
        return try SparseArray(
            fill: Scalar(fill, array.dtype), indices: indices,
            values: compress(values, depth: depth + 1), count: array.count)
    }

    private func runEnd(_ array: any ArrayNode, _ depth: Int) throws -> (any ArrayNode)? {
        let re = try RunEndArray.encode(array)
        return try RunEndArray(
            ends: re.ends, values: compress(re.values, depth: depth + 1), offset: 0, count: array.count)
    }

    private func dictionary(_ array: any ArrayNode, _ depth: Int) throws -> (any ArrayNode)? {
        try dictionary(array, limit: Swift.min(65_536, Swift.max(array.count / 2, 1))) {
            try compress($0, depth: depth + 1)
        }
    }

    /// `array` as a dictionary (codes in first-appearance order, in the narrowest unsigned type), its
    /// codes and values passed through `parts` (compressed again, or kept as they are); nil past
    /// `limit` distinct values.
    private func dictionary(
        _ array: any ArrayNode, limit: Int, parts: (any ArrayNode) throws -> any ArrayNode
    ) throws -> (any ArrayNode)? {
        guard let (codes, firsts, nulls) = try DictionaryBuilder.codes(array, limit: limit) else { return nil }
        let values = try Canonical.take(array, indices: PrimitiveArray(firsts))
            .withDType(nulls ? array.dtype.with(.nonNullable) : array.dtype)
        let width = PType.smallestUnsigned(holding: UInt64(Swift.max(firsts.count - 1, 0)))
        let codeArray: any ArrayNode = width.visitIntegerUnchecked(
            NarrowCodes(
                codes: codes, validity: nulls ? Canonical.validity(of: array) : .allValid, nullable: nulls))
        let d = try DictArray(codes: parts(codeArray), values: parts(values))
        return d.dtype == array.dtype ? d : nil
    }

    private struct NarrowCodes: IntegerPTypeVisitor {
        let codes: [UInt32]
        let validity: Validity
        let nullable: Bool
        func visit<T: NativeInteger>(_ type: T.Type) -> any ArrayNode {
            PrimitiveArray.build(
                T.self, count: codes.count, validity: validity,
                nullability: nullable ? .nullable : .nonNullable
            ) { out in
                for i in codes.indices { out[i] = T(truncatingIfNeeded: codes[i]) }
            }
        }
    }

    private func frameOfReference(_ array: PrimitiveArray, _ depth: Int) throws -> (any ArrayNode)? {
        let f = try FoRArray.encode(array)
        guard let child = f.child as? PrimitiveArray else { return nil }
        // Pick the bit width that minimises packed bits plus patches (each patch costs index + value).
        let values = child.int128Values()
        var histogram = [Int](repeating: 0, count: 65)
        for (i, v) in values.enumerated() where child.validity.isValid(i) {
            histogram[v == 0 ? 0 : 128 - v.leadingZeroBitCount] += 1
        }
        let n = values.count
        let patchCost = 64 + child.ptype.byteWidth * 8
        var bestWidth = 64
        var bestBits = Int.max
        var above = 0
        for w in stride(from: 64, through: 0, by: -1) {
            let bits = n * w + above * patchCost
            if bits < bestBits {
                bestBits = bits
                bestWidth = w
            }
            above += histogram[w]
        }
        let packed: any ArrayNode =
            bestWidth >= child.ptype.byteWidth * 8
            ? child : try BitPackedArray.encode(child, bitWidth: bestWidth)
        // Unsigned values starting at zero need no reference: pack them directly.
        if f.reference.value.asInt128 == 0, array.ptype.isUnsignedInteger, let bp = packed as? BitPackedArray {
            return try BitPackedArray.encode(array, bitWidth: bp.bitWidth)
        }
        return try FoRArray(reference: f.reference, child: packed)
    }
}

/// A plug-in point of the compressor: proposes an encoding for columns of some types.
public struct CompressorHook: Sendable {
    /// The hook's name, non-empty and unique within its plugin; errors and crash reports name it.
    public let name: String
    /// The plugin the hook belongs to; blamed when the hook fails or breaks its contract.
    public let owner: KernelOwner
    /// What the hook's encoding is for: the compressor asks the hook only when it compresses for one of
    /// these purposes (``Purpose/storage`` for a hook made with the initialiser that does not say).
    public let purpose: Purpose
    /// Whether the hook should be tried on a column of the given dtype.
    public let applies: @Sendable (DType) -> Bool
    /// Returns an encoded equivalent of the canonical column (or nil); the second argument compresses
    /// a child array with the full compressor.
    public let compress: @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    /// Marked on the thread while a plugin's hook runs, for crash reports.
    let callSite: PluginCallSite?

    /// A hook of `owner` for ``Purpose/storage``: asked when a file is written (`eddy convert`) or a batch
    /// is compressed as a file would store it, never for a column a query reads once. Plugins register
    /// hooks with ``PluginRegistrar/registerCompressor(_:applies:compress:)``, which sets the owner. A
    /// result of another length or dtype than the column is a ``EddyError/Code/kernelContract`` error.
    public init(
        name: String, owner: KernelOwner, applies: @escaping @Sendable (DType) -> Bool,
        compress:
            @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    ) {
        self.init(name: name, owner: owner, purpose: .storage, applies: applies, compress: compress)
    }

    /// A hook of `owner` asked only when the compressor compresses for `purpose` (see ``Purpose``).
    /// Plugins register hooks with ``PluginRegistrar/registerCompressor(_:purpose:applies:compress:)``,
    /// which sets the owner. A result of another length or dtype than the column is a
    /// ``EddyError/Code/kernelContract`` error.
    public init(
        name: String, owner: KernelOwner, purpose: Purpose, applies: @escaping @Sendable (DType) -> Bool,
        compress:
            @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    ) {
        self.name = name
        self.owner = owner
        self.purpose = purpose
        self.applies = applies
        self.compress = compress
        self.callSite = PluginCallSite.of("compressor hook", name, owner)
    }

    /// The same hook (name, owner, purpose, the types it applies to) with `compress` in place of its
    /// own: for a host that wraps a plugin's hook to watch or filter what it proposes.
    public func replacing(
        compress:
            @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    ) -> CompressorHook {
        CompressorHook(name: name, owner: owner, purpose: purpose, applies: applies, compress: compress)
    }
}

extension CompressorHook {
    /// What a compressor hook's encoding is for. The compressor asks a hook only for its purpose, so a
    /// hook that costs more than one pass of a query saves is never run on a column read once.
    ///
    /// - ``storage``: data encoded once and read many times (`eddy convert`, `--compression storage`).
    ///   The encoding may take several passes to build; it pays back over the file's later reads.
    /// - ``query``: a column parsed from CSV or JSON Lines and read by one query. Declare it only when
    ///   the plugin's kernels on the encoding make that one query faster *including* the hook's own
    ///   pass over the column (say, a comparison that runs on a few distinct values instead of every
    ///   row). With `--compression auto` the hook is asked only for columns the query filters on.
    public struct Purpose: OptionSet, Sendable, Hashable, CustomStringConvertible {
        /// The purposes as bits: 1 query, 2 storage.
        public let rawValue: UInt32

        /// The purposes whose bits are set in `rawValue`.
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// A column read once by the query at hand, encoded just after it was parsed.
        public static let query = Purpose(rawValue: 1)
        /// Data encoded once to be stored and read many times.
        public static let storage = Purpose(rawValue: 2)
        /// Both: the hook pays within one pass and is worth storing too.
        public static let queryAndStorage: Purpose = [.query, .storage]

        /// `query`, `storage`, `query+storage` or `none`.
        public var description: String {
            let names = [(Purpose.query, "query"), (.storage, "storage")].filter { contains($0.0) }.map(\.1)
            return names.isEmpty ? "none" : names.joined(separator: "+")
        }
    }
}

/// Statistics the compressor decides by, from the whole column or, for long columns, a sample of
/// contiguous blocks (so that runs stay visible).
struct ColumnStats {
    var isConstant = false
    var distinct = 0
    var averageRun = 1.0
    var dominant: ScalarValue?
    var dominantFraction = 0.0

    init(_ array: any ArrayNode) {
        let n = array.count
        let sampleRows: [Int]
        if n <= 16_384 {
            sampleRows = Array(0..<n)
        } else {
            let blocks = 64
            let blockLength = 128
            let step = n / blocks
            sampleRows = (0..<blocks).flatMap { b in (b * step)..<Swift.min(b * step + blockLength, n) }
        }
        // Keyed by identity: -0.0 and 0.0 are equal as numbers but must not merge into one value.
        var counts: [ScalarValue: Int] = [:]
        func key(_ v: ScalarValue) -> ScalarValue { if case .float(let d) = v { .uint(d.bitPattern) } else { v } }
        var runs = 0
        var previous: ScalarValue?
        var previousRow = -2
        for row in sampleRows {
            guard let v = try? array.scalar(at: row).value else { continue }
            counts[key(v), default: 0] += 1
            if previousRow != row - 1 || previous.map({ !$0.isIdentical(to: v) }) ?? true { runs += 1 }
            previous = v
            previousRow = row
        }
        distinct = counts.count
        // Scale distinct values seen in the sample up to the column (a coarse estimate is enough to
        // decide whether a dictionary is worth trying; the dictionary itself gives up past its limit).
        if sampleRows.count < n, distinct > sampleRows.count / 2 { distinct = n }
        averageRun = Double(sampleRows.count) / Double(Swift.max(runs, 1))
        if let (k, c) = counts.max(by: { $0.value < $1.value }) {
            if case .uint(let bits) = k, array.dtype.ptype?.isFloat == true {
                dominant = .float(Double(bitPattern: bits))
            } else {
                dominant = k
            }
            dominantFraction = Double(c) / Double(Swift.max(sampleRows.count, 1))
        }
        if distinct == 1, sampleRows.count == n { isConstant = true }
        if distinct == 1, sampleRows.count < n, let only = dominant {
            isConstant = (0..<n).allSatisfy { (try? array.scalar(at: $0).value.isIdentical(to: only)) == true }
        }
    }
}

extension ArrayNode {
    /// Bytes held by this array's buffers and its children's (an estimate for small metadata).
    public var byteSize: Int {
        func validityBytes(_ v: Validity) -> Int { if case .bitmap(let b) = v { (b.count + 7) / 8 } else { 0 } }
        var own = 16
        switch self {
        case let p as PrimitiveArray: own += p.count * p.ptype.byteWidth + validityBytes(p.validity)
        case let b as BoolArray: own += (b.count + 7) / 8 + validityBytes(b.validity)
        case let v as VarBinArray:
            let o = v.offsets.typed(Int32.self)
            own += (v.count + 1) * 4 + Int(o[v.count] - o[0]) + validityBytes(v.validity)
        case let bp as BitPackedArray:
            own +=
                (bp.count * bp.bitWidth + 7) / 8 + bp.patchIndices.count * 8
                + (bp.patchValues?.byteSize ?? 0) + validityBytes(bp.validity)
        default: break
        }
        return own + children.reduce(0) { $0 + $1.byteSize }
    }
}

/// Assigns dictionary codes in order of first appearance, with typed hashing (no per-row boxing).
enum DictionaryBuilder {
    /// Codes per row (0 for nulls), the row of each distinct value's first appearance, and whether
    /// there were nulls; nil once more than `limit` distinct values appear.
    static func codes(_ array: any ArrayNode, limit: Int) throws -> (codes: [UInt32], firsts: [Int64], nulls: Bool)? {
        let n = array.count
        var codes = [UInt32](repeating: 0, count: n)
        var firsts: [Int64] = []
        var nulls = false
        let validity = Canonical.validity(of: array)
        switch array {
        case let p as PrimitiveArray:
            let ok = p.ptype.visit(
                PrimitiveCodes(array: p, limit: limit, codes: &codes, firsts: &firsts, nulls: &nulls))
            return ok ? (codes, firsts, nulls) : nil
        case let v as VarBinArray:
            var table = ByteHashTable(capacity: Swift.min(limit, 1024))
            let offsets = v.offsets.typed(Int32.self)
            let base = v.bytes.baseAddress
            for i in 0..<n {
                guard validity.isValid(i) else {
                    nulls = true
                    continue
                }
                let s = Int(offsets[i])
                let bytes = UnsafeRawBufferPointer(start: base + s, count: Int(offsets[i + 1]) - s)
                let (code, inserted) = table.insert(bytes, code: UInt32(firsts.count))
                if inserted {
                    firsts.append(Int64(i))
                    if firsts.count > limit { return nil }
                }
                codes[i] = code
            }
            return withExtendedLifetime(v) { (codes, firsts, nulls) }
        default:
            var index: [ScalarValue: UInt32] = [:]
            for i in 0..<n {
                let value = try array.scalar(at: i).value
                if value.isNull {
                    nulls = true
                    continue
                }
                if let c = index[value] {
                    codes[i] = c
                } else {
                    index[value] = UInt32(firsts.count)
                    codes[i] = UInt32(firsts.count)
                    firsts.append(Int64(i))
                    if firsts.count > limit { return nil }
                }
            }
            return (codes, firsts, nulls)
        }
    }

    private struct PrimitiveCodes: PTypeVisitor {
        let array: PrimitiveArray
        let limit: Int
        let codes: UnsafeMutablePointer<[UInt32]>
        let firsts: UnsafeMutablePointer<[Int64]>
        let nulls: UnsafeMutablePointer<Bool>

        init(array: PrimitiveArray, limit: Int, codes: inout [UInt32], firsts: inout [Int64], nulls: inout Bool) {
            self.array = array
            self.limit = limit
            // The visitor runs synchronously inside `codes(_:limit:)`, while those locals are alive.
            self.codes = withUnsafeMutablePointer(to: &codes) { $0 }
            self.firsts = withUnsafeMutablePointer(to: &firsts) { $0 }
            self.nulls = withUnsafeMutablePointer(to: &nulls) { $0 }
        }

        func visit<T: NativeType>(_ type: T.Type) -> Bool {
            // Keyed by the value's bits: -0.0 and 0.0 (equal as numbers) stay two values, and each NaN
            // keeps its own bits (a NaN is not equal to itself, so it could not key a dictionary).
            var index: [UInt64: UInt32] = [:]
            let validity = array.validity
            let validBits = ValidityBits(validity)
            return array.withValuesUnchecked(T.self) { v in
                for i in 0..<v.count {
                    guard validBits.isValid(i) else {
                        nulls.pointee = true
                        continue
                    }
                    var key: UInt64 = 0
                    withUnsafeBytes(of: v[i]) { raw in
                        withUnsafeMutableBytes(of: &key) {
                            $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw.prefix(8)))
                        }
                    }
                    if let c = index[key] {
                        codes.pointee[i] = c
                    } else {
                        let c = UInt32(firsts.pointee.count)
                        index[key] = c
                        codes.pointee[i] = c
                        firsts.pointee.append(Int64(i))
                        if firsts.pointee.count > limit { return false }
                    }
                }
                return true
            }
        }
    }
}

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
