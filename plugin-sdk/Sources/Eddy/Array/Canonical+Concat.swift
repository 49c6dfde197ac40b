extension Canonical {
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
