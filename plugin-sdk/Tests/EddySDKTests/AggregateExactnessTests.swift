@_spi(Host) import Eddy
import EddyTestSupport
import Testing

/// Integer sums take a fast wrapping path when a bound proves it exact, and an exact path otherwise:
/// both must give the Int128 sum, including values at and past the bound.
@Suite struct AggregateExactnessTests {
    /// Value sets: small, near 2^37 and 2^44 (the bounds for 10M and 64Ki rows), and extremes.
    static func values(_ kind: Int, count: Int, seed: UInt64) -> [Int64] {
        var g = SeededRandom(seed: seed)
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

    /// Nullable Int64 sums go through the validity-word loop in C: windows that start and end off a
    /// 64-bit boundary of the bitmap, words all valid, all null and mixed.
    @Test(arguments: 0..<5)
    func maskedSumsAreExact(kind: Int) throws {
        var g = SeededRandom(seed: UInt64(kind) &+ 99)
        let values = Self.values(kind, count: 3_000, seed: UInt64(kind) &+ 7)
        let optional: [Int64?] = values.enumerated().map { i, v in
            switch i / 640 {
            case 0: v  // all valid
            case 1: nil  // all null
            default: g.next() % 5 == 0 ? nil : v
            }
        }
        let array = PrimitiveArray(optional)
        for (offset, length) in [(0, 3_000), (1, 2_998), (63, 700), (64, 640), (100, 1), (700, 0), (1_283, 1_717)] {
            let window = try array.slice(offset, length)
            let kept = optional[offset..<(offset + length)].compactMap { $0 }
            let p = try AggregatePartial.of(window, order: false)
            #expect(p.intSum == kept.reduce(Int128(0)) { $0 + Int128($1) }, "kind \(kind), \(offset)+\(length)")
            #expect(p.nonNull == kept.count, "kind \(kind), \(offset)+\(length)")
        }
    }

    /// Int64 + and - run branch-free with the overflow flags ORed: the values of valid rows, and an
    /// error naming the first valid row that overflows — none when only a null row's slot overflows.
    @Test func addAndSubtractOverflowOnlyOnValidRows() throws {
        let ctx = Session().makeContext()
        let big: Int64 = .max - 5
        for op in [ArithmeticOperator.add, .subtract] {
            let y: Int64 = op == .add ? 10 : -10
            let right = PrimitiveArray([Int64](repeating: y, count: 1_000))
            // Rows 900 and 950 overflow and are valid: the first is named.
            var raw = (0..<1_000).map { Int64($0) }
            raw[900] = big
            raw[950] = big
            do {
                _ = try ctx.execute(ArithmeticFunction.make(PrimitiveArray(raw), op, right))
                Issue.record("\(op): no overflow error")
            } catch let e as EddyError {
                #expect(e.code == .overflow && e.message.contains("row 900"), "\(e)")
            }
            // Only the slot of a null row (700) overflows: no error, every valid row exact.
            raw[900] = 900
            raw[950] = 950
            raw[700] = big
            let masked = try PrimitiveArray(
                ptype: .int64, buffer: Buffer(copying: raw), count: 1_000,
                validity: .bitmap(Bitmap((0..<1_000).map { $0 != 700 })), nullability: .nullable)
            for other in [right as any ArrayNode, ConstantArray(.int64(y), count: 1_000)] {
                let r = try ctx.execute(ArithmeticFunction.make(masked, op, other))
                for i in [0, 1, 699, 701, 900, 999] {
                    let expected = op == .add ? Int64(i) + y : Int64(i) - y
                    #expect(try r.scalar(at: i) == .int64(expected, .nullable), "\(op), row \(i)")
                }
                #expect(try r.scalar(at: 700).isNull)
            }
            // A constant on the left, and the minimum on the left of a subtraction.
            let left = try ctx.execute(
                ArithmeticFunction.make(ConstantArray(.int64(3), count: 1_000), op, PrimitiveArray(raw.map { $0 % 7 })))
            #expect(try left.scalar(at: 13) == .int64(op == .add ? 3 + 13 % 7 : 3 - 13 % 7))
            let edge = PrimitiveArray([Int64.min, -1, 0])
            let one = PrimitiveArray([Int64(1), 1, 1])
            #expect(throws: EddyError.self) {
                try ctx.execute(ArithmeticFunction.make(edge, .subtract, one))
            }
        }
    }

    /// sum(x ± y) over packed Int64 columns straight from the packed words: the same sum and count as
    /// element by element over the rows where both are valid, for every width up to 32, windows off
    /// the 64-value blocks, nulls, and references near the limits; nil where bounds allow an overflow
    /// or patches sit in the window.
    @Test func packedSumsOfSumsAndDifferencesMatchElementAccess() throws {
        var g = SeededRandom(seed: 31)
        var taken = 0
        var refused = 0
        for width in 0...33 {
            let limit: UInt64 = width == 0 ? 0 : (1 << UInt64(Swift.min(width, 63))) - 1
            func column(nullEvery: UInt64) throws -> BitPackedArray {
                let values: [UInt32?] = (0..<900).map { _ in
                    g.next() % nullEvery == 0 ? nil : UInt32(truncatingIfNeeded: g.next() & limit)
                }
                return try BitPackedArray.encode(PrimitiveArray(values), bitWidth: Swift.min(width, 32))
            }
            let (px, py) = (try column(nullEvery: 7), try column(nullEvery: 200))
            for (rx, ry) in [(Int64(-5), Int64(1_000)), (Int64.max - (1 << 33), -1), (Int64.min + 10, 0)] {
                for (start, length) in [(0, 900), (1, 700), (63, 130), (128, 640), (5, 0)] {
                    let x = try FoRArray(reference: .int64(rx), child: px.slice(start, length))
                    let y = try FoRArray(reference: .int64(ry), child: py.slice(start, length))
                    for op in [ArithmeticOperator.add, .subtract] {
                        var expected = Int128(0)
                        var rows = 0
                        var overflows = false
                        for i in 0..<length {
                            guard case .int(let a) = try x.scalar(at: i).value,
                                case .int(let b) = try y.scalar(at: i).value
                            else { continue }
                            let r = op == .add ? Int128(a) + Int128(b) : Int128(a) - Int128(b)
                            overflows = overflows || r < Int128(Int64.min) || r > Int128(Int64.max)
                            expected += r
                            rows += 1
                        }
                        let label = "width \(width), refs \(rx) \(ry), window \(start)+\(length), \(op)"
                        guard let fused = AggregatePartial.sumOfSumOrDifference(op, x, y) else {
                            // Refused: an overflow was possible (or values wider than 32 bits).
                            refused += 1
                            continue
                        }
                        taken += 1
                        #expect(!overflows, "\(label): a row overflows but the fused sum was taken")
                        #expect(
                            fused.sum == expected && fused.count == rows, "\(label): \(fused) vs \(expected), \(rows)")
                    }
                }
            }
        }
        #expect(taken > 400 && refused > 100, "\(taken) taken, \(refused) refused")
        // Patches in the window are refused.
        let patched = try BitPackedArray.encode(
            PrimitiveArray((0..<200).map { UInt32($0 == 50 ? 1 << 20 : $0 % 8) }), bitWidth: 3)
        #expect(!patched.patchIndices.isEmpty)
        let p = try FoRArray(reference: .int64(0), child: patched)
        #expect(AggregatePartial.sumOfSumOrDifference(.add, p, p) == nil)
        let clear = try FoRArray(reference: .int64(0), child: patched.slice(60, 100))
        #expect(AggregatePartial.sumOfSumOrDifference(.add, clear, clear) != nil)
    }

    @Test(arguments: 0..<5)
    func runEndSumsAreExact(kind: Int) throws {
        var g = SeededRandom(seed: UInt64(kind))
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
