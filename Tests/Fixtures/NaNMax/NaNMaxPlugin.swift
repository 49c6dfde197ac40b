import Eddy

/// A third party's "fast max" over plain f64 columns, with the bug such a kernel most often has: the
/// fold is `Swift.max`, which never picks a NaN after a number (`max(1.5, .nan)` is 1.5), where the
/// engine orders NaN above every number. On a column without NaN it is right, so a short random check
/// rarely meets the bug; `-D NAN_MAX_FIXED` builds the kernel with the engine's order.
public enum NaNMax: EddyPlugin {
    public static let name = "nan-max"
    public static let version = "0.1.0"

    public static func register(into registrar: PluginRegistrar) throws {
        registrar.aggregate(.max, on: PrimitiveArray.self, name: "f64 max in one pass") { array, _ in
            guard array.ptype == .float64 else { return nil }
            let values = try array.values(Double.self)
            let validity = array.validity
            var best: Double?
            for (i, x) in values.enumerated() where validity.isValid(i) {
                guard let b = best else {
                    best = x
                    continue
                }
                #if NAN_MAX_FIXED
                    if b.isNaN { continue }
                    if x.isNaN || b < x { best = x }
                #else
                    best = Swift.max(b, x)
                #endif
            }
            return best.map { ScalarValue.float($0) } ?? .null
        }
    }
}

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(NaNMax.self, request, argument)
}
