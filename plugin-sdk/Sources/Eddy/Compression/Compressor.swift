/// Turns a canonical column into an encoded tree, choosing encodings from the column's statistics.
///
/// Candidates: constant; sparse (one dominant value); run-end (long runs; values compressed again);
/// dictionary (few distinct utf8 or integer values; codes bit-packed, values compressed again);
/// frame-of-reference with bit-packing and patches for outliers (integers). Each choice is kept only
/// if it is smaller than what it replaces, so the result never grows. The round trip is exact.
public struct Compressor: Sendable {
    /// How deep cascades may go (dictionary codes bit-packed, run values dictionary-encoded …).
    public var maxDepth: Int
    /// Hooks that may propose an encoding of their own (a plugin's, for instance) before the built-ins.
    public var hooks: [CompressorHook]

    public init(maxDepth: Int = 3, hooks: [CompressorHook] = []) {
        self.maxDepth = maxDepth
        self.hooks = hooks
    }

    /// The encoded form of canonical `array`, or the array itself when nothing is smaller.
    public func compress(_ array: any ArrayNode) throws -> any ArrayNode {
        try compress(array, depth: 0)
    }

    func compress(_ array: any ArrayNode, depth: Int) throws -> any ArrayNode {
        guard array.isCanonical, array.count > 0, depth < maxDepth else { return array }
        var best = array
        var bestSize = array.byteSize
        func consider(_ candidate: (any ArrayNode)?) {
            guard let c = candidate, c.count == array.count, c.dtype == array.dtype else { return }
            let size = c.byteSize
            if size < bestSize {
                best = c
                bestSize = size
            }
        }
        for hook in hooks where hook.applies(array.dtype) {
            consider(try hook.compress(array, { try self.compress($0, depth: depth + 1) }))
        }
        let stats = ColumnStats(array)
        if stats.isConstant {
            return ConstantArray(try array.scalar(at: 0), count: array.count)
        }
        if stats.dominantFraction >= 0.9, stats.dominant != nil {
            consider(try sparse(array, stats, depth))
        }
        if stats.averageRun >= 4 {
            consider(try runEnd(array, depth))
        }
        if stats.distinct <= Swift.max(array.count / 4, 1), stats.distinct <= 65_536,
           array.dtype.isUTF8 || array.dtype.isBinary || array.dtype.isInteger || array.dtype.ptype?.isFloat == true
        {
            consider(try dictionary(array, depth))
        }
        if let p = array as? PrimitiveArray, p.ptype.isInteger {
            consider(try frameOfReference(p, depth))
        }
        return best
    }

    private func sparse(_ array: any ArrayNode, _ stats: ColumnStats, _ depth: Int) throws -> (any ArrayNode)? {
        guard let fill = stats.dominant else { return nil }
        var positions: [UInt32] = []
        for i in 0..<array.count where !(try array.scalar(at: i).value.isIdentical(to: fill)) {
            positions.append(UInt32(i))
        }
        let values = try Canonical.take(array, indices: PrimitiveArray(positions))
        let indices = try compress(PrimitiveArray(positions), depth: depth + 1)
        return try SparseArray(fill: Scalar(fill, array.dtype), indices: indices,
                               values: compress(values, depth: depth + 1), count: array.count)
    }

    private func runEnd(_ array: any ArrayNode, _ depth: Int) throws -> (any ArrayNode)? {
        let re = try RunEndArray.encode(array)
        return try RunEndArray(ends: re.ends, values: compress(re.values, depth: depth + 1), offset: 0, count: array.count)
    }

    private func dictionary(_ array: any ArrayNode, _ depth: Int) throws -> (any ArrayNode)? {
        var index: [ScalarValue: UInt32] = [:]
        var firsts: [Int64] = []
        var codes = [UInt32](repeating: 0, count: array.count)
        var nulls = false
        for i in 0..<array.count {
            let v = try array.scalar(at: i).value
            if v.isNull {
                nulls = true
                continue
            }
            if let c = index[v] {
                codes[i] = c
            } else {
                let c = UInt32(firsts.count)
                index[v] = c
                firsts.append(Int64(i))
                codes[i] = c
                if firsts.count > 65_536 { return nil }
            }
        }
        let values = try Canonical.take(array, indices: PrimitiveArray(firsts))
            .withDType(nulls ? array.dtype.with(.nonNullable) : array.dtype)
        let width = PType.smallestUnsigned(holding: UInt64(Swift.max(firsts.count - 1, 0)))
        let codeArray: any ArrayNode = width.visitInteger(NarrowCodes(codes: codes, validity: nulls
            ? Compare.validityOf(array) : .allValid, nullable: nulls))
        let d = try DictArray(codes: compress(codeArray, depth: depth + 1),
                              values: compress(values, depth: depth + 1))
        return d.dtype == array.dtype ? d : nil
    }

    private struct NarrowCodes: IntegerPTypeVisitor {
        let codes: [UInt32]
        let validity: Validity
        let nullable: Bool
        func visit<T: NativeInteger>(_ type: T.Type) -> any ArrayNode {
            PrimitiveArray.build(T.self, count: codes.count, validity: validity,
                                 nullability: nullable ? .nullable : .nonNullable) { out in
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
        let packed: any ArrayNode = bestWidth >= child.ptype.byteWidth * 8
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
    public let name: String
    public let owner: KernelOwner
    public let applies: @Sendable (DType) -> Bool
    /// Returns an encoded equivalent of the canonical column (or nil); the second argument compresses
    /// a child array with the full compressor.
    public let compress: @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?

    public init(name: String, owner: KernelOwner, applies: @escaping @Sendable (DType) -> Bool,
                compress: @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?) {
        self.name = name
        self.owner = owner
        self.applies = applies
        self.compress = compress
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
        var counts: [ScalarValue: Int] = [:]
        var runs = 0
        var previous: ScalarValue?
        var previousRow = -2
        for row in sampleRows {
            guard let v = try? array.scalar(at: row).value else { continue }
            counts[v, default: 0] += 1
            if previousRow != row - 1 || previous.map({ !$0.isIdentical(to: v) }) ?? true { runs += 1 }
            previous = v
            previousRow = row
        }
        distinct = counts.count
        // Scale distinct values seen in the sample up to the column (a coarse estimate is enough to
        // decide whether a dictionary is worth trying; the dictionary itself gives up past its limit).
        if sampleRows.count < n, distinct > sampleRows.count / 2 { distinct = n }
        averageRun = Double(sampleRows.count) / Double(Swift.max(runs, 1))
        if let (v, c) = counts.max(by: { $0.value < $1.value }) {
            dominant = v
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
            own += (bp.count * bp.bitWidth + 7) / 8 + bp.patchIndices.count * 8
                + (bp.patchValues?.byteSize ?? 0) + validityBytes(bp.validity)
        default: break
        }
        return own + children.reduce(0) { $0 + $1.byteSize }
    }
}
