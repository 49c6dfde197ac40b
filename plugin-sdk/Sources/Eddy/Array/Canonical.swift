/// Typed operations on canonical arrays: the fast paths that decoding and kernels share.
public enum Canonical {
    /// A canonical array of `count` copies of `scalar`.
    public static func repeating(_ scalar: Scalar, count: Int) throws -> any ArrayNode {
        guard count >= 0 else { throw EddyError(.invalidArgument, "a negative count (\(count))") }
        let dtype = scalar.dtype
        if scalar.isNull {
            switch dtype {
            case .null: return NullArray(count: count)
            case .bool:
                return BoolArray(
                    uncheckedBits: Bitmap(repeating: false, count: count), validity: .allInvalid,
                    nullability: .nullable)
            case .primitive(let p, _):
                return PrimitiveArray(
                    uncheckedPType: p,
                    buffer: Buffer(
                        uncheckedStorage: BufferStorage(byteCount: count * p.byteWidth),
                        byteOffset: 0, byteCount: count * p.byteWidth),
                    count: count, validity: .allInvalid, nullability: .nullable)
            case .utf8, .binary:
                return VarBinArray(
                    uncheckedDType: dtype, offsets: Buffer(copying: [Int32](repeating: 0, count: count + 1)),
                    bytes: .empty, count: count, validity: .allInvalid)
            case .struct(let fields, _):
                let children = try fields.map { try repeating(.null($0.dtype), count: count) }
                return try StructArray(
                    names: fields.map(\.name), fields: children, count: count,
                    validity: .allInvalid, nullability: .nullable)
            }
        }
        switch (dtype, scalar.value) {
        case (.bool(let n), .bool(let b)):
            return BoolArray(uncheckedBits: Bitmap(repeating: b, count: count), nullability: n)
        case (.primitive(let p, let n), _):
            return try p.visitThrowing(RepeatPrimitive(value: scalar.value, count: count, nullability: n))
        case (.utf8, .utf8), (.binary, .binary):
            let bytes: [UInt8] =
                if case .utf8(let s) = scalar.value { Array(s.utf8) } else if case .binary(let b) = scalar.value {
                    b
                } else { [] }
            let w = bytes.count
            precondition(w * count <= Int(Int32.max), "repeated value over 2 GiB")
            let offsets = Buffer.build(count: count + 1, of: Int32.self) { o in
                for i in 0...count { o[i] = Int32(i * w) }
            }
            let data = Buffer.build(count: w * count, of: UInt8.self) { o in
                for i in 0..<count { for k in 0..<w { o[i * w + k] = bytes[k] } }
            }
            return VarBinArray(uncheckedDType: dtype, offsets: offsets, bytes: data, count: count)
        case (.struct(let fields, let n), .struct(let values)) where values.count == fields.count:
            let children = try zip(fields, values).map { try repeating(Scalar($1, $0.dtype), count: count) }
            return try StructArray(names: fields.map(\.name), fields: children, count: count, nullability: n)
        default:
            throw EddyError(.typeMismatch, "scalar \(scalar.value) does not match its dtype \(dtype)")
        }
    }

    private struct RepeatPrimitive: PTypeVisitor {
        let value: ScalarValue
        let count: Int
        let nullability: Nullability
        func visit<T: NativeType>(_ type: T.Type) -> Result<any ArrayNode, EddyError> {
            guard let v = T(exactly: value) else {
                return .failure(EddyError(.typeMismatch, "value \(value) does not fit \(T.ptype)"))
            }
            return .success(
                PrimitiveArray.build(T.self, count: count, nullability: nullability) {
                    $0.initialize(repeating: v)
                })
        }
    }

    /// A value of `dtype` that stands in a row no one reads (zero, false, empty).
    static func placeholder(_ dtype: DType) -> ScalarValue {
        switch dtype {
        case .null: .null
        case .bool: .bool(false)
        case .primitive(let p, _): p.isFloat ? .float(0) : p.isUnsignedInteger ? .uint(0) : .int(0)
        case .utf8: .utf8("")
        case .binary: .binary([])
        case .struct(let fields, _): .struct(fields.map { placeholder($0.dtype) })
        }
    }

    /// A zero-copy slice of a canonical array.
    public static func slice(_ array: any ArrayNode, _ start: Int, _ length: Int) throws -> any ArrayNode {
        try requireRange(
            start, length, within: array.count,
            "slice \(start)..<\(start &+ length) out of bounds for length \(array.count)")
        switch array {
        case let a as PrimitiveArray: return a.uncheckedSlice(start, length)
        case let a as BoolArray: return a.uncheckedSlice(start, length)
        case let a as VarBinArray: return a.uncheckedSlice(start, length)
        case is NullArray: return NullArray(count: length)
        case let a as StructArray:
            return try StructArray(
                names: a.names, fields: a.fields.map { try SliceArray($0, start: start, length: length) },
                count: length, validity: a.validity.uncheckedSlice(start, length),
                nullability: a.dtype.nullability)
        default:
            return try SliceArray(array, start: start, length: length)
        }
    }

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
            // A small array taken many times (a dictionary's values under its codes, say): its bits as
            // a byte table, the result written a word at a time, bounds checked per index.
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
                    uncheckedBits: bits, validity: try combinedValidity(a.validity), nullability: resultNullability)
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
                uncheckedBits: bits, validity: try combinedValidity(a.validity), nullability: resultNullability)
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
            // A null index is a null struct row: the fields keep their types (and their nullability), and
            // take any row in its place (the first), or a placeholder value when the array is empty.
            let fields: [any ArrayNode]
            if n == 0 {
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
                names: a.names, fields: fields, count: m, validity: try combinedValidity(a.validity),
                nullability: resultNullability)
        default:
            throw EddyError(.unsupported, "take needs a canonical array, got \(array.encoding)")
        }
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

    /// The elements of canonical `array` whose bit in `mask` is set.
    public static func filter(_ array: any ArrayNode, mask: Bitmap) throws -> any ArrayNode {
        guard mask.count == array.count else {
            throw EddyError(.invalidArgument, "a mask of \(mask.count) bits for an array of length \(array.count)")
        }
        let m = mask.trueCount
        switch array {
        case let a as PrimitiveArray:
            return a.ptype.visit(FilterPrimitive(values: a, mask: mask, resultCount: m))
        case let a as BoolArray:
            var b = BitmapBuilder(capacity: m)
            mask.forEachSetBit { b.append(a.bits[$0]) }
            return BoolArray(
                uncheckedBits: b.finish(), validity: a.validity.filter(mask, resultCount: m),
                nullability: a.dtype.nullability)
        case let a as VarBinArray:
            var b = VarBinBuilder(dtype: a.dtype, capacity: m)
            let validity = a.validity
            let validBits = ValidityBits(validity)
            defer { withExtendedLifetime(validity) {} }
            mask.forEachSetBit { i in
                if validBits.isValid(i) { a.withBytes(at: i) { b.append(bytes: $0) } } else { b.appendNull() }
            }
            return b.finish()
        case is NullArray:
            return NullArray(count: m)
        case let a as StructArray:
            return try StructArray(
                names: a.names, fields: try a.fields.map { try filter($0, mask: mask) }, count: m,
                validity: a.validity.filter(mask, resultCount: m), nullability: a.dtype.nullability)
        default:
            throw EddyError(.unsupported, "filter needs a canonical array, got \(array.encoding)")
        }
    }

    private struct FilterPrimitive: PTypeVisitor {
        let values: PrimitiveArray
        let mask: Bitmap
        let resultCount: Int
        func visit<T: NativeType>(_ type: T.Type) -> any ArrayNode {
            let out = values.withValuesUnchecked(T.self) { src in
                Buffer.build(count: resultCount, of: T.self) { dst in
                    var o = 0
                    let n = mask.count
                    var i = 0
                    while i < n {
                        var w = mask.word(at: i)
                        if w == ~0 && i + 64 <= n {
                            for k in 0..<64 { dst[o + k] = src[i + k] }
                            o += 64
                        } else {
                            while w != 0 {
                                dst[o] = src[i + w.trailingZeroBitCount]
                                o += 1
                                w &= w &- 1
                            }
                        }
                        i += 64
                    }
                }
            }
            return PrimitiveArray(
                uncheckedPType: T.ptype, buffer: out, count: resultCount,
                validity: values.validity.filter(mask, resultCount: resultCount),
                nullability: values.dtype.nullability)
        }
    }

    /// The canonical arrays one after another, as one canonical array of `dtype`.
    public static func concat(_ arrays: [any ArrayNode], dtype: DType) throws -> any ArrayNode {
        let total = arrays.reduce(0) { $0 + $1.count }
        let anyNulls = arrays.contains { if case .allValid = validity(of: $0) { false } else { true } }
        func concatValidity() -> Validity {
            guard anyNulls else { return .allValid }
            let words = (total + 63) / 64
            let buf = Buffer.build(count: words, of: UInt64.self) { out in
                out.initialize(repeating: 0)
                var pos = 0
                for a in arrays {
                    let v = validity(of: a)
                    for i in 0..<a.count where v.isValid(i) { out[(pos + i) >> 6] |= 1 << UInt64((pos + i) & 63) }
                    pos += a.count
                }
            }
            return .bitmap(Bitmap(uncheckedBuffer: buf, offset: 0, count: total))
        }
        switch dtype {
        case .null:
            return NullArray(count: total)
        case .bool(let n):
            let words = (total + 63) / 64
            let buf = Buffer.build(count: words, of: UInt64.self) { out in
                out.initialize(repeating: 0)
                var pos = 0
                for case let a as BoolArray in arrays {
                    var i = 0
                    while i < a.count {
                        let w = a.bits.word(at: i)
                        let p = pos + i
                        let s = UInt64(p & 63)
                        out[p >> 6] |= w << s
                        if s != 0 && (p >> 6) + 1 < words { out[(p >> 6) + 1] |= w >> (64 - s) }
                        i += 64
                    }
                    pos += a.count
                }
            }
            return BoolArray(
                uncheckedBits: Bitmap(uncheckedBuffer: buf, offset: 0, count: total), validity: concatValidity(),
                nullability: n)
        case .primitive(let p, let n):
            let w = p.byteWidth
            let storage = BufferStorage(uninitializedByteCount: total * w)
            var pos = 0
            for case let a as PrimitiveArray in arrays {
                (storage.pointer + pos * w).copyMemory(from: a.buffer.baseAddress, byteCount: a.count * w)
                pos += a.count
            }
            return PrimitiveArray(
                uncheckedPType: p, buffer: Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: total * w),
                count: total, validity: concatValidity(), nullability: n)
        case .utf8, .binary:
            var b = VarBinBuilder(dtype: dtype, capacity: total)
            for case let a as VarBinArray in arrays {
                let validity = a.validity
                let validBits = ValidityBits(validity)
                defer { withExtendedLifetime(validity) {} }
                for i in 0..<a.count {
                    if validBits.isValid(i) { a.withBytes(at: i) { b.append(bytes: $0) } } else { b.appendNull() }
                }
            }
            return b.finish()
        case .struct(let fields, let n):
            let structs = arrays.compactMap { $0 as? StructArray }
            let children = try fields.indices.map { k in
                try concat(structs.map { $0.fields[k] }, dtype: fields[k].dtype)
            }
            return try StructArray(
                names: fields.map(\.name), fields: children, count: total,
                validity: concatValidity(), nullability: n)
        }
    }
}

extension Canonical {
    /// The validity of a canonical or constant array (a null array, or a null constant, is all invalid).
    public static func validity(of array: any ArrayNode) -> Validity {
        switch array {
        case let p as PrimitiveArray: p.validity
        case let b as BoolArray: b.validity
        case let v as VarBinArray: v.validity
        case let s as StructArray: s.validity
        case let c as ConstantArray: c.scalar.isNull ? .allInvalid : .allValid
        case is NullArray: .allInvalid
        default: .allValid
        }
    }
}

extension ScalarValue {
    /// An integer's two's-complement bit pattern as `UInt64`; zero for anything else.
    @usableFromInline
    var asUInt64Bits: UInt64 {
        switch self {
        case .int(let v): UInt64(bitPattern: v)
        case .uint(let v): v
        default: 0
        }
    }
}
