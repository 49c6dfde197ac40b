import DeltaEncodingPlugin
@_spi(Host) import Eddy
import EddyHostTestSupport
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
@_spi(Host) import EddyTestSupport
import EddyTesting
import Foundation
import Synchronization
import Testing

@Suite struct IntStringTests {
    func decode(_ a: any ArrayNode) throws -> [String?] {
        try Session().makeContext().execute(a).scalars().map { if case .utf8(let s) = $0.value { s } else { nil } }
    }

    @Test func textAroundNumbersRoundTripsExactlyAndOnlyWhenEveryValueHasTheForm() throws {
        let cases: [([String?], Bool)] = [
            (["T00042", "T99999", "T00000", nil, "T12345"], true),
            (["note 1", "note 999999", "note 0", "note 10"], true),
            (["a7b", "a10b", "a0b"], true),
            (["x01", "x1"], false),  // one padded, one not: no single form
            (["007", "123", "999"], true),
            (["id-5", "id-5x"], false),
            (["1.5", "2.5"], false),  // the number is the last digit run of the first value: prefix "1."
            (["v1.5", "v1.25"], true),
            (["", "1"], false),
            (["18446744073709551615"], false),  // 20 digits
            (["9999999999999999999"], true),
            (["日本42語", "日本7語"], true),
        ]
        for (values, encodes) in cases {
            let column = VarBinArray(values, nullability: .nullable)
            let e = IntStringArray.encode(column)
            #expect((e != nil) == encodes, "\(values)")
            guard let e else { continue }
            let a = try IntStringArray(
                prefix: e.prefix, suffix: e.suffix, width: e.width, numbers: e.numbers, nullability: .nullable)
            let back = try decode(a)
            #expect(back == values, "\(values) came back as \(back)")
            #expect(try a.scalars().map { if case .utf8(let s) = $0.value { s } else { nil } } == values)
        }
    }

    @Test func compareOnNumbersAgreesWithCompareOnText() throws {
        var g = ArrayGenerator(seed: 5)
        let session = Session()
        for round in 0..<200 {
            let width = g.pick([0, 4, 6])
            let n = g.int(1...300)
            var values: [String?] = []
            for _ in 0..<n {
                if g.chance(0.1) { values.append(nil); continue }
                let v = g.int(0...(width == 4 ? 9999 : 120_000))
                let digits =
                    width == 0 ? String(v) : String(repeating: "0", count: max(0, width - String(v).count)) + String(v)
                values.append("K-" + digits + (round % 2 == 0 ? "" : "z"))
            }
            let column = VarBinArray(values, nullability: .nullable)
            guard let e = IntStringArray.encode(column) else { continue }
            let a = try IntStringArray(
                prefix: e.prefix, suffix: e.suffix, width: e.width, numbers: e.numbers, nullability: .nullable)
            let needles = [
                values.compactMap { $0 }.first ?? "K-1", "K-01", "K-", "zzz", "K-5" + (round % 2 == 0 ? "" : "z"),
            ]
            for needle in needles {
                for op in [CompareOperator.eq, .ne] {
                    let viaKernel = try session.makeContext().execute(
                        CompareFunction.make(a, op, ConstantArray(.utf8(needle, .nullable), count: a.count)))
                    let reference = try session.makeContext(options: ExecutionOptions(useKernels: false)).execute(
                        CompareFunction.make(column, op, ConstantArray(.utf8(needle, .nullable), count: a.count)))
                    try expectSameValues(viaKernel, reference, "\(needle) \(op)")
                }
            }
        }
    }

    @Test func aHostileNumberIsAnErrorNotATrap() throws {
        // A file may claim width 2 and hold 12345: decoding must refuse, not write past the text.
        let a = try IntStringArray(
            prefix: [], suffix: [], width: 2, numbers: PrimitiveArray([UInt64(12_345)]), nullability: .nonNullable)
        #expect(throws: EddyError.self) { _ = try Session().makeContext().execute(a) }
        #expect(throws: EddyError.self) { _ = try a.scalar(at: 0) }
        // Text past 2 GiB is refused before anything is allocated.
        let big = try IntStringArray(
            prefix: [UInt8](repeating: 65, count: 60_000), suffix: [], width: 0,
            numbers: ConstantArray(Scalar(.uint(1), .primitive(.uint64, .nonNullable)), count: 1 << 16),
            nullability: .nonNullable)
        #expect(throws: EddyError.self) { _ = try Session().makeContext().execute(big) }
    }
}
