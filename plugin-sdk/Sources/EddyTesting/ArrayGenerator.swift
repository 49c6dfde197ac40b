@_spi(Host) import Eddy

/// Seeded random arrays for conformance checks: plain columns of every shape a kernel meets (runs,
/// few or many distinct values, sorted, nulls, all null, empty, one row), encoded by random trees of
/// the engine's encodings, and the parent nodes (compare, like, arithmetic, cast, aggregates, filter,
/// take, slice) that put them to work. The same seed gives the same arrays.
public struct ArrayGenerator: RandomNumberGenerator {
    private var state: UInt64
    /// Integer columns drawn at the top of a span of 2^8, 2^16 or 2^32 values (one row at its bottom):
    /// a frame of reference over them packs values near its width's maximum, whose sums pass 32 bits
    /// in 65,536 rows (see ``PluginConformance``'s large inputs).
    var spanTops = false

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
    /// distinct values, sorted, constant, all null when nullable, one extreme value alone in an edge row),
    /// with values that look like data — floats are often decimals of one scale (prices, cents, 12.34),
    /// integers often a cluster of neighbours, sometimes near the type's bounds.
    public mutating func column(_ dtype: DType, count: Int) throws -> any ArrayNode {
        try column(dtype, count: count, extremes: true)
    }

    /// ``column(_:count:)`` where `extremes: false` leaves out NaN, the infinities, subnormals and the
    /// largest magnitudes: the columns a compressor hook that encodes decimals or small numbers accepts
    /// (`-0.0` stays in: a faithful encoding must keep it or decline).
    public mutating func column(_ dtype: DType, count: Int, extremes: Bool) throws -> any ArrayNode {
        if spanTops, case .primitive(let p, _) = dtype, p.isInteger { return try spanTopColumn(dtype, count: count) }
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
        let lone = shape == 5 ? loneExtreme(&pool, count: count) : nil
        let nullRate = dtype.isNullable ? (shape == 4 ? 1.0 : [0.0, 0.1, 0.5][int(0...2)]) : 0
        var b = ArrayBuilder(dtype: dtype, capacity: count)
        var n = 0
        var k = 0
        while n < count {
            let v: ScalarValue
            switch shape {
            case 2: v = pool[Swift.min(k * pool.count / Swift.max(count, 1), pool.count - 1)]  // sorted
            case 3: v = pool[0]  // constant
            default: v = pool[int(0...(pool.count - 1))]
            }
            for _ in 0..<(chance(0.5) ? int(1...6) : 1) where n < count {
                b.append(n == lone?.row ? lone?.value ?? v : chance(nullRate) ? .null : v)
                n += 1
                k += 1
            }
        }
        return try b.finish()
    }

    /// A ``spanTops`` column: eight values at the top of the span drawn at random, its bottom in one
    /// row, and 1% nulls when nullable — so that nearly every row is near the span's maximum.
    mutating func spanTopColumn(_ dtype: DType, count: Int) throws -> any ArrayNode {
        var draw = ValueDraw(dtype: dtype, extremes: false, rng: &self)
        let bottom = draw.next(&self)
        let tops = (0..<8).map { _ in draw.next(&self) }
        let at = int(0...Swift.max(0, count - 1))
        var b = ArrayBuilder(dtype: dtype, capacity: count)
        for n in 0..<count {
            b.append(n == at ? bottom : dtype.isNullable && chance(0.01) ? .null : tops[int(0...7)])
        }
        return try b.finish()
    }

    /// Shape 5's column: the pool's smallest or largest value exactly once, in the first two or the last
    /// two rows, the other rows drawn from the rest of the pool (taken out of `pool`). A kernel that skips
    /// the first or last element — of the rows, of a sparse array's patches, of a run or a chunk — then
    /// answers a min, max, sum or comparison differently. Nil (the pool unchanged) when it has one value.
    mutating func loneExtreme(_ pool: inout [ScalarValue], count: Int) -> (row: Int, value: ScalarValue)? {
        let sorted = pool.sorted(by: AggregatePartial.less)
        guard count > 0, let extreme = chance(0.5) ? sorted.first : sorted.last else { return nil }
        let rest = pool.filter { !$0.isIdentical(to: extreme) }
        guard !rest.isEmpty else { return nil }
        pool = rest
        return (pick([0, 1, count - 2, count - 1].filter { $0 >= 0 && $0 < count }), extreme)
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
}
