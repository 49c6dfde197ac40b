@_spi(Host) import Eddy
import Testing

/// Integer sums take a fast wrapping path when a bound proves it exact, and an exact path otherwise:
/// both must give the Int128 sum, including values at and past the bound.
@Suite struct AggregateExactnessTests {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (state >> 33) ^ (state << 31)
        }
    }

    /// Value sets: small, near 2^37 and 2^44 (the bounds for 10M and 64Ki rows), and extremes.
    static func values(_ kind: Int, count: Int, seed: UInt64) -> [Int64] {
        var g = Generator(state: seed)
        return (0..<count).map { i in
            let r = g.next()
            switch kind {
            case 0: return Int64(r % 2_000_001) - 1_000_000
            case 1: return Int64(bitPattern: r) >> 26  // about ±2^37
            case 2: return Int64(bitPattern: r) >> 19  // about ±2^44
            case 3: return i % 3 == 0 ? .max : (i % 3 == 1 ? .min : Int64(bitPattern: r))
            default: return i.isMultiple(of: 2) ? -(1 << 44) : (1 << 44) - 1
            }
        }
    }

    @Test(arguments: 0..<5)
    func plainSumsAreExact(kind: Int) throws {
        for count in [0, 1, 7, 1_000, 65_536, 300_001] {
            let v = Self.values(kind, count: count, seed: UInt64(kind * 1_000 + count))
            let expected = v.reduce(Int128(0)) { $0 + Int128($1) }
            let p = try AggregatePartial.of(PrimitiveArray(v), order: false)
            #expect(p.intSum == expected, "kind \(kind), \(count) rows")
        }
    }

    @Test(arguments: 0..<5)
    func runEndSumsAreExact(kind: Int) throws {
        var g = Generator(state: UInt64(kind))
        let values = Self.values(kind, count: 5_000, seed: UInt64(kind))
        var ends: [UInt32] = []
        var at: UInt32 = 0
        for _ in values {
            at += 1 + UInt32(g.next() % 300)
            ends.append(at)
        }
        let runs = try RunEndArray(ends: PrimitiveArray(ends), values: PrimitiveArray(values))
        let ctx = Session().makeContext()
        // Whole, and sliced so that the first and last runs are clipped.
        for (offset, length) in [(0, runs.count), (5, runs.count - 9), (Int(ends[10]), 1_000)] {
            let window = try RunEndArray(
                ends: PrimitiveArray(ends), values: PrimitiveArray(values), offset: offset, count: length)
            var expected = Int128(0)
            var start = 0
            for (k, end) in ends.enumerated() {
                let lo = Swift.max(start, offset)
                let hi = Swift.min(Int(end), offset + length)
                if hi > lo { expected += Int128(values[k]) * Int128(hi - lo) }
                start = Int(end)
            }
            let p = try AggregatePartial.fused(window, ctx, order: false)
            #expect(p.intSum == expected, "kind \(kind), window \(offset)+\(length)")
        }
    }
}
