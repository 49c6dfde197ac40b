extension Compressor {
    func apply(_ scheme: Scheme, _ array: any ArrayNode, _ depth: Int, stats: ColumnStats?) throws -> (
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
    func dictionary(
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
