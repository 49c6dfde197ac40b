@_spi(Host) import Eddy

/// Seeded random arrays for conformance checks: plain columns of every shape a kernel meets (runs,
/// few or many distinct values, sorted, nulls, all null, empty, one row), encoded by random trees of
/// the engine's encodings, and the parent nodes (compare, like, arithmetic, cast, aggregates, filter,
/// take, slice) that put them to work. The same seed gives the same arrays.
public struct ArrayGenerator: RandomNumberGenerator {
    private var state: UInt64

    /// A generator whose every output is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next random 64 bits (SplitMix64).
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `r`.
    public mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound &+ Int(next() % UInt64(r.count)) }
    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    /// One of `items` (which must not be empty).
    public mutating func pick<T>(_ items: [T]) -> T { items[int(0...(items.count - 1))] }

    /// The dtypes the generators draw from: integers of several widths and signs, floats, text,
    /// binary and booleans, nullable and not.
    public static let dtypes: [DType] = [
        .primitive(.int64, .nullable), .primitive(.int64, .nonNullable), .primitive(.int32, .nullable),
        .primitive(.int16, .nonNullable), .primitive(.int8, .nullable), .primitive(.uint64, .nonNullable),
        .primitive(.uint32, .nullable), .primitive(.uint16, .nonNullable), .primitive(.uint8, .nullable),
        .primitive(.float64, .nullable), .primitive(.float32, .nonNullable),
        .utf8(.nullable), .utf8(.nonNullable), .binary(.nonNullable), .bool(.nullable), .bool(.nonNullable), .null,
        .struct(
            [StructField("id", .primitive(.int32, .nonNullable)), StructField("name", .utf8(.nullable))], .nullable),
    ]

    /// A row count that favours the edges: 0, 1, 2, 63, 64, 65, or anything up to `max`.
    public mutating func count(max: Int = 300) -> Int {
        chance(0.3) ? pick([0, 1, 2, 63, 64, 65].filter { $0 <= max }) : int(0...max)
    }

    /// A canonical column of `dtype`: one of several shapes (few distinct values with runs, many
    /// distinct values, sorted, constant, all null when nullable), with values that look like data —
    /// floats are often decimals of one scale (prices, cents, 12.34), integers often a cluster of
    /// neighbours, sometimes near the type's bounds.
    public mutating func column(_ dtype: DType, count: Int) throws -> any ArrayNode {
        try column(dtype, count: count, extremes: true)
    }

    /// ``column(_:count:)`` where `extremes: false` leaves out NaN, the infinities, subnormals and the
    /// largest magnitudes: the columns a compressor hook that encodes decimals or small numbers accepts
    /// (`-0.0` stays in: a faithful encoding must keep it or decline).
    public mutating func column(_ dtype: DType, count: Int, extremes: Bool) throws -> any ArrayNode {
        let shape = int(0...5)
        let distinct = shape == 1 ? Swift.max(1, count) : int(1...8)
        var draw = ValueDraw(dtype: dtype, extremes: extremes, rng: &self)
        var pool = (0..<distinct).map { _ in draw.next(&self) }
        if dtype.isUTF8, chance(0.3) {
            // Ids with a number in fixed text ("T0042", "note 7"): what the intstring encoding holds.
            let prefix = pick(["", "T", "note ", "日本-"])
            let suffix = pick(["", "/x"])
            let width = pick([0, 4])
            pool = (0..<distinct).map { _ in
                let n = String(int(0...(width == 4 ? 9999 : 100_000)))
                return .utf8(prefix + String(repeating: "0", count: Swift.max(0, width - n.count)) + n + suffix)
            }
        }
        if shape == 2 { pool.sort(by: AggregatePartial.less) }
        let nullRate = dtype.isNullable ? (shape == 4 ? 1.0 : [0.0, 0.1, 0.5][int(0...2)]) : 0
        var b = ArrayBuilder(dtype: dtype, capacity: count)
        var n = 0
        var k = 0
        while n < count {
            let v: ScalarValue
            switch shape {
            case 2: v = pool[Swift.min(k * pool.count / Swift.max(count, 1), pool.count - 1)]  // sorted
            case 3: v = pool[0]  // constant
            default: v = pool[int(0...(distinct - 1))]
            }
            for _ in 0..<(chance(0.5) ? int(1...6) : 1) where n < count {
                b.append(chance(nullRate) ? .null : v)
                n += 1
                k += 1
            }
        }
        return try b.finish()
    }

    /// A random value of `dtype`: numbers that look like data (decimals such as 12.34 or 0.1, prices,
    /// integers near zero or near the type's bounds), now and then an extreme (NaN, ±inf, -0.0,
    /// subnormals, the bounds); text from a fixed list with unicode, empty and long strings; bytes.
    public mutating func value(_ dtype: DType) -> ScalarValue {
        let words = ["", "a", "b", "ab", "abc", "Zürich", "日本", "emoji🙂", "a_b", "100%"]
        switch dtype {
        case .bool: return .bool(chance(0.5))
        case .primitive(let p, _):
            // Now and then the type's extremes: overflow, NaN, infinities and -0.0 must behave as decoding does.
            if chance(0.04), let extreme = Self.extremes(p).randomElement(using: &self) { return extreme }
            if p.isFloat { return Self.float(decimal(places: int(0...3)), p) }
            if chance(0.08) { return nearBound(p) }
            if p.isUnsignedInteger { return .uint(UInt64(int(0...200))) }
            return .int(Int64(int(-100...100)))
        case .utf8:
            if chance(0.03) {
                // Long text, mostly not ASCII: offsets past 255 bytes and multi-byte characters.
                let unit = pick(["Zürich ", "日本語テキスト", "emoji🙂🙃", "abcdefghij"])
                return .utf8(String(repeating: unit, count: int(20...60)))
            }
            return .utf8(words[int(0...(words.count - 1))])
        case .binary: return .binary((0..<int(0...4)).map { _ in UInt8(truncatingIfNeeded: next()) })
        case .struct(let fields, _): return .struct(fields.map { value($0.dtype) })
        case .null: return .null
        }
    }

    /// A number that looks like a decimal with `places` places: 12.34, 0.1, a price such as 1999.99,
    /// or (for `places` 0) a small integer; ±0.0 now and then. It is the double nearest to the decimal,
    /// as parsing "12.34" gives.
    public mutating func decimal(places: Int) -> Double {
        if chance(0.04) { return chance(0.5) ? -0.0 : 0.0 }
        let scale = Self.powersOfTen[Swift.min(Swift.max(places, 0), Self.powersOfTen.count - 1)]
        let digits: Int
        switch int(0...3) {
        case 0: digits = int(-99...99)  // 0.1, -0.25
        case 1: digits = int(0...99_999)  // prices and cents: 999.99
        case 2: digits = int(-9_999_999...9_999_999)
        default: digits = int(-2_000...2_000)
        }
        return Double(digits) / scale
    }

    /// `x` as a value of float type `p` (rounded to the nearest `Float` for f32).
    static func float(_ x: Double, _ p: PType) -> ScalarValue {
        .float(p == .float32 ? Double(Float(x)) : x)
    }

    static let powersOfTen: [Double] = [1, 10, 100, 1000, 10_000]

    /// An integer of `p` within 3 of its minimum or maximum.
    mutating func nearBound(_ p: PType) -> ScalarValue {
        let k = UInt64(int(0...3))
        switch p {
        case .int8: return .int(chance(0.5) ? Int64(Int8.min) + Int64(k) : Int64(Int8.max) - Int64(k))
        case .int16: return .int(chance(0.5) ? Int64(Int16.min) + Int64(k) : Int64(Int16.max) - Int64(k))
        case .int32: return .int(chance(0.5) ? Int64(Int32.min) + Int64(k) : Int64(Int32.max) - Int64(k))
        case .int64: return .int(chance(0.5) ? Int64.min + Int64(k) : Int64.max - Int64(k))
        case .uint8: return .uint(chance(0.5) ? k : UInt64(UInt8.max) - k)
        case .uint16: return .uint(chance(0.5) ? k : UInt64(UInt16.max) - k)
        case .uint32: return .uint(chance(0.5) ? k : UInt64(UInt32.max) - k)
        case .uint64: return .uint(chance(0.5) ? k : UInt64.max - k)
        case .float32, .float64: return .float(0)
        }
    }

    /// The extreme values of `p`: its minimum and maximum, and for floats NaN, the infinities, -0.0,
    /// the largest finite values and subnormals.
    public static func extremes(_ p: PType) -> [ScalarValue] {
        switch p {
        case .int8: [.int(Int64(Int8.min)), .int(Int64(Int8.max))]
        case .int16: [.int(Int64(Int16.min)), .int(Int64(Int16.max))]
        case .int32: [.int(Int64(Int32.min)), .int(Int64(Int32.max))]
        case .int64: [.int(Int64.min), .int(Int64.max)]
        case .uint8: [.uint(UInt64(UInt8.max)), .uint(0)]
        case .uint16: [.uint(UInt64(UInt16.max)), .uint(0)]
        case .uint32: [.uint(UInt64(UInt32.max)), .uint(0)]
        case .uint64: [.uint(UInt64.max), .uint(0)]
        case .float32:
            [
                .float(.nan), .float(.infinity), .float(-.infinity), .float(-0.0),
                .float(Double(Float.greatestFiniteMagnitude)), .float(Double(Float.leastNonzeroMagnitude)),
                .float(-Double(Float.leastNormalMagnitude.nextDown)),
            ]
        case .float64:
            [
                .float(.nan), .float(.infinity), .float(-.infinity), .float(-0.0), .float(.greatestFiniteMagnitude),
                .float(.leastNonzeroMagnitude), .float(-Double.leastNormalMagnitude.nextDown),
            ]
        }
    }

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
            var index: [ScalarValue: UInt32] = [:]
            var values = ArrayBuilder(dtype: column.dtype)
            var codes: [UInt32] = []
            for i in 0..<n {
                let v = try column.scalar(at: i).value
                if let c = index[v] {
                    codes.append(c)
                } else {
                    let c = UInt32(index.count)
                    index[v] = c
                    values.append(v)
                    codes.append(c)
                }
            }
            let codeArray = PrimitiveArray(codes)
            let packed: any ArrayNode =
                chance(0.5) && !codes.isEmpty
                ? try BitPackedArray.encode(
                    codeArray, bitWidth: Swift.max(1, 32 - (codes.max() ?? 0).leadingZeroBitCount))
                : codeArray
            return try DictArray(codes: packed, values: encode(values.finish(), depth: depth - 1))
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
            var chunks: [any ArrayNode] = []
            var start = 0
            while start < n {
                let len = Swift.min(int(1...Swift.max(1, n / 2)), n - start)
                chunks.append(try encode(Canonical.slice(column, start, len), depth: depth - 1))
                start += len
            }
            if chance(0.2) { chunks.insert(try Canonical.slice(column, 0, 0), at: int(0...chunks.count)) }
            return try ChunkedArray(chunks: chunks, dtype: column.dtype)
        case SliceArray.id:
            let before = int(0...3)
            let after = int(0...3)
            let pick = PrimitiveArray(
                (0..<(before + n + after)).map { i in Int64(Swift.min(Swift.max(0, i - before), Swift.max(0, n - 1))) })
            guard n > 0 || before + after == 0 else { return try SliceArray(column, start: 0, length: 0) }
            let padded = try Canonical.take(column, indices: pick)
            return try SliceArray(encode(padded, depth: depth - 1), start: before, length: n)
        case SparseArray.id:
            guard n > 0 else { return nil }
            let fill = try column.scalar(at: int(0...(n - 1)))
            var positions: [Int64] = []
            for i in 0..<n where try !column.scalar(at: i).value.isIdentical(to: fill.value) {
                positions.append(Int64(i))
            }
            let values = try Canonical.take(column, indices: PrimitiveArray(positions))
            return try SparseArray(
                fill: Scalar(fill.value, column.dtype), indices: PrimitiveArray(positions),
                values: encode(values, depth: depth - 1), count: n)
        case FoRArray.id:
            guard let p = column as? PrimitiveArray, p.ptype.isInteger else { return nil }
            let f = try FoRArray.encode(p)
            guard chance(0.6), let child = f.child as? PrimitiveArray, child.ptype.isUnsignedInteger else { return f }
            return try FoRArray(
                reference: f.reference, child: encode(child, as: BitPackedArray.id, depth: depth - 1) ?? child)
        case BitPackedArray.id:
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
        default:
            return nil
        }
    }

    /// A comparison of an encoded column with a constant that occurs in it, on either side.
    public mutating func compareOverEncoded(
        dtypes: [DType] = [
            .primitive(.int64, .nullable), .utf8(.nullable),
            .primitive(.uint16, .nonNullable), .utf8(.nonNullable),
        ],
        maxCount: Int = 300
    ) throws -> any ArrayNode {
        let dtype = pick(dtypes)
        let column = try self.column(dtype, count: int(1...maxCount))
        let encoded = try encode(column, depth: int(1...3))
        return try compare(encoded)
    }

    /// `child op constant` (or `constant op child`) with a constant that usually occurs in the child,
    /// often lies between two neighbouring values of it, sometimes not, and sometimes is null.
    public mutating func compare(_ child: any ArrayNode) throws -> any ArrayNode {
        let op = pick(CompareOperator.allCases)
        let constant = ConstantArray(try constant(for: child), count: child.count)
        return chance(0.7)
            ? try CompareFunction.make(child, op, constant) : try CompareFunction.make(constant, op, child)
    }

    /// A constant to combine with `child`: a value of it (40%), a value between two neighbouring values
    /// of it (12.345 between 12.34 and 12.35; half a unit of the last decimal place from a value; the
    /// next float up or down; the integer next to one) (40%), another value, or null (5%).
    public mutating func constant(for child: any ArrayNode) throws -> Scalar {
        let dtype = child.dtype.with(.nonNullable)
        if chance(0.05) { return .null(dtype) }
        if child.count > 0, chance(0.8) {
            if chance(0.5), let between = try neighbourConstant(child, dtype) { return between }
            let s = try child.scalar(at: int(0...(child.count - 1)))
            if !s.isNull { return Scalar(s.value, dtype) }
        }
        return Scalar(value(dtype), dtype)
    }

    /// A number between two neighbouring values of `child` (or next to one of them), or nil when the
    /// child holds no numbers.
    mutating func neighbourConstant(_ child: any ArrayNode, _ dtype: DType) throws -> Scalar? {
        guard case .primitive(let p, _) = dtype else { return nil }
        var seen = Set<ScalarValue>()
        for _ in 0..<Swift.min(child.count, 48) {
            let v = try child.scalar(at: int(0...(child.count - 1))).value
            if !v.isNull { seen.insert(v) }
        }
        let sorted = seen.sorted(by: AggregatePartial.less)
        guard let first = sorted.first else { return nil }
        let i = int(0...(sorted.count - 1))
        let (a, b) = (sorted[i], i + 1 < sorted.count ? sorted[i + 1] : first)
        let v: ScalarValue
        switch (a, b) {
        case (.float(let x), .float(let y)):
            switch int(0...3) {
            case 0 where y > x && (x + (y - x) / 2).isFinite: v = Self.float(x + (y - x) / 2, p)
            case 1:
                // Half a unit of the last decimal place: exactly where rounding to nearest goes wrong.
                let half = 0.5 / Self.powersOfTen[int(0...3)]
                v = Self.float(chance(0.5) ? x + half : x - half, p)
            case 2: v = .float(p == .float32 ? Double(Float(x).nextUp) : x.nextUp)
            default: v = .float(p == .float32 ? Double(Float(x).nextDown) : x.nextDown)
            }
        case (.int(let x), .int(let y)):
            // The gap between the neighbours, at most 2^30 (Int64.max - Int64.min does not fit).
            let (gap, wide) = y.subtractingReportingOverflow(x)
            let room: Int64 = y <= x ? 0 : wide ? 1 << 30 : Swift.min(gap - 1, 1 << 30)
            let step: Int64 = room > 0 ? Int64(int(1...Int(room))) : 1
            let (up, overflow) = x.addingReportingOverflow(chance(0.7) ? step : -step)
            v = overflow ? a : .int(up)
        case (.uint(let x), .uint(let y)):
            let step: UInt64 = y > x && y - x > 1 ? UInt64(int(1...Int(Swift.min(y - x - 1, 1 << 30)))) : 1
            v = chance(0.7) ? (x <= UInt64.max - step ? .uint(x + step) : a) : (x >= step ? .uint(x - step) : a)
        default:
            return nil
        }
        return v.fits(dtype) ? Scalar(v, dtype) : Scalar(a, dtype)
    }

    /// A node with parent encoding `parent` over `child` (in slot 0 or, for binary functions, either
    /// slot): compare, like, arithmetic, cast, aggregates, filter, take and slice. Nil when `parent`
    /// is not one of those or does not apply to the child's type.
    public mutating func parent(_ parent: EncodingID, over child: any ArrayNode) throws -> (any ArrayNode)? {
        let n = child.count
        switch parent {
        case CompareFunction.id:
            return try compare(child)
        case LikeFunction.id:
            guard case .utf8 = child.dtype else { return nil }
            let word = n > 0 ? (try child.scalar(at: int(0...(n - 1))).value).utf8Text ?? "a" : "a"
            let body = String(word.prefix(int(0...3)))
            let pattern = pick([body, body + "%", "%" + body, "%" + body + "%", "_" + body, body + "_%", "%", ""])
            return try LikeFunction.make(child, pattern: pattern, negated: chance(0.3))
        case ArithmeticFunction.id:
            guard case .primitive = child.dtype else { return nil }
            let op = pick(ArithmeticOperator.allCases)
            let c = ConstantArray(
                chance(0.1)
                    ? Scalar(zero(child.dtype), child.dtype.with(.nonNullable))
                    : try constant(for: child), count: n)
            return chance(0.7) ? try ArithmeticFunction.make(child, op, c) : try ArithmeticFunction.make(c, op, child)
        case NegateFunction.id:
            guard case .primitive = child.dtype else { return nil }
            return try NegateFunction.make(child)
        case NotFunction.id:
            guard case .bool = child.dtype else { return nil }
            return try NotFunction.make(child)
        case IsNullFunction.id:
            return try IsNullFunction.make(child)
        case CastFunction.id:
            let targets: [DType] = [
                .primitive(.int64, .nullable), .primitive(.int32, .nullable),
                .primitive(.uint8, .nullable), .primitive(.float64, .nullable), .utf8(.nullable),
            ]
            return try? CastFunction.make(child, to: pick(targets).with(child.dtype.nullability))
        case FilterArray.id:
            let bits = Bitmap(count: n) { _ in chance(0.5) }
            if chance(0.3) {
                let valid = Bitmap(count: n) { _ in chance(0.8) }
                return try FilterArray(
                    child, mask: BoolArray(bits: bits, validity: .bitmap(valid), nullability: .nullable))
            }
            return try FilterArray(child, bitmap: bits)
        case TakeArray.id:
            let m = count(max: 2 * Swift.max(n, 1))
            let nulls = chance(0.2)
            var indices: [Int64?] = []
            for _ in 0..<m {
                if nulls && chance(0.2) {
                    indices.append(nil)
                } else if n == 0 || chance(0.02) {
                    indices.append(Int64(n + int(0...3)))  // out of range: must be an error, not a crash
                } else {
                    indices.append(Int64(int(0...(n - 1))))
                }
            }
            return try TakeArray(
                child, indices: nulls ? PrimitiveArray(indices) : PrimitiveArray(indices.map { $0 ?? 0 }))
        case SliceArray.id:
            let start = int(0...n)
            return try SliceArray(child, start: start, length: int(0...(n - start)))
        default:
            for kind in AggregateFunction.Kind.allCases where AggregateFunction(kind).encoding == parent {
                return try? AggregateFunction(kind).make(child)
            }
            return nil
        }
    }

    private func zero(_ dtype: DType) -> ScalarValue {
        guard case .primitive(let p, _) = dtype else { return .null }
        return p.isFloat ? .float(0) : p.isUnsignedInteger ? .uint(0) : .int(0)
    }
}

extension ScalarValue {
    var utf8Text: String? { if case .utf8(let s) = self { s } else { nil } }
}

/// How one column's values are drawn: floats of one decimal scale (most float columns: prices, cents,
/// 12.34), integers clustered around one base (neighbours, sometimes at the type's bounds), or
/// anything ``ArrayGenerator/value(_:)`` gives.
struct ValueDraw {
    private enum Style {
        case any
        case decimals(places: Int)
        case cluster(base: ScalarValue)
    }

    private let dtype: DType
    private let style: Style
    private let extremes: Bool

    init(dtype: DType, extremes: Bool, rng g: inout ArrayGenerator) {
        self.dtype = dtype
        self.extremes = extremes
        switch dtype {
        case .primitive(let p, _) where p.isFloat:
            style = !extremes || g.chance(0.75) ? .decimals(places: g.int(0...3)) : .any
        case .primitive(let p, _) where g.chance(0.3):
            style = .cluster(base: g.chance(0.3) ? g.nearBound(p) : g.value(dtype))
        default:
            style = .any
        }
    }

    mutating func next(_ g: inout ArrayGenerator) -> ScalarValue {
        guard case .primitive(let p, _) = dtype else { return g.value(dtype) }
        switch style {
        case .any:
            return g.value(dtype)
        case .decimals(let places):
            if extremes, g.chance(0.03), let x = ArrayGenerator.extremes(p).randomElement(using: &g) { return x }
            // Now and then another scale, so that a column's values need not share one exponent.
            return ArrayGenerator.float(g.decimal(places: g.chance(0.1) ? g.int(0...3) : places), p)
        case .cluster(let base):
            let step = g.int(0...5)
            switch base {
            case .int(let b):
                let (v, overflow) = b.addingReportingOverflow(Int64(b < 0 ? step : -step))
                let x = ScalarValue.int(v)
                return !overflow && x.fits(dtype) ? x : base
            case .uint(let b):
                let x = ScalarValue.uint(b >= UInt64(step) && b > 100 ? b - UInt64(step) : b + UInt64(step))
                return x.fits(dtype) ? x : base
            default:
                return g.value(dtype)
            }
        }
    }
}
