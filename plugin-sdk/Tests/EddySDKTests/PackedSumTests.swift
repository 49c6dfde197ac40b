import Testing

@testable @_spi(Host) import Eddy

/// A sum over bit-packed values (a frame of reference's child, most integer columns of a `.eddy`
/// file) is summed from the packed words under the validity bitmap
/// (`Encodings/BitPacked/BitPackedArray+Aggregate.swift`): it must equal decoding and summing, for
/// every width, packed offset, validity offset and type; patches and sign bits decode instead.
@Suite struct PackedSumTests {
    /// A bit-packed array of `count` rows at packed position `offset`, its validity a bitmap that
    /// starts `validityOffset` bits into its buffer (nil: all valid), of random words.
    static func packed(
        _ ptype: PType, width: Int, offset: Int, count: Int, validityOffset: Int?, patches: Bool, seed: UInt64
    ) throws -> BitPackedArray {
        var g = SeededRandom(seed: seed)
        let words = ((offset + count) * width + 63) / 64 + 1
        let buffer = Buffer.build(count: words, of: UInt64.self) { out in
            for i in 0..<out.count { out[i] = g.next() }
        }
        var validity = Validity.allValid
        if let validityOffset {
            let bytes = (validityOffset + count + 7) / 8 + 1
            let bits = Buffer.build(count: bytes, of: UInt8.self) { out in
                for i in 0..<out.count { out[i] = UInt8(truncatingIfNeeded: g.next()) | 0x11 }
            }
            validity = .bitmap(try Bitmap(buffer: bits, offset: validityOffset, count: count))
        }
        let patchIndices = patches && count > 2 ? [offset + 1, offset + count - 1] : []
        return try BitPackedArray(
            ptype: ptype, bitWidth: width, packed: buffer, offset: offset, count: count, validity: validity,
            nullability: validityOffset == nil ? .nonNullable : .nullable, patchIndices: patchIndices,
            patchValues: patchIndices.isEmpty ? nil : patchValues(ptype))
    }

    /// Two patch values, 7 and 9, of `ptype`.
    static func patchValues(_ ptype: PType) -> PrimitiveArray {
        switch ptype {
        case .uint8: PrimitiveArray([7, 9] as [UInt8])
        case .uint16: PrimitiveArray([7, 9] as [UInt16])
        case .uint32: PrimitiveArray([7, 9] as [UInt32])
        case .uint64: PrimitiveArray([7, 9] as [UInt64])
        case .int16: PrimitiveArray([7, 9] as [Int16])
        case .int32: PrimitiveArray([7, 9] as [Int32])
        default: PrimitiveArray([7, 9] as [Int64])
        }
    }

    @Test(arguments: [PType.uint8, .uint16, .uint32, .uint64, .int16, .int32, .int64])
    func packedSumsEqualDecodedSums(ptype: PType) throws {
        let ctx = Session().makeContext()
        var fast = 0
        for width in [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32] where width <= ptype.byteWidth * 8 {
            for (offset, count) in [(0, 0), (0, 1), (5, 63), (64, 64), (3, 1000), (61, 4099)] {
                for validityOffset in [nil, 0, 5] as [Int?] {
                    for patches in [false, true] {
                        let seed = UInt64(width * 1_000_003 + offset * 1_009 + count * 7 + (validityOffset ?? 9))
                        let array = try Self.packed(
                            ptype, width: width, offset: offset, count: count, validityOffset: validityOffset,
                            patches: patches, seed: seed)
                        let got = try AggregatePartial.fused(array, ctx, order: false)
                        let want = try AggregatePartial.of(ctx.executeUntil(array, .columnar), order: false)
                        let what =
                            "\(ptype) width \(width) at \(offset) × \(count), validity at \(String(describing: validityOffset)), patches \(patches)"
                        #expect(got.rows == want.rows && got.nonNull == want.nonNull, "\(what)")
                        #expect(got.intSum == want.intSum, "\(what): \(got.intSum) vs \(want.intSum)")
                        if array.sumPartial() != nil { fast += 1 }
                        // A patch in the window, or a packed sign bit, must decode.
                        if patches && count > 2 || ptype.isSignedInteger && width == ptype.byteWidth * 8 {
                            #expect(array.sumPartial() == nil, "\(what)")
                        }
                    }
                }
            }
        }
        #expect(fast > 0, "the packed sum never ran for \(ptype)")
    }

    @Test func aWidthWiderThanItsTypeDecodes() throws {
        // A crafted file: u8 values packed 9 bits wide. Decoding truncates each to 8 bits; a sum of the
        // packed words would not.
        let ctx = Session().makeContext()
        for (ptype, width) in [(PType.uint8, 9), (.uint16, 17), (.int16, 16), (.int8, 8)] {
            let array = try Self.packed(
                ptype, width: width, offset: 3, count: 500, validityOffset: 1, patches: false, seed: 77)
            #expect(array.sumPartial() == nil, "\(ptype) width \(width)")
            let got = try AggregatePartial.fused(array, ctx, order: false)
            let want = try AggregatePartial.of(ctx.executeUntil(array, .columnar), order: false)
            #expect(got.intSum == want.intSum && got.nonNull == want.nonNull, "\(ptype) width \(width)")
        }
    }

    @Test func aFrameOfReferenceThatWrapsDecodesForEveryAggregate() throws {
        // A crafted file: a u8 reference of 250 over values 0...15; decoding wraps 250 + 15 to 9. Every
        // aggregate must be what decoding gives, with min and max asked for or not.
        let ctx = Session().makeContext()
        let packed = try Self.packed(
            .uint8, width: 4, offset: 0, count: 1000, validityOffset: 2, patches: false, seed: 3)
        let column = try FoRArray(reference: Scalar(.uint(250), .primitive(.uint8, .nonNullable)), child: packed)
        for order in [false, true] {
            let got = try AggregatePartial.fused(column, ctx, order: order)
            let want = try AggregatePartial.of(ctx.executeUntil(column, .columnar), order: order)
            #expect(got.intSum == want.intSum && got.nonNull == want.nonNull, "order \(order)")
            if order { #expect(got.min == want.min && got.max == want.max) }
        }
    }

    @Test func aFrameOfReferenceWithNullsSumsItsPackedChild() throws {
        // The race's shape: a nullable i64 column as a frame of reference over u16 packed values.
        let packed = try Self.packed(
            .uint16, width: 9, offset: 0, count: 10_000, validityOffset: 3, patches: false, seed: 1)
        let column = try FoRArray(reference: Scalar(.int(-20), .primitive(.int64, .nonNullable)), child: packed)
        let ctx = Session().makeContext()
        for order in [false, true] {
            let got = try AggregatePartial.fused(column, ctx, order: order)
            let want = try AggregatePartial.of(ctx.executeUntil(column, .columnar), order: order)
            #expect(got.rows == want.rows && got.nonNull == want.nonNull && got.intSum == want.intSum)
            if order { #expect(got.min == want.min && got.max == want.max) }
        }
    }
}
