@_spi(Host) import Eddy
import EddyTestSupport
import EddyTesting
import Testing

/// The result builders kernels fill by runs and words give the same arrays as appending the same
/// rows one at a time, at every alignment, with and without nulls, and refuse bad counts.
@Suite struct ResultBuilderTests {
    /// A random mix of runs (around word edges), single bits, words and bitmap slices, checked against
    /// the rows it stands for.
    @Test(arguments: 0..<40)
    func bitmapAndBoolBuildersMatchRowByRowAppends(seed: Int) throws {
        var g = ArrayGenerator(seed: UInt64(seed) &* 0x9E37_79B9 &+ 1)
        var bits = BitmapBuilder()
        var bools = BoolArray.Builder()
        var expected: [Bool?] = []
        var nullable = false  // a null, or rows of a nullable array, appended
        let source = BoolArray((0..<300).map { k -> Bool? in k % 7 == 3 ? nil : k % 3 == 0 })
        for _ in 0..<g.int(1...40) {
            switch g.int(0...4) {
            case 0:
                let n = g.pick([0, 1, 2, 31, 63, 64, 65, 127, 128, 129, 200])
                let v = g.chance(0.5)
                bits.append(v, count: n)
                try bools.append(v, count: n)
                expected += Array(repeating: v, count: n)
            case 1:
                let n = g.int(0...64)
                let w = g.next()
                try bits.append(word: w, count: n)
                try bools.append(word: w, count: n)
                expected += (0..<n).map { (w >> UInt64($0)) & 1 == 1 }
            case 2:
                let n = g.int(0...130)
                try bools.append(nil, count: n)
                bits.append(false, count: n)
                nullable = nullable || n > 0
                expected += Array(repeating: nil, count: n)
            case 3:
                let lo = g.int(0...299)
                let hi = g.int(lo...300)
                try bools.append(source, rows: lo..<hi)
                bits.append(contentsOf: try source.bits.slice(lo, hi - lo))
                nullable = nullable || hi > lo
                expected += try (lo..<hi).map { try source.value(at: $0) }
            default:
                let v = g.chance(0.5)
                bits.append(v)
                try bools.append(v)
                expected.append(v)
            }
        }
        let b = bits.finish()
        let a = bools.finish()
        #expect(b.count == expected.count && a.count == expected.count)
        for (i, e) in expected.enumerated() {
            #expect(try a.value(at: i) == e, "row \(i)")
            if let e { #expect(b[i] == e, "bit \(i)") }
        }
        #expect(a.dtype.isNullable == nullable)
        // The last word holds nothing past the count (a kernel's trueCount would see it).
        #expect(b.trueCount == (0..<b.count).filter { b[$0] }.count)
    }

    @Test func buildersRefuseBadCountsAndIndices() throws {
        var bits = BitmapBuilder()
        #expect(throws: EddyError.self) { try bits.append(word: 1, count: 65) }
        #expect(throws: EddyError.self) { try bits.append(word: 1, count: -1) }
        var bools = BoolArray.Builder()
        #expect(throws: EddyError.self) { try bools.append(true, count: -1) }
        #expect(throws: EddyError.self) { try bools.append(BoolArray([true]), rows: 0..<2) }
        var ints = PrimitiveArray.Builder<Int32>()
        #expect(throws: EddyError.self) { try ints.append(1, count: -5) }
        #expect(throws: EddyError.self) { try ints.append(1, count: Int.max) }
        #expect(throws: EddyError.self) { try ints.append(PrimitiveArray([Int64(1)]), rows: 0..<1) }
        #expect(throws: EddyError.self) { try BoolArray([true]).value(at: 1) }
        #expect(bits.bitCount == 0 && bools.count == 0 && ints.count == 0)
    }

    @Test(arguments: 0..<20)
    func primitiveBuilderMatchesTheRowsItStandsFor(seed: Int) throws {
        var g = ArrayGenerator(seed: UInt64(seed) &+ 77)
        var builder = PrimitiveArray.Builder<Int64>(capacity: g.int(0...10))
        var expected: [Int64?] = []
        var nullable = false  // a null, or rows of a nullable array, appended
        let source = PrimitiveArray((0..<200).map { k -> Int64? in k % 5 == 2 ? nil : Int64(k * 3) })
        let plain: [Int64] = (0..<50).map { Int64($0) - 25 }
        for _ in 0..<g.int(1...30) {
            switch g.int(0...3) {
            case 0:
                let n = g.int(0...300)
                let v: Int64? = g.chance(0.2) ? nil : Int64(g.int(-1000...1000))
                try builder.append(v, count: n)
                expected += Array(repeating: v, count: n)
                nullable = nullable || (v == nil && n > 0)
            case 1:
                let lo = g.int(0...199)
                let hi = g.int(lo...200)
                try builder.append(source, rows: lo..<hi)
                nullable = nullable || hi > lo
                expected += (lo..<hi).map { $0 % 5 == 2 ? nil : Int64($0 * 3) }
            case 2:
                plain.withUnsafeBufferPointer { builder.append(contentsOf: $0) }
                expected += plain.map { Optional($0) }
            default:
                try builder.append(PrimitiveArray(plain), rows: 10..<20)
                expected += plain[10..<20].map { Optional($0) }
            }
        }
        let a = builder.finish()
        #expect(a.count == expected.count)
        #expect(a.dtype.isNullable == nullable)
        for (i, e) in expected.enumerated() {
            let s = try a.scalar(at: i)
            #expect(s.isNull == (e == nil) && (e == nil || s.value == .int(e!)), "row \(i)")
        }
        #expect(builder.count == 0, "finish leaves the builder empty")
    }

    @Test func aCopiedBoolBuilderNeverWritesIntoTheOthersRowsOrAFinishedArray() throws {
        var a = BoolArray.Builder()
        try a.append(true, count: 70)
        var b = a
        try a.append(word: 0b1011, count: 4)
        try b.append(nil, count: 3)
        try b.append(true, count: 1)
        let first = a.finish()
        try a.append(true, count: 200)  // into memory of its own, not into `first`
        let second = b.finish()
        #expect(first.count == 74 && second.count == 74)
        #expect(try (70..<74).map { try first.value(at: $0) } == [true, true, false, true])
        #expect(try (70..<74).map { try second.value(at: $0) } == [nil, nil, nil, true])
        #expect(first.validity.isAllValid && first.bits.trueCount == 73)
        #expect(second.validity.nullCount(74) == 3)
    }

    @Test func aCopiedPrimitiveBuilderNeverWritesIntoTheOthersRowsOrAFinishedArray() throws {
        var a = PrimitiveArray.Builder<Int32>(capacity: 100)
        try a.append(1, count: 10)
        try a.append(nil, count: 2)
        var b = a
        try a.append(2, count: 5)
        try b.append(3, count: 5)
        try b.append(nil, count: 1)
        let first = a.finish()
        try a.append(9, count: 50)  // a's next rows go to memory of its own, not into `first`
        let second = b.finish()
        #expect(
            try first.values(Int32.self) == Array(repeating: 1, count: 10) + [0, 0] + Array(repeating: 2, count: 5))
        #expect(
            try second.values(Int32.self) == Array(repeating: 1, count: 10) + [0, 0] + Array(repeating: 3, count: 5) + [
                0
            ])
        #expect(first.validity.nullCount(first.count) == 2 && second.validity.nullCount(second.count) == 3)
        #expect(try first.scalar(at: 16).value == .int(2) && !(try second.scalar(at: 16).isNull))
        #expect(try second.scalar(at: 17).isNull)
    }
}
