@_spi(Host) import Eddy
@_spi(Host) import EddyTestSupport
import Testing

/// One encoded array and the plain values it must decode to.
struct EncodedCase: CustomTestStringConvertible, Sendable {
    let name: String
    let make: @Sendable () throws -> (encoded: any ArrayNode, expected: [ScalarValue])
    var testDescription: String { name }

    static let all: [EncodedCase] = [
        EncodedCase(name: "null") { (NullArray(count: 3), [.null, .null, .null]) },
        EncodedCase(name: "bool with nulls") {
            (BoolArray([true, nil, false, true]), [.bool(true), .null, .bool(false), .bool(true)])
        },
        EncodedCase(name: "primitive i32") { (PrimitiveArray([Int32(5), -7, 0]), [.int(5), .int(-7), .int(0)]) },
        EncodedCase(name: "primitive f64 with nulls") {
            (PrimitiveArray([1.5, nil, -2.25]), [.float(1.5), .null, .float(-2.25)])
        },
        EncodedCase(name: "utf8 with unicode and nulls") {
            (VarBinArray(["Zürich", nil, "", "日本"]), [.utf8("Zürich"), .null, .utf8(""), .utf8("日本")])
        },
        EncodedCase(name: "struct") {
            let s = try StructArray(
                names: ["a", "b"], fields: [PrimitiveArray([Int64(1), 2]), VarBinArray(["x", "y"])],
                count: 2, validity: .bitmap(Bitmap([true, false])), nullability: .nullable)
            return (s, [.struct([.int(1), .utf8("x")]), .null])
        },
        EncodedCase(name: "constant") { (ConstantArray(.utf8("k"), count: 3), [.utf8("k"), .utf8("k"), .utf8("k")]) },
        EncodedCase(name: "constant null") {
            (ConstantArray(.null(.primitive(.int16, .nullable)), count: 2), [.null, .null])
        },
        EncodedCase(name: "dictionary with null code") {
            let d = try DictArray(codes: PrimitiveArray([UInt8(1), nil, 0, 1]), values: VarBinArray(["a", "b"]))
            return (d, [.utf8("b"), .null, .utf8("a"), .utf8("b")])
        },
        EncodedCase(name: "run-end") {
            let r = try RunEndArray(
                ends: PrimitiveArray([UInt32(2), 3, 6]), values: PrimitiveArray([Int64(7), -1, 9]))
            return (r, [.int(7), .int(7), .int(-1), .int(9), .int(9), .int(9)])
        },
        EncodedCase(name: "run-end with offset") {
            let r = try RunEndArray(
                ends: PrimitiveArray([UInt32(2), 3, 6]), values: PrimitiveArray([Int64(7), -1, 9]),
                offset: 1, count: 4)
            return (r, [.int(7), .int(-1), .int(9), .int(9)])
        },
        EncodedCase(name: "frame-of-reference") {
            let f = try FoRArray.encode(PrimitiveArray([Int64(1_000_003), 1_000_000, nil, 1_000_255]))
            return (f, [.int(1_000_003), .int(1_000_000), .null, .int(1_000_255)])
        },
        EncodedCase(name: "bit-packed with patches") {
            let b = try BitPackedArray.encode(PrimitiveArray([Int32(3), 1, 900, -4, 7, nil]), bitWidth: 3)
            return (b, [.int(3), .int(1), .int(900), .int(-4), .int(7), .null])
        },
        EncodedCase(name: "bit-packed u64 width 64") {
            let b = try BitPackedArray.encode(PrimitiveArray([UInt64.max, 0, 5]), bitWidth: 64)
            return (b, [.uint(UInt64.max), .uint(0), .uint(5)])
        },
        EncodedCase(name: "sparse") {
            let s = try SparseArray(
                fill: .int64(0), indices: PrimitiveArray([UInt32(1), 4]),
                values: PrimitiveArray([Int64(5), 6]), count: 5)
            return (s, [.int(0), .int(5), .int(0), .int(0), .int(6)])
        },
        EncodedCase(name: "chunked with an empty chunk") {
            let c = try ChunkedArray(
                chunks: [
                    PrimitiveArray([Int16(1), 2]), PrimitiveArray([Int16]()),
                    PrimitiveArray([Int16(3)]),
                ], dtype: .primitive(.int16, .nonNullable))
            return (c, [.int(1), .int(2), .int(3)])
        },
        EncodedCase(name: "slice of dictionary") {
            let d = try DictArray(codes: PrimitiveArray([UInt8(0), 1, 1, 0]), values: PrimitiveArray([1.0, 2.0]))
            return (try SliceArray(d, start: 1, length: 2), [.float(2), .float(2)])
        },
        EncodedCase(name: "filter") {
            let f = try FilterArray(PrimitiveArray([Int64(1), 2, 3]), mask: BoolArray([true, nil, true]))
            return (f, [.int(1), .int(3)])
        },
        EncodedCase(name: "take with null index") {
            let t = try TakeArray(VarBinArray(["a", "b", "c"]), indices: PrimitiveArray([Int32(2), nil, 0]))
            return (t, [.utf8("c"), .null, .utf8("a")])
        },
        EncodedCase(name: "compare node") {
            let c = try CompareFunction.make(PrimitiveArray([Int64(1), 5, 3]), .ge, ConstantArray(.int64(3), count: 3))
            return (c, [.bool(false), .bool(true), .bool(true)])
        },
    ]
}

@Suite struct EncodingTests {
    @Test(arguments: EncodedCase.all)
    func decodesToCanonical(_ c: EncodedCase) throws {
        let (encoded, expected) = try c.make()
        let session = Session()
        for options in [ExecutionOptions(), ExecutionOptions(useKernels: false)] {
            let canonical = try session.makeContext(options: options).execute(encoded)
            #expect(canonical.isCanonical)
            #expect(canonical.dtype == encoded.dtype)
            #expect(try values(canonical).elementsEqual(expected) { $0.isIdentical(to: $1) })
        }
    }

    @Test(arguments: EncodedCase.all)
    func elementAccessMatches(_ c: EncodedCase) throws {
        let (encoded, expected) = try c.make()
        #expect(encoded.count == expected.count)
        #expect(try values(encoded).elementsEqual(expected) { $0.isIdentical(to: $1) })
        #expect(throws: EddyError.self) { try encoded.scalar(at: encoded.count) }
    }

    @Test(arguments: EncodedCase.all)
    func slicesAtBoundaries(_ c: EncodedCase) throws {
        let (encoded, expected) = try c.make()
        let n = expected.count
        let session = Session()
        let ranges = [(0, 0), (0, n), (n, 0), (0, 1), (n - 1, 1), (1, max(n - 2, 0))].filter {
            $0.0 >= 0 && $0.0 + $0.1 <= n
        }
        for (start, length) in ranges {
            let sliced = try SliceArray(encoded, start: start, length: length)
            let (fast, slow) = try executeBothWays(sliced, session: session)
            let want = Array(expected[start..<(start + length)])
            #expect(try values(fast).elementsEqual(want) { $0.isIdentical(to: $1) }, "slice \(start)+\(length)")
            #expect(try values(slow).elementsEqual(want) { $0.isIdentical(to: $1) }, "slice \(start)+\(length)")
            #expect(fast.dtype == encoded.dtype)
        }
        #expect(throws: EddyError.self) { try SliceArray(encoded, start: 0, length: n + 1) }
    }

    /// Unpacking streams whole blocks of 64 values; every width, window start and length (heads and
    /// tails around the blocks, values that straddle words, patches) decodes as element access reads.
    @Test func bitPackedWindowsDecodeAtEveryWidth() throws {
        let ctx = Session().makeContext()
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for width in 0...64 {
            let limit: UInt64 = width == 64 ? .max : (1 << UInt64(width)) - 1
            let values: [UInt64?] = (0..<700).map { i in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                if i % 97 == 5 { return nil }
                // A few values past the width become patches (not for 64 bits, where every value fits).
                return i % 89 == 3 && width < 64 ? limit &+ 1 &+ (state >> 40) : state & limit
            }
            let packed = try BitPackedArray.encode(PrimitiveArray(values), bitWidth: width)
            // Decoding a window agrees with element access; under a frame of reference without
            // patches it is unpacked and shifted in one pass.
            func checkDecode(_ packed: BitPackedArray, _ window: BitPackedArray, reference: Scalar, _ label: String)
                throws
            {
                let decoded = try ctx.execute(window)
                for i in 0..<window.count {
                    #expect(try decoded.scalar(at: i) == window.scalar(at: i), "\(label), value \(i)")
                }
                guard packed.patchIndices.isEmpty else { return }
                let shifted = try ctx.execute(FoRArray(reference: reference, child: window))
                let viaPlain = try ctx.execute(FoRArray(reference: reference, child: decoded))
                for i in 0..<window.count {
                    #expect(try shifted.scalar(at: i) == viaPlain.scalar(at: i), "reference: \(label), value \(i)")
                }
            }
            // Narrower value types unpack whole blocks through scratch and narrow them.
            if width <= 16 {
                let narrow = try BitPackedArray.encode(
                    PrimitiveArray(values.map { $0.map { UInt16(truncatingIfNeeded: $0) } }), bitWidth: width)
                for (start, length) in [(0, 700), (63, 130), (65, 500)] {
                    try checkDecode(
                        narrow, try narrow.slice(start, length), reference: .native(UInt16(7)),
                        "u16: width \(width), window \(start)+\(length)")
                }
            }
            for (start, length) in [
                (0, 700), (1, 600), (63, 130), (64, 64), (65, 500), (130, 0), (191, 200), (640, 60),
            ] {
                let window = try packed.slice(start, length)
                try checkDecode(
                    packed, window, reference: .int64(-1_000_003), "width \(width), window \(start)+\(length)")
                // Comparing with a constant unpacks blocks into scratch and compares 64 at a time.
                let plain = try ctx.execute(window)
                for (op, needle) in [
                    (CompareOperator.lt, limit / 2), (.le, limit / 3), (.gt, limit / 5), (.ge, 1), (.eq, 0), (.ne, 1),
                ] {
                    let constant = ConstantArray(.native(needle), count: length)
                    let packedResult = try ctx.execute(ScalarFnArray(CompareFunction(op), [window, constant]))
                    let plainResult = try ctx.execute(ScalarFnArray(CompareFunction(op), [plain, constant]))
                    for i in 0..<length {
                        #expect(
                            try packedResult.scalar(at: i) == plainResult.scalar(at: i),
                            "\(op): width \(width), window \(start)+\(length), value \(i)")
                    }
                }
                // Filtering gathers the kept values straight from the packed words.
                let keep = (0..<length).map { i in (i &* 2_654_435_761 &+ width) % 3 == 0 }
                let kept = keep.indices.filter { keep[$0] }
                let filtered = try ctx.execute(
                    FilterArray(window, mask: BoolArray(keep), count: kept.count))
                for (k, i) in kept.enumerated() {
                    #expect(
                        try filtered.scalar(at: k) == window.scalar(at: i),
                        "filter: width \(width), window \(start)+\(length), value \(i)")
                }
            }
        }
    }

    /// A small bool array taken by many indices (a dictionary of bools under its codes) is read from a
    /// byte table a word at a time: the same bits, validity and errors as element by element.
    @Test func boolTakesFromASmallTableAgreeWithElementAccess() throws {
        var state: UInt64 = 7
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for n in [1, 2, 10, 300] {
            let values = BoolArray((0..<n).map { _ in next() % 5 == 0 ? nil : next() % 2 == 0 })
            for m in [n, 63, 64, 65, 1000] where m >= n {
                let codes = (0..<m).map { _ in UInt16(next() % UInt64(n)) }
                let taken = try Canonical.take(values, indices: PrimitiveArray(codes))
                #expect(taken.count == m)
                for k in 0..<m {
                    #expect(try taken.scalar(at: k) == values.scalar(at: Int(codes[k])), "n \(n), m \(m), row \(k)")
                }
            }
            // Many UInt8 codes: read through a table over every byte, a word at a time.
            let many = (0..<5_000).map { _ in UInt8(next() % UInt64(Swift.min(n, 256))) }
            let byCode = try Canonical.take(values, indices: PrimitiveArray(many))
            for k in 0..<many.count {
                #expect(try byCode.scalar(at: k) == values.scalar(at: Int(many[k])), "u8: n \(n), row \(k)")
            }
            if n < 256 {
                var past = many
                past[4_321] = UInt8(n)
                do {
                    _ = try Canonical.take(values, indices: PrimitiveArray(past))
                    Issue.record("n \(n): a code past the table was taken")
                } catch let e as EddyError {
                    #expect(e.code == .outOfBounds && e.message.contains("position 4321"), "\(e)")
                }
            }
            // An index past the table, or negative, is an error naming it.
            var bad = (0..<100).map { _ in Int64(next() % UInt64(n)) }
            bad[70] = Int64(n)
            #expect(throws: EddyError.self) { try Canonical.take(values, indices: PrimitiveArray(bad)) }
            bad[70] = -1
            #expect(throws: EddyError.self) { try Canonical.take(values, indices: PrimitiveArray(bad)) }
        }
    }

    /// Min and max of text are compared in place, bytewise: the same partial as adding every value.
    @Test func textPartialsCompareInPlaceAsValuesDo() throws {
        var state: UInt64 = 99
        let pieces = ["", "a", "b", "ab", "é", "e\u{301}", "日本", "\u{0}", "zz", "A"]
        for n in [0, 1, 2, 50, 500] {
            let values: [String?] = (0..<n).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                if state >> 60 == 0 { return nil }
                return (0..<Int(state >> 33 % 4)).map { k in pieces[Int((state >> (8 * UInt64(k))) % 10)] }.joined()
            }
            let text = VarBinArray(values)
            var expected = AggregatePartial()
            for i in 0..<text.count { expected.add(try text.scalar(at: i).value) }
            let got = try AggregatePartial.of(text)
            #expect(got.rows == expected.rows && got.nonNull == expected.nonNull, "\(n)")
            #expect(got.min == expected.min && got.max == expected.max, "\(n): \(got.min) \(got.max)")
        }
    }

    @Test func emptyArraysExecute() throws {
        let session = Session()
        let empties: [any ArrayNode] = [
            PrimitiveArray([Int64]()), BoolArray([Bool]()), VarBinArray([String]()), NullArray(count: 0),
            try DictArray(codes: PrimitiveArray([UInt8]()), values: VarBinArray(["a"])),
            try ChunkedArray(chunks: [], dtype: .utf8(.nonNullable)),
            try BitPackedArray.encode(PrimitiveArray([UInt32]()), bitWidth: 5),
            try FilterArray(PrimitiveArray([Int8(1)]), mask: BoolArray([false])),
        ]
        for e in empties {
            let (fast, slow) = try executeBothWays(e, session: session)
            #expect(fast.count == 0 && slow.count == 0 && fast.isCanonical)
        }
    }

    @Test func invalidConstructionIsRefused() {
        #expect(throws: EddyError.self) { try DictArray(codes: VarBinArray(["x"]), values: VarBinArray(["a"])) }
        #expect(throws: EddyError.self) {
            try RunEndArray(ends: PrimitiveArray([UInt32(3), 2]), values: PrimitiveArray([Int8(1), 2]))
        }
        #expect(throws: EddyError.self) {
            try SparseArray(
                fill: .int64(0), indices: PrimitiveArray([UInt32(5)]), values: PrimitiveArray([Int64(1)]), count: 3)
        }
        #expect(throws: EddyError.self) {
            try ChunkedArray(chunks: [PrimitiveArray([Int8(1)])], dtype: .primitive(.int16, .nonNullable))
        }
        #expect(throws: EddyError.self) { try FilterArray(PrimitiveArray([Int8(1)]), mask: BoolArray([true, false])) }
        #expect(throws: EddyError.self) { try CompareFunction.make(PrimitiveArray([Int8(1)]), .eq, VarBinArray(["a"])) }
    }

    @Test func takeOutOfBoundsIsAnError() throws {
        let session = Session()
        for useKernels in [true, false] {
            let ctx = session.makeContext(options: ExecutionOptions(useKernels: useKernels))
            let t = try TakeArray(PrimitiveArray([Int64(1), 2]), indices: PrimitiveArray([Int32(0), 2]))
            #expect(throws: EddyError.self) { try ctx.execute(t) }
            let d = try DictArray(codes: PrimitiveArray([UInt8(0), 1]), values: VarBinArray(["a", "b"]))
            #expect(throws: EddyError.self) { try ctx.execute(TakeArray(d, indices: PrimitiveArray([Int64(-1)]))) }
        }
    }

    @Test func kleeneLogic() throws {
        let a = BoolArray([true, true, true, false, false, false, nil, nil, nil])
        let b = BoolArray([true, false, nil, true, false, nil, true, false, nil])
        let ctx = Session().makeContext()
        let and = try ctx.execute(BooleanFunction.and(a, b))
        let or = try ctx.execute(BooleanFunction.or(a, b))
        let not = try ctx.execute(NotFunction.make(a))
        let isNull = try ctx.execute(IsNullFunction.make(b))
        func v(_ x: Bool?) -> ScalarValue { x.map { .bool($0) } ?? .null }
        #expect(
            try values(and)
                == [v(true), v(false), nil, v(false), v(false), v(false), nil, v(false), nil].map { $0 ?? .null })
        #expect(
            try values(or)
                == [v(true), v(true), v(true), v(true), v(false), nil, v(true), nil, nil].map { $0 ?? .null })
        #expect(
            try values(not)
                == [v(false), v(false), v(false), v(true), v(true), v(true), nil, nil, nil].map { $0 ?? .null })
        #expect(try values(isNull) == [false, false, true, false, false, true, false, false, true].map { .bool($0) })
    }
}
