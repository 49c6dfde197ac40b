import Eddy

/// Overrides the built-in "compare over dictionary values" for dictionaries whose codes are
/// bit-packed: it looks each packed code up straight from the packed words, where the built-in
/// first unpacks the codes into a buffer. Registered by a plugin, it is tried before the built-in;
/// on any other input it declines and the built-in runs.
enum PackedDictComparePlugin: EddyPlugin {
    static let kernelName = "compare on bit-packed dictionary codes"

    static var manifest: PluginManifest {
        PluginManifest(name: "packed-dict-compare", version: "1.0.0",
                       kernels: [(parent: "eddy.compare", child: "eddy.dict", name: kernelName)])
    }

    static func register(into registrar: PluginRegistrar) throws {
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
            let table = (0..<(1 << width)).map { c -> UInt64 in c < lut.count ? (lut.bits[c] ? 1 : 0) : 2 }
            var invalid: UInt64 = 0
            let n = codes.count
            let first = codes.offset
            let packed = codes.packed
            let words = (n + 63) / 64
            let out = Buffer.build(count: words, of: UInt64.self) { dst in
                packed.withUnsafeBufferPointer(as: UInt64.self) { src in
                    table.withUnsafeBufferPointer { t in
                        let mask: UInt64 = width == 0 ? 0 : (1 << UInt64(width)) - 1
                        var i = 0
                        for w in 0..<words {
                            var word: UInt64 = 0
                            let end = min(64, n - i)
                            for b in 0..<end {
                                let bit = (first + i + b) * width
                                let shift = UInt64(bit & 63)
                                var v = width == 0 ? 0 : src[bit >> 6] >> shift
                                if Int(shift) + width > 64 { v |= src[(bit >> 6) + 1] << (64 - shift) }
                                let e = t[Int(v & mask)]
                                invalid |= e
                                word |= (e & 1) << UInt64(b)
                            }
                            dst[w] = word
                            i += 64
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
