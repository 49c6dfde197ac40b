extension Canonical {
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
}
