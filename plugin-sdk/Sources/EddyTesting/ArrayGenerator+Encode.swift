@_spi(Host) import Eddy

extension ArrayGenerator {
    /// `column`, encoded by a random tree about `depth` deep (dictionary, run-end, chunked, slice,
    /// frame-of-reference and bit-packing for integers, sparse, constant).
    public mutating func encode(_ column: any ArrayNode, depth: Int) throws -> any ArrayNode {
        guard depth > 0, column.count > 0, column.isCanonical else { return column }
        let choices: [EncodingID] =
            [DictArray.id, RunEndArray.id, ChunkedArray.id, SliceArray.id, SparseArray.id]
            + (column.dtype.isInteger ? [FoRArray.id, BitPackedArray.id] : [])
            + (column.dtype.isUTF8 ? [IntStringArray.id] : [])
        return try encode(column, as: pick(choices), depth: depth) ?? column
    }

    /// `column` encoded with `encoding` at the top (its children encoded again, `depth - 1` deep), or
    /// nil when the encoding cannot hold it (bit-packing of negative numbers, say).
    public mutating func encode(_ column: any ArrayNode, as encoding: EncodingID, depth: Int) throws -> (any ArrayNode)?
    {
        let n = column.count
        switch encoding {
        case PrimitiveArray.id, BoolArray.id, VarBinArray.id, NullArray.id, StructArray.id:
            guard column.encoding == encoding else { return nil }
            // Half the time a view that starts mid-buffer: the same values behind `before` others.
            guard n > 0, chance(0.5) else { return column }
            let before = int(1...70)
            let pick = PrimitiveArray((0..<(before + n)).map { i in Int64(i < before ? 0 : i - before) })
            return try Canonical.slice(Canonical.take(column, indices: pick), before, n)
        case IntStringArray.id:
            guard let v = column as? VarBinArray, let e = IntStringArray.encode(v) else { return nil }
            return try IntStringArray(
                prefix: e.prefix, suffix: e.suffix, width: e.width, numbers: encode(e.numbers, depth: depth - 1),
                nullability: column.dtype.nullability)
        case ConstantArray.id:
            let scalar =
                n > 0 && chance(0.8)
                ? try column.scalar(at: int(0...(n - 1))) : Scalar(value(column.dtype), column.dtype)
            return ConstantArray(Scalar(scalar.value, column.dtype), count: n)
        case DictArray.id:
            return try encodeDictionary(column, depth: depth)
        case RunEndArray.id:
            guard n > 0 else { return nil }
            let before = chance(0.3) ? int(1...5) : 0
            let padded =
                before == 0
                ? column
                : try Canonical.take(
                    column, indices: PrimitiveArray((0..<(before + n)).map { Int64(Swift.max(0, $0 - before)) }))
            let re = try RunEndArray.encode(padded)
            return try RunEndArray(ends: re.ends, values: encode(re.values, depth: depth - 1), offset: before, count: n)
        case ChunkedArray.id:
            return try encodeChunked(column, depth: depth)
        case SliceArray.id:
            let before = int(0...3)
            let after = int(0...3)
            let pick = PrimitiveArray(
                (0..<(before + n + after)).map { i in Int64(Swift.min(Swift.max(0, i - before), Swift.max(0, n - 1))) })
            guard n > 0 || before + after == 0 else { return try SliceArray(column, start: 0, length: 0) }
            let padded = try Canonical.take(column, indices: pick)
            return try SliceArray(encode(padded, depth: depth - 1), start: before, length: n)
        case SparseArray.id:
            return try encodeSparse(column, depth: depth)
        case FoRArray.id:
            guard let p = column as? PrimitiveArray, p.ptype.isInteger else { return nil }
            let f = try FoRArray.encode(p)
            guard chance(0.6), let child = f.child as? PrimitiveArray, child.ptype.isUnsignedInteger else { return f }
            return try FoRArray(
                reference: f.reference, child: encode(child, as: BitPackedArray.id, depth: depth - 1) ?? child)
        case BitPackedArray.id:
            return try encodeBitPacked(column)
        default:
            return nil
        }
    }

    /// A dictionary over the column's distinct values, its codes as real files hold them: plain or
    /// bit-packed (half the time; now and then wider than they need), of a narrow type when they fit (u8,
    /// u16) or u32, sometimes a view that starts and ends inside a longer run of codes (an offset into the
    /// buffer, mid-word when packed), and for a nullable column often with null codes (as Parquet stores
    /// nulls: the null row's code is 0, a value of the dictionary) instead of a null value.
    private mutating func encodeDictionary(_ column: any ArrayNode, depth: Int) throws -> (any ArrayNode)? {
        let n = column.count
        let nullCodes = column.dtype.isNullable && chance(0.5)
        var index = ValueIndex()
        var values = ArrayBuilder(dtype: column.dtype)
        var codes: [UInt32?] = []
        for i in 0..<n {
            let v = try column.scalar(at: i).value
            if nullCodes && v.isNull {
                codes.append(nil)
            } else if let c = index.code(of: v) {
                codes.append(c)
            } else {
                codes.append(index.add(v))
                values.append(v)
            }
        }
        if index.isEmpty && n > 0 {
            // Every row null: the dictionary holds the null, as it does without null codes.
            values.append(.null)
            codes = codes.map { $0 ?? 0 }
        }
        let distinct = Swift.max(index.count, 1)
        // Values no row uses, after the used ones: a filter or slice pushed into the codes keeps the
        // whole dictionary, and a file's dictionary serves all its pages. A kernel must answer from the
        // codes present, not from every value (`min` of the values is not the column's min).
        if n > 0 && !index.isEmpty && chance(0.3) {
            let extra = try self.column(column.dtype.with(.nonNullable), count: int(1...3))
            for i in 0..<extra.count {
                let v = try extra.scalar(at: i).value
                if index.code(of: v) == nil {
                    _ = index.add(v)
                    values.append(v)
                }
            }
        }
        // Codes before and after the rows: the view starts at an offset and ends before its buffer does.
        let before = n > 0 && chance(0.3) ? int(1...70) : 0
        let after = before > 0 ? int(0...70) : 0
        var all: [UInt32?] = (0..<before).map { _ in UInt32(int(0...(distinct - 1))) }
        all += codes
        all += (0..<after).map { _ in UInt32(int(0...(distinct - 1))) }
        let codeArray: PrimitiveArray
        switch distinct <= 256 && chance(0.5) ? 8 : distinct <= 65_536 && chance(0.5) ? 16 : 32 {
        case 8: codeArray = PrimitiveArray(all.map { $0.map { UInt8(truncatingIfNeeded: $0) } })
        case 16: codeArray = PrimitiveArray(all.map { $0.map { UInt16(truncatingIfNeeded: $0) } })
        default: codeArray = PrimitiveArray(all)
        }
        let typed: PrimitiveArray =
            all.contains(nil)
            ? codeArray : codeArray.with(validity: .allValid, nullability: .nonNullable)
        let packed: any ArrayNode
        if chance(0.5) && !all.isEmpty {
            let needed = Swift.max(1, 32 - UInt32(distinct - 1).leadingZeroBitCount)
            let width = Swift.min(needed + (chance(0.3) ? int(1...3) : 0), typed.ptype.byteWidth * 8)
            packed = try BitPackedArray.encode(typed, bitWidth: width).slice(before, n)
        } else {
            packed = try Canonical.slice(typed, before, n)
        }
        return try DictArray(codes: packed, values: encode(values.finish(), depth: depth - 1))
    }

    /// Chunks of random lengths (sometimes with an empty one), each encoded again.
    private mutating func encodeChunked(_ column: any ArrayNode, depth: Int) throws -> (any ArrayNode)? {
        let n = column.count
        var chunks: [any ArrayNode] = []
        var start = 0
        while start < n {
            let len = Swift.min(int(1...Swift.max(1, n / 2)), n - start)
            chunks.append(try encode(Canonical.slice(column, start, len), depth: depth - 1))
            start += len
        }
        if chance(0.2) { chunks.insert(try Canonical.slice(column, 0, 0), at: int(0...chunks.count)) }
        return try ChunkedArray(chunks: chunks, dtype: column.dtype)
    }

    /// A sparse array filled with one of the column's values, or now and then with a value of its type
    /// that no row may hold: then every row can be a patch, and the fill counts for no row.
    private mutating func encodeSparse(_ column: any ArrayNode, depth: Int) throws -> (any ArrayNode)? {
        let n = column.count
        guard n > 0 else { return nil }
        let fill = chance(0.2) ? Scalar(value(column.dtype), column.dtype) : try column.scalar(at: int(0...(n - 1)))
        var positions: [Int64] = []
        for i in 0..<n where try !column.scalar(at: i).value.isIdentical(to: fill.value) {
            positions.append(Int64(i))
        }
        let values = try Canonical.take(column, indices: PrimitiveArray(positions))
        return try SparseArray(
            fill: Scalar(fill.value, column.dtype), indices: PrimitiveArray(positions),
            values: encode(values, depth: depth - 1), count: n)
    }

    /// Unsigned integers bit-packed at the width the compressor would choose or any other, sometimes
    /// as a slice of a longer packed array.
    private mutating func encodeBitPacked(_ column: any ArrayNode) throws -> (any ArrayNode)? {
        let n = column.count
        guard let p = column as? PrimitiveArray, p.ptype.isUnsignedInteger else { return nil }
        let width = p.ptype.byteWidth * 8
        // The width the compressor would choose (the widest valid value's bit length: 1 to 7 for
        // small values, which a u8 child always had from here before), or any other: narrower
        // ones leave patches, wider ones padding bits.
        var widest: UInt64 = 0
        let values = p.int128Values()
        for i in 0..<n where p.validity.isValid(i) { widest = Swift.max(widest, UInt64(clamping: values[i])) }
        let needed = Swift.max(1, 64 - widest.leadingZeroBitCount)
        let bits = chance(0.5) ? Swift.min(needed, width) : int(1...width)
        guard n > 0, chance(0.4) else { return try BitPackedArray.encode(p, bitWidth: bits) }
        // A slice of a longer packed array: the same values, starting mid-word.
        let before = int(1...70)
        let padded = try Canonical.take(
            p, indices: PrimitiveArray((0..<(before + n)).map { Int64(Swift.max(0, $0 - before)) }))
        guard let paddedValues = padded as? PrimitiveArray else {
            return try BitPackedArray.encode(p, bitWidth: bits)
        }
        return try BitPackedArray.encode(paddedValues, bitWidth: bits).slice(before, n)
    }
}

/// The codes of a dictionary being built, by value: integers and floats keyed by their bits (-0.0 as
/// 0.0, which `==` takes for one value; a NaN, equal to nothing, is always a new value, as before) and
/// text by its `String`; other values as themselves. Hashing and comparing a ``ScalarValue`` through
/// the SDK's resilient enum made the large inputs of `--verify` (100,000 rows, each looked up) cost
/// most of a second each.
struct ValueIndex {
    private var integers: [UInt64: UInt32] = [:]
    private var texts: [String: UInt32] = [:]
    private var floats: [UInt64: UInt32] = [:]
    private var others: [ScalarValue: UInt32] = [:]
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    func code(of v: ScalarValue) -> UInt32? {
        switch v {
        case .int(let x): integers[UInt64(bitPattern: x)]
        case .uint(let x): integers[x]
        case .utf8(let x): texts[x]
        case .float(let x): x.isNaN ? nil : floats[(x == 0 ? 0.0 : x).bitPattern]
        default: others[v]
        }
    }

    /// Adds `v` (not present yet) under the next code, and returns it.
    mutating func add(_ v: ScalarValue) -> UInt32 {
        let c = UInt32(count)
        switch v {
        case .int(let x): integers[UInt64(bitPattern: x)] = c
        case .uint(let x): integers[x] = c
        case .utf8(let x): texts[x] = c
        case .float(let x):
            // A NaN is found by no lookup: not stored (every NaN hashes alike, and storing each made a
            // column of NaNs quadratic).
            if !x.isNaN { floats[(x == 0 ? 0.0 : x).bitPattern] = c }
        default: others[v] = c
        }
        count += 1
        return c
    }
}
