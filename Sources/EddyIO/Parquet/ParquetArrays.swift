@_spi(Host) import Eddy

/// Builds engine arrays from a chunk's decoded values: nulls spread by the validity, integers
/// narrowed to the column's logical width (a value that does not fit is an error, never wrapped).
enum ParquetArrays {
    static func build(_ v: ParquetPhysicalValues, _ dtype: DType, validity: Validity, rows: Int) throws
        -> any ArrayNode
    {
        let present = v.count
        guard present == rows - validity.nullCount(rows) else {
            throw ParquetProblem("\(present) values decoded for \(rows - validity.nullCount(rows)) non-null rows")
        }
        let n = dtype.nullability
        switch dtype {
        case .bool:
            let bits = spread(v.bools, validity, rows, false)
            return try BoolArray(bits: Bitmap(bits), validity: validity, nullability: n)
        case .primitive(let p, _):
            switch p {
            case .int8: return try narrowed(v.i32, Int8.self, validity, rows, n)
            case .int16: return try narrowed(v.i32, Int16.self, validity, rows, n)
            case .int32: return try primitive(spread(v.i32, validity, rows, 0), validity, n)
            case .uint8: return try narrowed(v.i32.map { UInt32(bitPattern: $0) }, UInt8.self, validity, rows, n)
            case .uint16: return try narrowed(v.i32.map { UInt32(bitPattern: $0) }, UInt16.self, validity, rows, n)
            case .uint32:
                return try primitive(spread(v.i32.map { UInt32(bitPattern: $0) }, validity, rows, 0), validity, n)
            case .int64: return try primitive(spread(v.i64, validity, rows, 0), validity, n)
            case .uint64:
                return try primitive(spread(v.i64.map { UInt64(bitPattern: $0) }, validity, rows, 0), validity, n)
            case .float32: return try primitive(spread(v.f32, validity, rows, 0), validity, n)
            case .float64: return try primitive(spread(v.f64, validity, rows, 0), validity, n)
            @unknown default: throw ParquetProblem("type \(dtype) is not read")
            }
        case .utf8, .binary:
            guard v.bytes.count <= Int(Int32.max) else {
                throw ParquetProblem("\(v.bytes.count) bytes of strings in one chunk; at most 2 GiB are read")
            }
            // Valid UTF-8 as a whole, and no value starting on a continuation byte: each value is valid.
            if dtype.isUTF8 {
                let whole = String(validating: v.bytes, as: UTF8.self) != nil
                let cut = v.offsets.contains { $0 < v.bytes.count && v.bytes[$0] & 0xC0 == 0x80 }
                guard whole, !cut else { throw ParquetProblem("a STRING value is not valid UTF-8") }
            }
            var offsets = [Int32](repeating: 0, count: rows + 1)
            var k = 0
            for i in 0..<rows {
                if validity.isValid(i) { k += 1 }
                offsets[i + 1] = Int32(v.offsets[k])
            }
            return try VarBinArray(
                dtype: dtype, offsets: Buffer(copying: offsets), bytes: Buffer(copying: v.bytes), count: rows,
                validity: validity)
        default:
            throw ParquetProblem("type \(dtype) is not read")
        }
    }

    /// The dictionary codes of a chunk, one per row (0 in null rows), in the narrowest type that holds them.
    static func codes(_ codes: [UInt32], _ type: PType, validity: Validity, nullability: Nullability, rows: Int)
        throws -> any ArrayNode
    {
        guard codes.count == rows - validity.nullCount(rows) else {
            throw ParquetProblem("\(codes.count) codes decoded for \(rows - validity.nullCount(rows)) non-null rows")
        }
        let all = spread(codes, validity, rows, 0)
        switch type {
        case .uint8: return try primitive(all.map { UInt8(truncatingIfNeeded: $0) }, validity, nullability)
        case .uint16: return try primitive(all.map { UInt16(truncatingIfNeeded: $0) }, validity, nullability)
        default: return try primitive(all, validity, nullability)
        }
    }

    private static func primitive<T: NativeType>(_ values: [T], _ validity: Validity, _ n: Nullability) throws
        -> PrimitiveArray
    {
        try PrimitiveArray(
            ptype: T.ptype, buffer: Buffer(copying: values), count: values.count, validity: validity, nullability: n)
    }

    private static func narrowed<S: BinaryInteger, T: NativeType & FixedWidthInteger>(
        _ values: [S], _: T.Type, _ validity: Validity, _ rows: Int, _ n: Nullability
    ) throws -> PrimitiveArray {
        var out: [T] = []
        out.reserveCapacity(values.count)
        for x in values {
            guard let y = T(exactly: x) else { throw ParquetProblem("value \(x) does not fit the column's \(T.ptype)") }
            out.append(y)
        }
        return try primitive(spread(out, validity, rows, 0), validity, n)
    }

    /// `values` (the non-null ones) placed at the valid rows, `zero` in the others.
    static func spread<T>(_ values: [T], _ validity: Validity, _ rows: Int, _ zero: T) -> [T] {
        switch validity {
        case .allValid: return values
        case .allInvalid: return [T](repeating: zero, count: rows)
        case .bitmap(let b):
            var out = [T](repeating: zero, count: rows)
            var k = 0
            for i in 0..<rows where b[i] {
                out[i] = values[k]
                k += 1
            }
            return out
        @unknown default: return values
        }
    }
}
