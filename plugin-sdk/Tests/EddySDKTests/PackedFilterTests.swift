import Testing

@testable @_spi(Host) import Eddy

/// Filtering bit-packed values (`filter packed values`) takes two paths by the mask's density: each kept
/// value extracted alone, or the window unpacked block by block and the kept ones copied. Both must equal
/// decoding and then filtering, for every width, packed offset, validity, patch and mask density; and a
/// dictionary's per-row lookup of per-value answers (`eddy_lut_u8`, a byte shuffle for tables of up to 16
/// answers) must equal looking each code up.
@Suite struct PackedFilterTests {
    /// The kept rows of `array` decoded first: (valid, value) per kept row.
    static func decodedThenFiltered(_ array: any ArrayNode, _ keep: [Bool], _ ctx: ExecutionCtx) throws -> [Int128?] {
        guard let plain = try ctx.executeUntil(array, .columnar) as? PrimitiveArray else {
            throw EddyError(.typeMismatch, "bit-packed values did not decode to a primitive array")
        }
        let values = plain.int128Values()
        return keep.indices.filter { keep[$0] }.map { plain.validity.isValid($0) ? values[$0] : nil }
    }

    @Test(arguments: [PType.uint8, .uint16, .uint32, .uint64, .int16, .int32, .int64])
    func filteredPackedValuesEqualDecodedThenFiltered(ptype: PType) throws {
        let ctx = Session().makeContext()
        for width in [0, 1, 3, 7, 9, 16, 17, 32] where width <= ptype.byteWidth * 8 {
            for (offset, count) in [(0, 1), (5, 63), (64, 64), (3, 1000), (61, 4099)] {
                for validityOffset in [nil, 5] as [Int?] {
                    for patches in [false, true] {
                        for density in [0.01, 0.13, 0.5, 1.0] {
                            let seed = UInt64(width * 1_000_003 + offset * 1_009 + count * 7 + Int(density * 100))
                            let array = try PackedSumTests.packed(
                                ptype, width: width, offset: offset, count: count, validityOffset: validityOffset,
                                patches: patches, seed: seed)
                            var g = SeededRandom(seed: seed ^ 0x5EED)
                            let keep = (0..<count).map { _ in Double(g.next() % 10_000) / 10_000 < density }
                            let kept = keep.filter { $0 }.count
                            // Masks that start mid-byte and mid-word too (a slice of a longer bitmap).
                            let maskOffset = density == 0.5 ? 3 : density == 0.13 ? 61 : 0
                            let bits = try Bitmap([Bool](repeating: true, count: maskOffset) + keep)
                                .slice(maskOffset, count)
                            let filtered = try ctx.execute(
                                FilterArray(array, mask: BoolArray(bits: bits), count: kept))
                            let got = try Self.decodedThenFiltered(filtered, [Bool](repeating: true, count: kept), ctx)
                            let want = try Self.decodedThenFiltered(array, keep, ctx)
                            #expect(
                                got == want,
                                "\(ptype) width \(width) at \(offset) × \(count), validity \(String(describing: validityOffset)), patches \(patches), density \(density)"
                            )
                        }
                    }
                }
            }
        }
    }

    @Test func dictionaryLookupsEqualPerCodeLookups() throws {
        var g = SeededRandom(seed: 42)
        for tableCount in [2, 3, 10, 16, 17, 40] {
            for n in [1, 63, 64, 65, 1000, 4097] {
                for (outOfRange, single) in [(false, false), (true, false), (false, true), (true, true)] {
                    let answers = (0..<tableCount).map { _ in g.next() % 3 == 0 }
                    // At least two true answers use the lookup table; exactly one, a compare with its code.
                    let only = Int(g.next() % UInt64(tableCount))
                    let lut = BoolArray(
                        answers.enumerated().map { single ? $0.offset == only : $0.offset < 2 || $0.element })
                    var codes = (0..<n).map { _ in UInt8(g.next() % UInt64(tableCount)) }
                    if outOfRange { codes[Int(g.next() % UInt64(n))] = UInt8(tableCount + Int(g.next() % 100)) }
                    let result = DictArray.mapCodes(PrimitiveArray(codes), lut, .bool(.nonNullable))
                    let what = "table of \(tableCount), \(n) codes, out of range: \(outOfRange), one true: \(single)"
                    if outOfRange {
                        #expect(result == nil, "\(what): an out-of-range code must leave it to the checked path")
                        continue
                    }
                    let bools = try #require(result as? BoolArray, "\(what)")
                    let want = codes.map { lut.bits[Int($0)] }
                    #expect((0..<n).map { bools.bits[$0] } == want, "\(what)")
                }
            }
        }
    }

    @Test func validityFiltersEqualPerRowFilters() throws {
        var g = SeededRandom(seed: 7)
        for count in [0, 1, 63, 64, 65, 127, 300, 1000] {
            for offset in [0, 3, 7] {
                for density in [0.0, 0.05, 0.5, 0.97, 1.0] {
                    let bytes = (offset + count + 7) / 8 + 1
                    let raw = Buffer.build(count: bytes, of: UInt8.self) { out in
                        for i in 0..<out.count { out[i] = UInt8(truncatingIfNeeded: g.next()) }
                    }
                    let bits = try Bitmap(buffer: raw, offset: offset, count: count)
                    let keep = (0..<count).map { _ in Double(g.next() % 10_000) / 10_000 < density }
                    let kept = keep.filter { $0 }.count
                    guard case .bitmap(let got) = Validity.bitmap(bits).filter(Bitmap(keep), resultCount: kept) else {
                        Issue.record("a bitmap validity filtered to no bitmap")
                        continue
                    }
                    let want = (0..<count).filter { keep[$0] }.map { bits[$0] }
                    #expect(got.count == kept)
                    #expect((0..<kept).map { got[$0] } == want, "\(count) rows at offset \(offset), density \(density)")
                }
            }
        }
    }

    @Test func aPackedBufferEndingInsideAWordIsHeldInWholeWords() throws {
        let ctx = Session().makeContext()
        // 3 values of 3 bits at position 1: 12 bits, 2 bytes; values 5, 2, 7 (and 1 before them).
        let bits: UInt16 = 1 | (5 << 3) | (2 << 6) | (7 << 9)
        let exact = Buffer.build(count: 2, of: UInt8.self) { out in
            out[0] = UInt8(truncatingIfNeeded: bits)
            out[1] = UInt8(truncatingIfNeeded: bits >> 8)
        }
        let array = try BitPackedArray(
            ptype: .uint8, bitWidth: 3, packed: exact, offset: 1, count: 3, validity: .allValid,
            nullability: .nonNullable)
        #expect(array.packed.byteCount == 8)
        let plain = try #require(try ctx.executeUntil(array, .columnar) as? PrimitiveArray)
        #expect(plain.int128Values() == [5, 2, 7])
        // A buffer of whole words is kept as it is (no copy).
        let words = Buffer.build(count: 1, of: UInt64.self) { $0[0] = UInt64(bits) }
        let kept = try BitPackedArray(
            ptype: .uint8, bitWidth: 3, packed: words, offset: 1, count: 3, validity: .allValid,
            nullability: .nonNullable)
        #expect(kept.packed.baseAddress == words.baseAddress)
    }
}
