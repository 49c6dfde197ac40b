import Eddy

/// Adds the `ext.delta` encoding: a compressor hook that proposes it for increasing integer columns,
/// and kernels that use monotonicity (compare by binary search, min/max from the ends).
public enum DeltaPlugin: EddyPlugin {
    static let compareKernel = "compare by binary search over sorted deltas"

    /// The tests build this source a second time with `EDDY_DELTA_V2` to get a "rebuilt" plugin.
    #if EDDY_DELTA_V2
    static let version = "2.0.0"
    #else
    static let version = "1.0.0"
    #endif

    public static var manifest: PluginManifest {
        PluginManifest(
            name: "delta", version: version,
            kernels: [
                (parent: "eddy.compare", child: "ext.delta", name: compareKernel),
                (parent: "eddy.agg.min", child: "ext.delta", name: "min of a non-decreasing delta column"),
                (parent: "eddy.agg.max", child: "ext.delta", name: "max of a non-decreasing delta column"),
            ],
            encodings: ["ext.delta"], compressorHooks: ["delta for increasing i64"])
    }

    public static func register(into registrar: PluginRegistrar) throws {
        registrar.register(compareKernel, parent: CompareFunction.id, child: DeltaArray.id) { parent, child, slot, ctx in
            guard let delta = child as? DeltaArray, delta.nonDecreasing, let fn = parent as? ScalarFnArray,
                  let cmp = fn.function as? CompareFunction, let other = fn.arguments[1 - slot] as? ConstantArray,
                  let needle = other.scalar.int64Value
            else { return nil }
            let op = slot == 0 ? cmp.op : cmp.op.swapped
            let values = try ctx.execute(delta) as! PrimitiveArray
            // Sorted values: every operator selects one contiguous range of rows.
            let (lower, upper) = values.withValues(Int64.self) { v -> (Int, Int) in
                func firstIndex(_ pred: (Int64) -> Bool) -> Int {
                    var lo = 0, hi = v.count
                    while lo < hi { let m = (lo + hi) / 2; if pred(v[m]) { hi = m } else { lo = m + 1 } }
                    return lo
                }
                let ge = firstIndex { $0 >= needle }
                let gt = firstIndex { $0 > needle }
                switch op {
                case .eq: return (ge, gt)
                case .lt: return (0, ge)
                case .le: return (0, gt)
                case .gt: return (gt, v.count)
                case .ge: return (ge, v.count)
                case .ne: return (-1, -1)
                }
            }
            let n = delta.count
            let bits: Bitmap
            if op == .ne {
                let (a, b) = values.withValues(Int64.self) { v -> (Int, Int) in
                    var lo = 0, hi = v.count
                    while lo < hi { let m = (lo + hi) / 2; if v[m] >= needle { hi = m } else { lo = m + 1 } }
                    var e = lo
                    while e < v.count && v[e] == needle { e += 1 }
                    return (lo, e)
                }
                bits = Bitmap(count: n) { $0 < a || $0 >= b }
            } else {
                bits = Bitmap(count: n) { $0 >= lower && $0 < upper }
            }
            return BoolArray(bits: bits, nullability: parent.dtype.nullability)
        }
        for (kind, name) in [(AggregateFunction.Kind.min, "min of a non-decreasing delta column"),
                             (.max, "max of a non-decreasing delta column")] {
            registrar.register(name, parent: AggregateFunction(kind).encoding, child: DeltaArray.id) { parent, child, _, ctx in
                guard let delta = child as? DeltaArray, delta.nonDecreasing, delta.count > 0,
                      let agg = parent as? AggregateArray
                else { return nil }
                let v = try ctx.execute(delta) as! PrimitiveArray
                let value = v.withValues(Int64.self) { kind == .min ? $0.first! : $0.last! }
                return ConstantArray(Scalar(.int(value), agg.dtype), count: 1)
            }
        }
        registrar.registerCompressor("delta for increasing i64", applies: { $0.ptype == .int64 }) { column, compressChild in
            guard let p = column as? PrimitiveArray, let d = DeltaArray.encode(p), d.nonDecreasing else { return nil }
            return DeltaArray(base: d.base, deltas: try compressChild(d.deltas), nullability: d.dtype.nullability,
                              nonDecreasing: true)
        }
    }
}
