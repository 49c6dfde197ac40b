/// Seeded random arrays for conformance checks: plain columns with nulls, runs and few distinct
/// values, encoded by random trees of the engine's encodings.
public struct ArrayGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The next random 64 bits (SplitMix64).
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.count)) }
    public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }

    /// A canonical column of `dtype`: up to 8 distinct values, runs, and (if nullable) nulls.
    public mutating func column(_ dtype: DType, count: Int) -> any ArrayNode {
        let distinct = int(1...8)
        let pool = (0..<distinct).map { _ in value(dtype) }
        let nullRate = dtype.isNullable ? [0.0, 0.1, 0.5][int(0...2)] : 0
        var b = ArrayBuilder(dtype: dtype, capacity: count)
        var n = 0
        while n < count {
            let v: ScalarValue = chance(nullRate) ? .null : pool[int(0...(distinct - 1))]
            for _ in 0..<(chance(0.5) ? int(1...6) : 1) where n < count {
                b.append(v)
                n += 1
            }
        }
        // The values above always fit the dtype.
        return try! b.finish()
    }

    /// A random value of `dtype` (numbers small, text from a fixed list with unicode).
    public mutating func value(_ dtype: DType) -> ScalarValue {
        let words = ["", "a", "b", "ab", "abc", "Zürich", "日本", "emoji🙂"]
        switch dtype {
        case .bool: return .bool(chance(0.5))
        case .primitive(let p, _):
            if p.isFloat { return .float(Double(int(-400...400)) / 4) }
            if p.isUnsignedInteger { return .uint(UInt64(int(0...200))) }
            return .int(Int64(int(-100...100)))
        case .utf8: return .utf8(words[int(0...(words.count - 1))])
        default: return .null
        }
    }

    /// `column`, encoded by a random tree about `depth` deep (dictionary, run-end, chunked, slice,
    /// frame-of-reference and bit-packing for integers, sparse).
    public mutating func encode(_ column: any ArrayNode, depth: Int) throws -> any ArrayNode {
        guard depth > 0, column.count > 0, column.isCanonical else { return column }
        switch int(0...5) {
        case 0:
            let d = try Compressor(maxDepth: 1).compress(column)
            if d.encoding == DictArray.id, let dict = d as? DictArray {
                return try DictArray(codes: encode(dict.codes, depth: depth - 1), values: encode(dict.values, depth: depth - 1))
            }
            return d
        case 1:
            let re = try RunEndArray.encode(column)
            return try RunEndArray(ends: re.ends, values: encode(re.values, depth: depth - 1), offset: 0, count: column.count)
        case 2:
            var chunks: [any ArrayNode] = []
            var start = 0
            while start < column.count {
                let len = Swift.min(int(1...Swift.max(1, column.count / 2)), column.count - start)
                chunks.append(try encode(Canonical.slice(column, start, len), depth: depth - 1))
                start += len
            }
            return try ChunkedArray(chunks: chunks, dtype: column.dtype)
        case 3 where column.dtype.isInteger:
            let f = try FoRArray.encode(column as! PrimitiveArray)
            let child = f.child as! PrimitiveArray
            return try FoRArray(reference: f.reference, child: BitPackedArray.encode(child, bitWidth: int(0...8)))
        case 4:
            let before = int(0...3)
            let pick = PrimitiveArray((0..<(before + column.count)).map { i in Int64(i < before ? 0 : i - before) })
            let padded = try Canonical.take(column, indices: pick)
            return try SliceArray(encode(padded, depth: depth - 1), start: before, length: column.count)
        default:
            return try Compressor().compress(column)
        }
    }

    /// A comparison of an encoded column with a constant that occurs in it, on either side.
    public mutating func compareOverEncoded(dtypes: [DType] = [.primitive(.int64, .nullable), .utf8(.nullable),
                                                               .primitive(.uint16, .nonNullable), .utf8(.nonNullable)],
                                            maxCount: Int = 300) throws -> any ArrayNode {
        let dtype = dtypes[int(0...(dtypes.count - 1))]
        let column = self.column(dtype, count: int(1...maxCount))
        let encoded = try encode(column, depth: int(1...3))
        var needle = try column.scalar(at: int(0...(column.count - 1)))
        if needle.isNull { needle = Scalar(value(dtype), dtype.with(.nonNullable)) }
        let constant = ConstantArray(Scalar(needle.value, dtype.with(.nonNullable)), count: column.count)
        let op = CompareOperator.allCases[int(0...5)]
        return chance(0.8) ? try CompareFunction.make(encoded, op, constant) : try CompareFunction.make(constant, op, encoded)
    }
}
