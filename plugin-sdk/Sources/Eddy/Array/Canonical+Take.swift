extension Canonical {
    /// The elements of canonical `array` at the positions given by canonical integer `indices`.
    ///
    /// A null index gives a null element. The result's dtype is the array's, nullable if either is.
    /// - Throws: ``EddyError/Code/outOfBounds`` naming the first index outside the array.
    public static func take(_ array: any ArrayNode, indices: PrimitiveArray) throws -> any ArrayNode {
        guard indices.ptype.isInteger else {
            throw EddyError(.typeMismatch, "take indices must be integers, got \(indices.dtype)")
        }
        return try indices.ptype.visitIntegerUnchecked(TakeWithIndices(array: array, indices: indices)).get()
    }

    private struct TakeWithIndices: IntegerPTypeVisitor {
        let array: any ArrayNode
        let indices: PrimitiveArray
        func visit<I: NativeInteger>(_ type: I.Type) -> Result<any ArrayNode, EddyError> {
            do {
                return .success(
                    try indices.withValuesUnchecked(I.self) { idx in
                        try Canonical.take(
                            array, idx, indexValidity: indices.validity,
                            resultNullability: array.dtype.nullability | indices.dtype.nullability)
                    })
            } catch {
                return .failure(error as? EddyError ?? EddyError(.kernelFailed, "\(error)"))
            }
        }
    }

    static func take<I: NativeInteger>(
        _ array: any ArrayNode, _ idx: UnsafeBufferPointer<I>, indexValidity: Validity, resultNullability: Nullability
    ) throws -> any ArrayNode {
        let n = array.count
        // Read through raw bits: copying a bitmap validity per element costs a retain and a release.
        let indexBits = ValidityBits(indexValidity)
        // Positions as Int, with null indices pointing at 0 (or at nothing when the array is empty).
        func position(_ k: Int) throws -> Int {
            guard indexBits.isValid(k) else { return 0 }
            let raw = idx[k]
            let p = Int(truncatingIfNeeded: raw)
            guard p >= 0, p < n, I.bitWidth < 64 || raw == I(truncatingIfNeeded: p) else {
                throw EddyError(.outOfBounds, "take index \(raw) at position \(k) is out of bounds for length \(n)")
            }
            return p
        }
        let m = idx.count
        let hasNullIndex: Bool = { if case .allValid = indexValidity { false } else { true } }()
        if hasNullIndex && n == 0 {
            // Only null indices can be valid against an empty array.
            for k in 0..<m where indexValidity.isValid(k) { _ = try position(k) }
        }
        func combinedValidity(_ source: Validity) throws -> Validity {
            if case .allValid = source {
                if !hasNullIndex { return .allValid }
                // Only the indices have nulls: their validity is the result's (every caller still checks
                // each position as it takes the values).
                return indexValidity
            }
            let sourceBits = ValidityBits(source)
            var b = BitmapBuilder(capacity: m)
            try withExtendedLifetime(source) {
                for k in 0..<m {
                    let valid = indexBits.isValid(k)
                    b.append(valid ? sourceBits.isValid(try position(k)) : false)
                }
            }
            return .bitmap(b.finish())
        }
        switch array {
        case let a as PrimitiveArray:
            return try a.ptype.visitThrowing(
                TakePrimitive(
                    values: a, idx: idx, hasNullIndex: hasNullIndex,
                    indexValidity: indexValidity,
                    resultNullability: resultNullability))
        case let a as BoolArray where !hasNullIndex && n <= 4096 && n <= m:
            return try takeSmallBools(
                a, idx, validity: { try combinedValidity(a.validity) }, nullability: resultNullability)
        case let a as BoolArray:
            let bits = try Bitmap(count: m) { k in try a.bits[position(k)] }
            return BoolArray(
                uncheckedBits: bits, validity: try combinedValidity(a.validity), nullability: resultNullability)
        case let a as VarBinArray:
            return try takeVarBin(
                a, m: m, position: position, indexValidity: indexValidity,
                validity: try combinedValidity(a.validity), nullability: resultNullability)
        case is NullArray:
            for k in 0..<m where indexValidity.isValid(k) { _ = try position(k) }
            return NullArray(count: m)
        case let a as StructArray:
            return try takeStruct(
                a, m: m, position: position, indexValidity: indexValidity,
                validity: { try combinedValidity(a.validity) }, nullability: resultNullability)
        default:
            throw EddyError(.unsupported, "take needs a canonical array, got \(array.encoding)")
        }
    }

    /// A small bool array taken many times (a dictionary's values under its codes, say): its bits as
    /// a byte table, the result written a word at a time, bounds checked per index.
    private static func takeSmallBools<I: NativeInteger>(
        _ a: BoolArray, _ idx: UnsafeBufferPointer<I>, validity: () throws -> Validity, nullability: Nullability
    ) throws -> BoolArray {
        let n = a.count
        let m = idx.count
        let words = (m + 63) / 64
        let storage = BufferStorage(uninitializedByteCount: words * 8)
        let out = storage.pointer.bindMemory(to: UInt64.self, capacity: Swift.max(words, 1))
        if !I.isSigned && I.bitWidth <= 16 && m >= 4 << I.bitWidth,
            Self.takeBitsByCode(a, idx, into: out, words: words)
        {
            let bits = Bitmap(
                uncheckedBuffer: Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: words * 8),
                offset: 0, count: m)
            return BoolArray(
                uncheckedBits: bits, validity: try validity(), nullability: nullability)
        }
        let table = (0..<n).map { a.bits[$0] ? UInt64(1) : 0 }
        try table.withUnsafeBufferPointer { t in
            var k = 0
            for w in 0..<words {
                var word: UInt64 = 0
                let end = Swift.min(64, m &- k)
                for b in 0..<end {
                    let raw = idx[k &+ b]
                    let p = Int(truncatingIfNeeded: raw)
                    guard p >= 0, p < n, I.bitWidth < 64 || raw == I(truncatingIfNeeded: p) else {
                        throw EddyError(
                            .outOfBounds, "take index \(raw) at position \(k &+ b) is out of bounds for length \(n)"
                        )
                    }
                    word |= t[p] << UInt64(b)
                }
                out[w] = word
                k &+= 64
            }
        }
        let bits = Bitmap(
            uncheckedBuffer: Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: words * 8), offset: 0,
            count: m)
        return BoolArray(
            uncheckedBits: bits, validity: try validity(), nullability: nullability)
    }

    /// A null index is a null struct row: the fields keep their types (and their nullability), and take
    /// any row in its place (the first), or a placeholder value when the array is empty.
    private static func takeStruct(
        _ a: StructArray, m: Int, position: (Int) throws -> Int, indexValidity: Validity,
        validity: () throws -> Validity, nullability: Nullability
    ) throws -> StructArray {
        let fields: [any ArrayNode]
        if a.count == 0 {
            // Any valid index is out of range here: the error decoding first would give.
            for k in 0..<m where indexValidity.isValid(k) { _ = try position(k) }
            fields = try a.fields.map { try repeating(Scalar(placeholder($0.dtype), $0.dtype), count: m) }
        } else {
            let positions = try (0..<m).map { Int64(try position($0)) }
            fields = try positions.withUnsafeBufferPointer { p in
                try a.fields.map {
                    try take($0, p, indexValidity: .allValid, resultNullability: $0.dtype.nullability)
                }
            }
        }
        return try StructArray(
            names: a.names, fields: fields, count: m, validity: try validity(),
            nullability: nullability)
    }

    /// Bits of small `a` at narrow unsigned codes `idx`, a word at a time, without a branch per code: a
    /// table over every code the type can hold (2 marks a code past `a`), its low bits gathered and
    /// every entry ORed into one flag. False (nothing decided) when some code is out of bounds: the
    /// caller's checked loop then names it.
    static func takeBitsByCode<I: NativeInteger>(
        _ a: BoolArray, _ idx: UnsafeBufferPointer<I>, into out: UnsafeMutablePointer<UInt64>, words: Int
    ) -> Bool {
        let m = idx.count
        var table = [UInt8](repeating: 2, count: 1 << I.bitWidth)
        for p in 0..<Swift.min(a.count, table.count) { table[p] = a.bits[p] ? 1 : 0 }
        var flags: UInt8 = 0
        table.withUnsafeBufferPointer { t in
            var k = 0
            for w in 0..<words {
                var word: UInt64 = 0
                let end = Swift.min(64, m &- k)
                for b in 0..<end {
                    let v = t[Int(truncatingIfNeeded: idx[k &+ b])]
                    flags |= v
                    word |= UInt64(v & 1) << UInt64(b)
                }
                out[w] = word
                k &+= 64
            }
        }
        return flags & 2 == 0
    }

    /// Two passes: sum the lengths, then copy each value's bytes once.
    private static func takeVarBin(
        _ a: VarBinArray, m: Int, position: (Int) throws -> Int, indexValidity: Validity,
        validity: Validity, nullability: Nullability
    ) throws -> VarBinArray {
        let src = a.offsets.typed(Int32.self)
        var picks = [Int32](repeating: -1, count: m)
        var total = 0
        let validBits = ValidityBits(validity)
        for k in 0..<m {
            let p = try position(k)
            guard validBits.isValid(k) else { continue }
            picks[k] = Int32(p)
            total += Int(src[p + 1] - src[p])
        }
        guard total <= Int(Int32.max) else {
            throw EddyError(
                .outOfBounds, "a take of \(m) strings holds \(total) bytes, more than 2 GiB (32-bit offsets)")
        }
        let bytes = BufferStorage(uninitializedByteCount: total)
        let offsets = Buffer.build(count: m + 1, of: Int32.self) { o in
            var at = 0
            o[0] = 0
            withExtendedLifetime(a) {
                let base = a.bytes.baseAddress
                for k in 0..<m {
                    let p = Int(picks[k])
                    if p >= 0 {
                        let s = Int(src[p])
                        let len = Int(src[p + 1]) - s
                        (bytes.pointer + at).copyMemory(from: base + s, byteCount: len)
                        at += len
                    }
                    o[k + 1] = Int32(at)
                }
            }
        }
        return VarBinArray(
            uncheckedDType: a.dtype.with(nullability), offsets: offsets,
            bytes: Buffer(uncheckedStorage: bytes, byteOffset: 0, byteCount: total), count: m, validity: validity)
    }

    private struct TakePrimitive<I: NativeInteger>: PTypeVisitor {
        let values: PrimitiveArray
        let idx: UnsafeBufferPointer<I>
        let hasNullIndex: Bool
        let indexValidity: Validity
        let resultNullability: Nullability
        func visit<T: NativeType>(_ type: T.Type) -> Result<any ArrayNode, EddyError> {
            let n = values.count
            let m = idx.count
            var bad: Int?
            let out = values.withValuesUnchecked(T.self) { src in
                Buffer.build(count: m, of: T.self) { dst in
                    for k in 0..<m {
                        let p = Int(truncatingIfNeeded: idx[k])
                        if p < n && p >= 0 && (I.bitWidth < 64 || idx[k] == I(truncatingIfNeeded: p)) {
                            dst[k] = src[p]
                        } else {
                            dst[k] = T.zero
                            if indexValidity.isValid(k) && bad == nil { bad = k }
                        }
                    }
                }
            }
            if let bad {
                return .failure(
                    EddyError(
                        .outOfBounds,
                        "take index \(idx[bad]) at position \(bad) is out of bounds for length \(n)"))
            }
            var validity: Validity = .allValid
            if hasNullIndex, case .allValid = values.validity {
                // Only the indices have nulls (a dictionary's codes, say): their validity is the result's.
                validity = indexValidity
            } else if hasNullIndex || { if case .allValid = values.validity { false } else { true } }() {
                let indexBits = ValidityBits(indexValidity)
                let valueBits = ValidityBits(values.validity)
                validity = withExtendedLifetime((indexValidity, values.validity)) {
                    .bitmap(
                        Bitmap(count: m) { k in
                            guard indexBits.isValid(k) else { return false }
                            return valueBits.isValid(Int(truncatingIfNeeded: idx[k]))
                        })
                }
            }
            return .success(
                PrimitiveArray(
                    uncheckedPType: T.ptype, buffer: out, count: m, validity: validity,
                    nullability: resultNullability))
        }
    }
}
