import Eddy
import PackedDictCompareC

/// Overrides the built-in "compare over dictionary values" for dictionaries whose codes are
/// bit-packed (1 to 7 bits) when exactly one dictionary value matches: it compares the packed codes
/// with that value's code without unpacking them into a buffer, as the built-in does. Registered by
/// a plugin, it is tried before the built-in; on any other input it declines and the built-in runs.
public enum PackedDictComparePlugin: EddyPlugin {
    public static let kernelName = "compare on bit-packed dictionary codes"

    public static let name = "packed-dict-compare"
    public static let version = "1.0.0"

    public static func register(into registrar: PluginRegistrar) throws {
        registrar.compare(on: DictArray.self, name: kernelName) { dict, op, scalar, ctx in
            guard let codes = dict.codes as? BitPackedArray, codes.patchIndices.isEmpty,
                case .allValid = codes.validity,
                codes.bitWidth <= 16
            else { return nil }
            let values = try ctx.execute(dict.values)
            let perValue = try ctx.execute(
                CompareFunction.make(values, op, ConstantArray(scalar, count: values.count)))
            guard let lut = perValue as? BoolArray, case .allValid = lut.validity else { return nil }
            let width = codes.bitWidth
            // The fast case: exactly one value matches, so the result is "code == k", computed on the
            // packed words (PDEP spreads eight codes into bytes, AVX2 compares 32 at a time). In any
            // other case the kernel declines and the built-in runs.
            let matching = (0..<lut.count).filter { lut.bits[$0] }
            guard matching.count == 1, (1...7).contains(width), packedSupported else { return nil }
            let n = codes.count
            let words = (n + 63) / 64
            var maxCode: UInt32 = 0
            let out = Buffer.build(count: words, of: UInt64.self) { dst in
                codes.packed.withUnsafeBufferPointer(as: UInt8.self) { src in
                    maxCode = packed_eq(
                        src.baseAddress, src.count, codes.offset, n, Int32(width),
                        UInt32(matching[0]), dst.baseAddress)
                }
            }
            // A code past the dictionary is an error the checked path reports: decline.
            guard Int(maxCode) < lut.count || n == 0 else { return nil }
            return try BoolArray(bits: Bitmap(buffer: out, offset: 0, count: n))
        }
    }
}

/// Whether this CPU has the instructions of the fast path (checked once).
let packedSupported = packed_eq_supported() != 0
