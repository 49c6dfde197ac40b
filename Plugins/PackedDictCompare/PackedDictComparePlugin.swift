import Eddy

/// Overrides the built-in "compare over dictionary values" for dictionaries whose codes are
/// bit-packed: it looks each packed code up straight from the packed words, where the built-in
/// first unpacks the codes into a buffer. Registered by a plugin, it is tried before the built-in;
/// on any other input it declines and the built-in runs.
public enum PackedDictComparePlugin: EddyPlugin {
    public static let kernelName = "compare on bit-packed dictionary codes"

    public static var manifest: PluginManifest {
        PluginManifest(name: "packed-dict-compare", version: "1.0.0",
                       kernels: [(parent: "eddy.compare", child: "eddy.dict", name: kernelName)])
    }

    public static func register(into registrar: PluginRegistrar) throws {
        registrar.register(kernelName, parent: CompareFunction.id, child: DictArray.id) { parent, child, slot, ctx in
            guard let dict = child as? DictArray, let codes = dict.codes as? BitPackedArray,
                  codes.patchIndices.isEmpty, case .allValid = codes.validity, codes.bitWidth <= 16,
                  let fn = parent as? ScalarFnArray, let cmp = fn.function as? CompareFunction,
                  let other = fn.arguments[1 - slot] as? ConstantArray
            else { return nil }
            let op = slot == 0 ? cmp.op : cmp.op.swapped
            let values = try ctx.execute(dict.values)
            let perValue = try ctx.execute(
                CompareFunction.make(values, op, ConstantArray(other.scalar, count: values.count)))
            guard let lut = perValue as? BoolArray, case .allValid = lut.validity else { return nil }
            let width = codes.bitWidth
            // One entry per code a width-bit field can hold: bit 0 is the result, bit 1 marks a code
            // past the dictionary, which makes the kernel decline (the checked path reports it).
            let table = (0..<(1 << width)).map { c -> UInt8 in c < lut.count ? (lut.bits[c] ? 1 : 0) : 2 }
            var invalid: UInt8 = 0
            let n = codes.count
            let first = codes.offset
            let packed = codes.packed
            let words = (n + 63) / 64
            // 64 codes at a time: unpack into a small buffer that stays in L1, then look each up.
            // The built-in kernel unpacks every code into one large buffer first and reads it back.
            let out = Buffer.build(count: words, of: UInt64.self) { dst in
                packed.withUnsafeBufferPointer(as: UInt64.self) { src in
                    table.withUnsafeBufferPointer { t in
                        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: 64) { chunk in
                        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { flags in
                            let base = src.baseAddress!
                            for w in 0..<words {
                                let end = min(64, n - w * 64)
                                let row = first + w * 64
                                // A constant width per case lets the compiler unroll the 64 codes of a word.
                                switch width {
                                case 1: end == 64 ? unpack(base, row, 1, 64, chunk) : unpack(base, row, 1, end, chunk)
                                case 2: end == 64 ? unpack(base, row, 2, 64, chunk) : unpack(base, row, 2, end, chunk)
                                case 3: end == 64 ? unpack(base, row, 3, 64, chunk) : unpack(base, row, 3, end, chunk)
                                case 4: end == 64 ? unpack(base, row, 4, 64, chunk) : unpack(base, row, 4, end, chunk)
                                case 5: end == 64 ? unpack(base, row, 5, 64, chunk) : unpack(base, row, 5, end, chunk)
                                case 6: end == 64 ? unpack(base, row, 6, 64, chunk) : unpack(base, row, 6, end, chunk)
                                case 7: end == 64 ? unpack(base, row, 7, 64, chunk) : unpack(base, row, 7, end, chunk)
                                case 8: end == 64 ? unpack(base, row, 8, 64, chunk) : unpack(base, row, 8, end, chunk)
                                default: unpack(base, row, width, end, chunk)
                                }
                                // Look up into bytes, then pack eight 0/1 bytes per multiply.
                                for b in 0..<end { flags[b] = t[Int(chunk[b])] }
                                for b in end..<64 { flags[b] = 0 }
                                var word: UInt64 = 0
                                let raw = UnsafeRawPointer(flags.baseAddress!)
                                for k in 0..<8 {
                                    let x = raw.loadUnaligned(fromByteOffset: k * 8, as: UInt64.self)
                                    invalid |= UInt8(truncatingIfNeeded: (x >> 1) & 0x0101_0101_0101_0101 != 0 ? 2 : 0)
                                    word |= (((x & 0x0101_0101_0101_0101) &* 0x0102_0408_1020_4080) >> 56) << UInt64(k * 8)
                                }
                                dst[w] = word
                            }
                        }
                        }
                    }
                }
            }
            if invalid & 2 != 0 { return nil }
            return BoolArray(bits: Bitmap(buffer: out, offset: 0, count: n), nullability: parent.dtype.nullability)
        }
    }
}

@_cdecl("eddy_plugin_manifest_v1")
public func eddyPluginManifest() -> UnsafePointer<CChar> { exportManifest(PackedDictComparePlugin.self) }

@_cdecl("eddy_plugin_register_v1")
public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    exportRegistration(PackedDictComparePlugin.self, host)
}

/// Unpacks `count` codes of `width` bits starting at code `row` into `chunk`.
@inline(__always)
func unpack(_ base: UnsafePointer<UInt64>, _ row: Int, _ width: Int, _ count: Int,
            _ chunk: UnsafeMutableBufferPointer<UInt16>) {
    let mask: UInt64 = width == 0 ? 0 : (1 << UInt64(width)) &- 1
    for b in 0..<count {
        let bit = (row &+ b) &* width
        let shift = UInt64(bit & 63)
        let lo = base[bit >> 6] >> shift
        let hi = Int(shift) &+ width > 64 ? base[(bit >> 6) &+ 1] << (64 &- shift) : 0
        chunk[b] = UInt16(truncatingIfNeeded: (lo | hi) & mask)
    }
}
