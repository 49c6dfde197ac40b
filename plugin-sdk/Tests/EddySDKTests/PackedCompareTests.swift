import EddyKernelsC
import Testing

@testable @_spi(Host) import Eddy

/// Comparing bit-packed values with a constant (`compare on packed values`: unpacked a block at a time
/// and compared in C, four to an AVX2 instruction), unpacking them into 8-, 16- and 32-bit arrays (one
/// unrolled loop per width and size), and comparing a dictionary's bit-packed codes as packed when one
/// value answers true: each must equal decoding first and comparing (or looking up) row by row, for
/// every operator, width, window offset, tail length, validity and patch.
@Suite struct PackedCompareTests {
    /// Each row of `array` decoded, then compared with `needle` by `op` (nil for a null row).
    static func decodedThenCompared(
        _ array: any ArrayNode, _ op: CompareOperator, _ needle: Int128, _ ctx: ExecutionCtx
    )
        throws -> [Bool?]
    {
        guard let plain = try ctx.executeUntil(array, .columnar) as? PrimitiveArray else {
            throw EddyError(.typeMismatch, "bit-packed values did not decode to a primitive array")
        }
        let values = plain.int128Values()
        return values.indices.map { plain.validity.isValid($0) ? op.apply(values[$0], needle) : nil }
    }

    /// The rows of a boolean result (nil for a null row).
    static func rows(_ result: any ArrayNode, _ ctx: ExecutionCtx) throws -> [Bool?] {
        guard let bools = try ctx.executeUntil(result, .columnar) as? BoolArray else {
            throw EddyError(.typeMismatch, "a comparison did not give booleans")
        }
        return (0..<bools.count).map { bools.validity.isValid($0) ? bools.bits[$0] : nil }
    }

    @Test(arguments: [PType.uint8, .uint16, .uint32, .uint64, .int32, .int64])
    func packedComparesEqualDecodedThenCompared(ptype: PType) throws {
        let ctx = Session().makeContext()
        for width in [0, 1, 3, 8, 9, 17, 32, 63] where width <= ptype.byteWidth * 8 {
            let top: Int128 = width == 0 ? 0 : (Int128(1) << width) - 1
            for (offset, count) in [(0, 1), (5, 63), (64, 64), (3, 1000), (61, 2113)] {
                for validityOffset in [nil, 5] as [Int?] {
                    for patches in [false, true] {
                        let seed = UInt64(width * 1_000_003 + offset * 1_009 + count * 7) ^ (patches ? 0xABC : 0)
                        let array = try PackedSumTests.packed(
                            ptype, width: width, offset: offset, count: count, validityOffset: validityOffset,
                            patches: patches, seed: seed)
                        // A value that occurs, the packed range's ends, 7 and 9 (the patches), one past the
                        // top, and -1 below the bottom of a signed type.
                        let present = try Self.decodedValues(array, ctx).first ?? 0
                        let below: Int128 = ptype.isSignedInteger ? -1 : 0
                        for needle in Set([present, 0, top, 7, 9, top + 1, below]) where needle <= Self.largest(ptype) {
                            for op in CompareOperator.allCases {
                                let got = try Self.rows(
                                    CompareFunction.make(
                                        array, op, ConstantArray(Self.scalar(needle, ptype), count: count)),
                                    ctx)
                                let want = try Self.decodedThenCompared(array, op, needle, ctx)
                                let row = got.indices.first { $0 >= want.count || got[$0] != want[$0] }
                                #expect(
                                    got.count == want.count && row == nil,
                                    "\(ptype) width \(width) at \(offset) × \(count) \(op) \(needle), validity \(String(describing: validityOffset)), patches \(patches): row \(row ?? -1)"
                                )
                            }
                        }
                    }
                }
            }
        }
    }

    @Test func compareKernelEqualsRowByRowForEveryOperatorAndTail() {
        var g = SeededRandom(seed: 11)
        for n in [0, 1, 3, 63, 64, 65, 127, 128, 1000, 1024] {
            for spread in [UInt64(2), 1000, UInt64.max] {
                let values = (0..<n).map { _ in spread == .max ? g.next() : g.next() % spread }
                let needles =
                    [0, 1, UInt64.max, UInt64(1) << 63, (UInt64(1) << 63) - 1] + (values.first.map { [$0] } ?? [])
                for needle in needles {
                    for (code, op) in CompareOperator.allCases.enumerated() {
                        var out = [UInt64](repeating: 0xDEAD, count: (n + 63) / 64)
                        let largest = values.withUnsafeBufferPointer { v in
                            out.withUnsafeMutableBufferPointer { o in
                                eddy_compare_u64(v.baseAddress, n, Int32(code), needle, 1, o.baseAddress)
                            }
                        }
                        let want = values.map { op.apply(Int128($0), Int128(needle)) }
                        let got = (0..<n).map { out[$0 >> 6] >> UInt64($0 & 63) & 1 == 1 }
                        #expect(got == want, "\(n) values up to \(spread), \(op) \(needle)")
                        #expect(largest == (values.max() ?? 0), "\(n) values up to \(spread): largest")
                        if n % 64 != 0 {
                            #expect(
                                out[n >> 6] >> UInt64(n & 63) == 0, "\(n) values, \(op): bits past the end must be 0")
                        }
                    }
                }
            }
        }
    }

    @Test(arguments: [PType.uint8, .uint16, .uint32, .int8, .int16, .int32])
    func narrowUnpackEqualsOneValueAtATime(ptype: PType) throws {
        for width in 1...(ptype.byteWidth * 8) {
            for (offset, count) in [(0, 64), (5, 200), (64, 1000), (61, 130)] {
                let array = try PackedSumTests.packed(
                    ptype, width: width, offset: offset, count: count, validityOffset: nil, patches: false,
                    seed: UInt64(width * 31 + offset))
                let words = array.packed.baseAddress.assumingMemoryBound(to: UInt64.self)
                let want = (0..<count).map { BitPackedArray.unpack(words, width, offset + $0) }
                let got: [UInt64] =
                    switch ptype.byteWidth {
                    case 1: Self.unpacked(UInt8.self, words, width, offset, count)
                    case 2: Self.unpacked(UInt16.self, words, width, offset, count)
                    default: Self.unpacked(UInt32.self, words, width, offset, count)
                    }
                #expect(got == want, "\(ptype) width \(width) at \(offset) × \(count)")
            }
        }
    }

    @Test func packedDictionaryCodesEqualPerCodeLookups() throws {
        var g = SeededRandom(seed: 99)
        let ctx = Session().makeContext()
        for tableCount in [2, 5, 10, 16, 17, 200] {
            for n in [1, 63, 64, 65, 1000, 4097] {
                for (offset, outOfRange) in [(0, false), (3, false), (0, true), (70, true)] {
                    for nullable in [false, true] {
                        let width =
                            Swift.max(1, (tableCount - 1).bitWidth - (tableCount - 1).leadingZeroBitCount)
                            + (outOfRange ? 1 : 0)
                        var codes = (0..<(offset + n)).map { _ in UInt64(g.next() % UInt64(tableCount)) }
                        if outOfRange { codes[offset + Int(g.next() % UInt64(n))] = UInt64(tableCount) }
                        let packedWords = Self.pack(codes, width: width)
                        let validity: Validity =
                            nullable ? .bitmap(Bitmap((0..<n).map { _ in g.next() % 5 != 0 })) : .allValid
                        let packed = try BitPackedArray(
                            ptype: .uint32, bitWidth: width, packed: packedWords, offset: offset, count: n,
                            validity: validity, nullability: nullable ? .nullable : .nonNullable, patchIndices: [],
                            patchValues: nil)
                        let only = Int(g.next() % UInt64(tableCount))
                        let lut = BoolArray((0..<tableCount).map { $0 == only })
                        let what =
                            "table of \(tableCount), \(n) codes at \(offset), out of range \(outOfRange), nullable \(nullable)"
                        let result = DictArray.comparePacked(
                            packed, lut, .bool(nullable ? .nullable : .nonNullable))
                        if outOfRange {
                            #expect(result == nil, "\(what): a code outside the values is left to the checked path")
                            continue
                        }
                        let got = try Self.rows(try #require(result, "\(what)"), ctx)
                        let want = (0..<n).map { validity.isValid($0) ? Int(codes[offset + $0]) == only : nil }
                        #expect(got == want, "\(what)")
                    }
                }
            }
        }
    }

    /// The largest value of an integer ptype.
    static func largest(_ ptype: PType) -> Int128 {
        let bits = ptype.byteWidth * 8
        return ptype.isSignedInteger ? (Int128(1) << (bits - 1)) - 1 : (Int128(1) << bits) - 1
    }

    static func decodedValues(_ array: any ArrayNode, _ ctx: ExecutionCtx) throws -> [Int128] {
        guard let plain = try ctx.executeUntil(array, .columnar) as? PrimitiveArray else { return [] }
        return plain.int128Values()
    }

    static func scalar(_ v: Int128, _ ptype: PType) -> Scalar {
        switch ptype {
        case .uint8: .native(UInt8(v))
        case .uint16: .native(UInt16(v))
        case .uint32: .native(UInt32(v))
        case .uint64: .native(UInt64(v))
        case .int32: .native(Int32(v))
        default: .native(Int64(v))
        }
    }

    static func unpacked<T: FixedWidthInteger>(
        _: T.Type, _ words: UnsafePointer<UInt64>, _ width: Int, _ offset: Int, _ count: Int
    ) -> [UInt64] {
        let out = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            BitPackedArray.unpackAll(words, width, offset, count, into: buffer)
            initialized = count
        }
        return out.map { UInt64(truncatingIfNeeded: $0) & (width == 64 ? .max : (1 << width) - 1) }
    }

    /// `values` packed `width` bits each from bit 0 of the first word, in whole words plus one.
    static func pack(_ values: [UInt64], width: Int) -> Buffer {
        Buffer.build(count: (values.count * width + 63) / 64 + 1, of: UInt64.self) { out in
            for i in 0..<out.count { out[i] = 0 }
            for (i, v) in values.enumerated() {
                let bit = i * width
                out[bit >> 6] |= v << UInt64(bit & 63)
                if (bit & 63) + width > 64 { out[(bit >> 6) + 1] |= v >> UInt64(64 - (bit & 63)) }
            }
        }
    }
}
