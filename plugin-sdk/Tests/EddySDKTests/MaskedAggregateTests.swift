@_spi(Host) import Eddy
import Testing

/// The aggregates of a column with nulls run without a branch or a bit test per row (float sums in C
/// in row order, sums of up to 32-bit integers in 64 bits, min and max with nulls as the type's
/// bounds): each must give exactly what a row-by-row loop over the valid rows gives, at every slice
/// offset of the validity bitmap, -0.0 and NaN included.
@Suite struct MaskedAggregateTests {
    /// A validity of `count` rows: all valid, all null, every other, or random with runs.
    static func validity(_ kind: Int, count: Int, _ g: inout SeededRandom) -> [Bool] {
        (0..<count).map { i in
            switch kind {
            case 0: true
            case 1: false
            case 2: i % 2 == 0
            default: g.next() % 7 != 0 || (i / 64) % 3 == 1
            }
        }
    }

    /// `values` with `valid`, sliced from `start` (the bitmap then starts mid-byte).
    static func column<T: NativeType>(_ values: [T], _ valid: [Bool], start: Int) throws -> PrimitiveArray {
        let whole = PrimitiveArray(values).with(validity: .bitmap(Bitmap(valid)), nullability: .nullable)
        return try whole.slice(start, values.count - start)
    }

    @Test func floatSumsAreRowOrderSumsToTheBit() throws {
        var g = SeededRandom(seed: 11)
        let specials: [Double] = [-0.0, 0.0, .nan, .infinity, -.infinity, 1e308, -1e308, 1e-310, 0.1, 3]
        for count in [0, 1, 63, 64, 65, 200, 4099] {
            for kind in 0..<4 {
                let values: [Double] = (0..<count).map { i in
                    kind == 3 && i % 97 == 5
                        ? specials[i % specials.count] : Double(Int64(g.next() % 2_000_001) - 1_000_000) / 7
                }
                let valid = Self.validity(kind, count: count, &g)
                for start in [0, 1, 7, 9] where start <= count {
                    let array = try Self.column(values, valid, start: start)
                    var s = 0.0
                    var n = 0
                    for i in start..<count where valid[i] {
                        s += values[i]
                        n += 1
                    }
                    let p = try AggregatePartial.of(array, order: false)
                    #expect(p.nonNull == n, "\(count) rows, kind \(kind), from \(start)")
                    #expect(
                        p.floatSum.bitPattern == s.bitPattern || (p.floatSum.isNaN && s.isNaN), "\(p.floatSum) vs \(s)")
                    // Floats widen to Double before each addition.
                    let narrow = try Self.column(values.map { Float($0) }, valid, start: start)
                    var f = 0.0
                    for i in start..<count where valid[i] { f += Double(Float(values[i])) }
                    let q = try AggregatePartial.of(narrow, order: false)
                    #expect(
                        q.floatSum.bitPattern == f.bitPattern || (q.floatSum.isNaN && f.isNaN),
                        "f32: \(q.floatSum) vs \(f)")
                }
            }
        }
        // Only -0.0 and nulls: the sum stays -0.0, as skipping the nulls leaves it.
        let negativeZeros = try Self.column([-0.0, 5, -0.0], [true, false, true], start: 0)
        let z = try AggregatePartial.of(negativeZeros, order: false)
        #expect(z.floatSum.bitPattern == (0.0 + -0.0 + -0.0).bitPattern)
    }

    @Test func narrowIntegerSumsAndBoundsWithNulls() throws {
        var g = SeededRandom(seed: 5)
        func check<T: NativeInteger>(_: T.Type) throws {
            for count in [0, 1, 64, 65, 1000] {
                for kind in 0..<4 {
                    let values: [T] = (0..<count).map { i in
                        i % 13 == 0 ? (i % 2 == 0 ? T.max : T.min) : T(truncatingIfNeeded: g.next())
                    }
                    let valid = Self.validity(kind, count: count, &g)
                    for start in [0, 3] where start <= count {
                        let array = try Self.column(values, valid, start: start)
                        let kept = (start..<count).filter { valid[$0] }.map { values[$0] }
                        let p = try AggregatePartial.of(array, order: true)
                        let what = "\(T.self), \(count) rows, kind \(kind), from \(start)"
                        #expect(p.nonNull == kept.count, "\(what)")
                        #expect(p.intSum == kept.reduce(Int128(0)) { $0 + Int128($1) }, "\(what)")
                        #expect(p.min == (kept.min()?.scalarValue ?? .null), "\(what)")
                        #expect(p.max == (kept.max()?.scalarValue ?? .null), "\(what)")
                    }
                }
            }
        }
        try check(Int8.self)
        try check(UInt8.self)
        try check(Int16.self)
        try check(UInt16.self)
        try check(Int32.self)
        try check(UInt32.self)
        try check(Int64.self)
        try check(UInt64.self)
    }
}
