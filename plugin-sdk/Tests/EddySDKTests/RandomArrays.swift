@_spi(Host) import Eddy
import EddyTesting

/// A seedable generator (the SDK's SplitMix64), so that every failure can be replayed from its seed.
struct SeededRandom: RandomNumberGenerator {
    private var generator: ArrayGenerator
    init(seed: UInt64) { generator = ArrayGenerator(seed: seed) }
    mutating func next() -> UInt64 { generator.next() }
}

/// Generates canonical columns and random encoding trees over them.
struct RandomArrays {
    var rng: SeededRandom

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &rng) }

    static let dtypes: [DType] = [
        .primitive(.int64, .nullable), .primitive(.int32, .nonNullable), .primitive(.uint16, .nullable),
        .primitive(.int8, .nullable), .primitive(.uint64, .nonNullable), .primitive(.float64, .nullable),
        .primitive(.float32, .nonNullable), .bool(.nullable), .bool(.nonNullable), .utf8(.nullable),
        .utf8(.nonNullable),
    ]

    private static let words = [
        "", "a", "b", "ab", "abc", "zz", "Zürich", "日本", "emoji🙂", "a,b", "long-" + String(repeating: "x", count: 40),
    ]

    /// A canonical column: few distinct values (so dictionaries and runs form), some nulls, some runs.
    mutating func column(_ dtype: DType, count: Int) -> any ArrayNode {
        let distinct = int(1...8)
        var pool: [ScalarValue] = (0..<distinct).map { _ in value(dtype) }
        if dtype.isUTF8, chance(0.3) {
            // Ids with a number in fixed text: what the intstring encoding holds.
            let prefix = ["", "T", "note ", "日本-"][int(0...3)]
            let width = chance(0.5) ? 4 : 0
            pool = (0..<distinct).map { _ in
                let n = String(int(0...9999))
                return .utf8(prefix + String(repeating: "0", count: max(0, width - n.count)) + n)
            }
        }
        var values: [ScalarValue] = []
        let nullRate = dtype.isNullable ? [0.0, 0.1, 0.5, 1.0][int(0...3)] : 0
        while values.count < count {
            let run = chance(0.5) ? int(1...6) : 1
            let v: ScalarValue = chance(nullRate) ? .null : pool[int(0...(distinct - 1))]
            for _ in 0..<run where values.count < count { values.append(v) }
        }
        var b = ArrayBuilder(dtype: dtype, capacity: count)
        for v in values { b.append(v) }
        return try! b.finish()
    }

    mutating func value(_ dtype: DType) -> ScalarValue {
        switch dtype {
        case .bool: return .bool(chance(0.5))
        case .primitive(let p, _):
            switch p {
            case .int8: return .int(Int64(int(-128...127)))
            case .int16: return .int(Int64(int(-300...300)))
            case .int32, .int64: return .int(Int64(chance(0.1) ? int(-1_000_000...1_000_000) : int(-50...200)))
            case .uint8: return .uint(UInt64(int(0...255)))
            case .uint16, .uint32: return .uint(UInt64(int(0...1000)))
            case .uint64: return .uint(UInt64(chance(0.1) ? int(0...Int(Int32.max)) : int(0...300)))
            case .float32: return .float(Double(Float(int(-100...100)) / 4))
            case .float64: return .float(chance(0.05) ? .nan : Double(int(-1000...1000)) / 8)
            @unknown default: return .null
            }
        case .utf8: return .utf8(Self.words[int(0...(Self.words.count - 1))])
        default: return .null
        }
    }

    /// An array with the same values as canonical `column`, encoded by a random tree about `depth` deep.
    mutating func encode(_ column: any ArrayNode, depth: Int) throws -> any ArrayNode {
        if depth <= 0 || column.count == 0 { return column }
        let dtype = column.dtype
        let all = try column.scalars()
        if all.allSatisfy({ $0.value.isIdentical(to: all[0].value) }) && chance(0.7) {
            return ConstantArray(Scalar(all[0].value, dtype), count: column.count)
        }
        var choices: [Int] = [0, 1, 2, 5]  // dict, runend, chunked, slice
        if dtype.isInteger { choices += [3, 4, 3, 4] }  // FoR, bit-packed
        choices.append(6)  // sparse
        if dtype.isUTF8 { choices.append(7) }  // intstring (when every value has one format)
        switch choices[int(0...(choices.count - 1))] {
        case 7:
            guard let v = column as? VarBinArray, let e = IntStringArray.encode(v) else {
                return try dictionary(column, depth: depth)
            }
            return try IntStringArray(
                prefix: e.prefix, suffix: e.suffix, width: e.width, numbers: encode(e.numbers, depth: depth - 1),
                nullability: dtype.nullability)
        case 0: return try dictionary(column, depth: depth)
        case 1:
            let re = try RunEndArray.encode(column)
            let values = try encode(re.values, depth: depth - 1)
            return try RunEndArray(ends: re.ends, values: values, offset: 0, count: column.count)
        case 2:
            var chunks: [any ArrayNode] = []
            var start = 0
            while start < column.count {
                let len = min(int(0...max(1, column.count / 2)), column.count - start)
                chunks.append(try encode(Canonical.slice(column, start, len), depth: depth - 1))
                start += len
            }
            if chance(0.3) { chunks.insert(try Canonical.slice(column, 0, 0), at: int(0...chunks.count)) }
            return try ChunkedArray(chunks: chunks, dtype: dtype)
        case 3:
            let f = try FoRArray.encode(column as! PrimitiveArray)
            let child = try f.child.isCanonical ? encode(f.child, depth: depth - 1) : f.child
            return try FoRArray(reference: f.reference, child: child)
        case 4:
            let width = int(0...12)
            return try BitPackedArray.encode(column as! PrimitiveArray, bitWidth: width)
        case 5:
            // Pad with values from the column on both sides, encode the whole, then slice it back.
            let before = int(0...5)
            let after = int(0...5)
            let pick = PrimitiveArray(
                (0..<(before + column.count + after)).map { i -> Int64 in
                    i >= before && i < before + column.count ? Int64(i - before) : Int64(int(0...(column.count - 1)))
                })
            let padded = try Canonical.take(column, indices: pick)
            return try SliceArray(encode(padded, depth: depth - 1), start: before, length: column.count)
        default:
            return try sparse(column, depth: depth)
        }
    }

    mutating func dictionary(_ column: any ArrayNode, depth: Int) throws -> any ArrayNode {
        var distinct: [ScalarValue] = []
        var codes: [UInt32?] = []
        for s in try column.scalars() {
            if s.isNull && chance(0.5) {
                codes.append(nil)
                continue
            }
            if let i = distinct.firstIndex(where: { $0.isIdentical(to: s.value) }) {
                codes.append(UInt32(i))
            } else {
                distinct.append(s.value)
                codes.append(UInt32(distinct.count - 1))
            }
        }
        let hasNullCode = codes.contains(nil)
        var vb = ArrayBuilder(dtype: column.dtype)
        for v in distinct { vb.append(v) }
        let values = try vb.finish()
        let codeArray: any ArrayNode
        let width = int(0...2)
        let maxCode = UInt32(max(distinct.count - 1, 0))
        switch (hasNullCode, width) {
        case (true, _): codeArray = PrimitiveArray(codes.map { $0.map { UInt16($0) } })
        case (false, 0) where maxCode <= UInt32(UInt8.max): codeArray = PrimitiveArray(codes.map { UInt8($0!) })
        case (false, 1): codeArray = PrimitiveArray(codes.map { UInt16($0!) })
        default: codeArray = PrimitiveArray(codes.map { $0! })
        }
        let encodedCodes = chance(0.5) ? try encode(codeArray, depth: depth - 1) : codeArray
        let encodedValues = chance(0.5) ? try encode(values, depth: depth - 1) : values
        let d = try DictArray(codes: encodedCodes, values: encodedValues)
        // A dictionary over nullable values with valid codes keeps the column's dtype exactly.
        guard d.dtype == column.dtype else { return column }
        return d
    }

    mutating func sparse(_ column: any ArrayNode, depth: Int) throws -> any ArrayNode {
        let scalars = try column.scalars()
        let fill = scalars[int(0...(scalars.count - 1))]
        var positions: [Int64] = []
        for (i, s) in scalars.enumerated() where !s.value.isIdentical(to: fill.value) { positions.append(Int64(i)) }
        let values = try Canonical.take(column, indices: PrimitiveArray(positions))
        let encodedValues = try encode(values, depth: depth - 1)
        let s = try SparseArray(
            fill: Scalar(fill.value, column.dtype), indices: PrimitiveArray(positions),
            values: encodedValues, count: column.count)
        return s.dtype == column.dtype ? s : column
    }
}
