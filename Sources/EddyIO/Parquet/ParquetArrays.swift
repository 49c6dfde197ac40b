@_spi(Host) import Eddy

/// Builds engine arrays from a chunk's decoded values: nulls spread by the validity, integers
/// narrowed to the column's logical width (a value that does not fit is an error, never wrapped).
enum ParquetArrays {
    /// `levels`: the chunk's definition levels (nil: a required column, every row has a value).
    static func build(_ v: ParquetPhysicalValues, _ dtype: DType, levels: ParquetLevels?, rows: Int) throws
        -> any ArrayNode
    {
        let present = v.count
        let expected = levels?.present ?? rows
        guard present == expected, levels.map({ $0.count == rows }) ?? true else {
            throw ParquetProblem("\(present) values decoded for \(expected) non-null rows")
        }
        let validity = try levels?.validity() ?? .allValid
        let n = dtype.nullability
        switch dtype {
        case .bool:
            let bits = spread(v.bools, levels, rows, false)
            return try BoolArray(bits: Bitmap(bits), validity: validity, nullability: n)
        case .primitive(let p, _):
            switch p {
            case .int8: return try narrowed(v.i32, Int8.self, levels, validity, rows, n)
            case .int16: return try narrowed(v.i32, Int16.self, levels, validity, rows, n)
            case .int32: return try primitive(spread(v.i32, levels, rows, 0), validity, n)
            case .uint8:
                return try narrowed(v.i32.map { UInt32(bitPattern: $0) }, UInt8.self, levels, validity, rows, n)
            case .uint16:
                return try narrowed(v.i32.map { UInt32(bitPattern: $0) }, UInt16.self, levels, validity, rows, n)
            case .uint32:
                return try primitive(spread(v.i32.map { UInt32(bitPattern: $0) }, levels, rows, 0), validity, n)
            case .int64: return try primitive(spread(v.i64, levels, rows, 0), validity, n)
            case .uint64:
                return try primitive(spread(v.i64.map { UInt64(bitPattern: $0) }, levels, rows, 0), validity, n)
            case .float32: return try primitive(spread(v.f32, levels, rows, 0), validity, n)
            case .float64: return try primitive(spread(v.f64, levels, rows, 0), validity, n)
            @unknown default: throw ParquetProblem("type \(dtype) is not read")
            }
        case .utf8, .binary:
            guard v.bytes.count <= Int(Int32.max) else {
                throw ParquetProblem("\(v.bytes.count) bytes of strings in one chunk; at most 2 GiB are read")
            }
            // Valid UTF-8 as a whole, and no value starting on a continuation byte: each value is valid.
            // (Validated in place: `String(validating:)` copied every byte into a string first.)
            if dtype.isUTF8 {
                let whole = (try? UTF8Span(validating: v.bytes.span)) != nil
                let cut = v.bytes.withUnsafeBufferPointer { b in
                    v.offsets.contains { $0 < b.count && b[$0] & 0xC0 == 0x80 }
                }
                guard whole, !cut else { throw ParquetProblem("a STRING value is not valid UTF-8") }
            }
            let offsets = v.offsets.withUnsafeBufferPointer { from in
                Buffer.build(count: rows + 1, of: Int32.self) { o in
                    o[0] = 0
                    if let levels, levels.nulls > 0 {
                        var k = 0
                        for i in 0..<rows {
                            if levels.isValid(i) { k += 1 }
                            o[i + 1] = Int32(truncatingIfNeeded: from[k])
                        }
                    } else {
                        for i in 0..<rows { o[i + 1] = Int32(truncatingIfNeeded: from[i + 1]) }
                    }
                }
            }
            return try VarBinArray(
                dtype: dtype, offsets: offsets, bytes: Buffer(copying: v.bytes), count: rows, validity: validity)
        default:
            throw ParquetProblem("type \(dtype) is not read")
        }
    }

    private static func primitive<T: NativeType>(_ values: [T], _ validity: Validity, _ n: Nullability) throws
        -> PrimitiveArray
    {
        try PrimitiveArray(
            ptype: T.ptype, buffer: Buffer(copying: values), count: values.count, validity: validity, nullability: n)
    }

    private static func narrowed<S: BinaryInteger, T: NativeType & FixedWidthInteger>(
        _ values: [S], _: T.Type, _ levels: ParquetLevels?, _ validity: Validity, _ rows: Int, _ n: Nullability
    ) throws -> PrimitiveArray {
        var out: [T] = []
        out.reserveCapacity(values.count)
        for x in values {
            guard let y = T(exactly: x) else { throw ParquetProblem("value \(x) does not fit the column's \(T.ptype)") }
            out.append(y)
        }
        return try primitive(spread(out, levels, rows, 0), validity, n)
    }

    /// `values` (the non-null ones) placed at the valid rows, `zero` in the others.
    static func spread<T>(_ values: [T], _ levels: ParquetLevels?, _ rows: Int, _ zero: T) -> [T] {
        guard let levels, levels.nulls > 0 else { return values }
        if levels.present == 0 { return [T](repeating: zero, count: rows) }
        var out = [T](repeating: zero, count: rows)
        var k = 0
        for i in 0..<rows where levels.isValid(i) {
            out[i] = values[k]
            k += 1
        }
        return out
    }
}
