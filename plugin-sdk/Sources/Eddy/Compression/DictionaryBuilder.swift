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
