import Eddy

/// Adds the `ext.delta` encoding: a compressor hook that proposes it for increasing integer columns,
/// and kernels that use monotonicity (compare by binary search, min/max from the ends).
public enum DeltaPlugin: EddyPlugin {
    static let compareKernel = "compare by binary search over sorted deltas"

    public static let version = "1.0.0"
    public static let name = "delta"

    public static func register(into registrar: PluginRegistrar) throws {
        registrar.encoding(DeltaArray.self)
        registerStorage(into: registrar)
        registerKernels(into: registrar)
    }

    /// The compare and min/max kernels and the compressor hook.
    static func registerKernels(into registrar: PluginRegistrar) {
        registrar.compare(on: DeltaArray.self, name: compareKernel) { delta, op, scalar, ctx in
            guard delta.nonDecreasing, let needle = scalar.int64Value,
                let values = try ctx.execute(delta) as? PrimitiveArray, values.ptype == .int64
            else { return nil }
            // Sorted values: every operator but != selects one contiguous range of rows, != its complement.
            let (ge, gt) = try values.withValues(Int64.self) { v -> (Int, Int) in
                func firstIndex(_ pred: (Int64) -> Bool) -> Int {
                    var lo = 0, hi = v.count
                    while lo < hi {
                        let m = lo + (hi - lo) / 2
                        if pred(v[m]) { hi = m } else { lo = m + 1 }
                    }
                    return lo
                }
                return (firstIndex { $0 >= needle }, firstIndex { $0 > needle })
            }
            let n = delta.count
            let (lower, upper): (Int, Int)
            switch op {
            case .eq, .ne: (lower, upper) = (ge, gt)
            case .lt: (lower, upper) = (0, ge)
            case .le: (lower, upper) = (0, gt)
            case .gt: (lower, upper) = (gt, n)
            case .ge: (lower, upper) = (ge, n)
            }
            let inside = op != .ne
            return try BoolArray(bits: Bitmap(count: n) { ($0 >= lower && $0 < upper) == inside })
        }
        for (kind, name) in [
            (AggregateFunction.Kind.min, "min of a non-decreasing delta column"),
            (.max, "max of a non-decreasing delta column"),
        ] {
            registrar.aggregate(kind, on: DeltaArray.self, name: name) { delta, ctx in
                guard delta.nonDecreasing, delta.count > 0, let v = try ctx.execute(delta) as? PrimitiveArray,
                    v.ptype == .int64
                else { return nil }
                let value = try v.withValues(Int64.self) { kind == .min ? $0.first : $0.last }
                return value.map { .int($0) }
            }
        }
        // For storage only: the kernels decode the deltas before they search, so encoding a column that one
        // query reads once would cost a pass and save none (the compressor never asks it then).
        registrar.registerCompressor(
            "delta for increasing i64", purpose: .storage, applies: { $0.ptype == .int64 }
        ) { column, compressChild in
            guard let p = column as? PrimitiveArray, let d = DeltaArray.encode(p), d.nonDecreasing else { return nil }
            return DeltaArray(
                base: d.base, deltas: try compressChild(d.deltas), nullability: d.dtype.nullability,
                nonDecreasing: true)
        }
    }

    /// How `ext.delta` nodes are stored in `.eddy` files: the base and the monotonicity flag as metadata,
    /// the deltas as the node's one child (the format stores it with its own encoding).
    ///
    /// Version 1 metadata is `base` (i64) then `nonDecreasing` (bool).
    static func registerStorage(into registrar: PluginRegistrar) {
        registrar.storage(
            for: DeltaArray.self, metadataVersion: 1,
            write: { delta in
                var m = MetadataWriter()
                m.i64(delta.base)
                m.bool(delta.nonDecreasing)
                return StoredParts(metadata: m.bytes, children: [delta.deltas])
            },
            read: { stored in
                try stored.expect(buffers: 0, children: 1)
                var m = stored.metadataReader
                let base = try m.i64()
                let nonDecreasing = try m.bool()
                try m.finish()
                return try array(stored, base: base, nonDecreasing: nonDecreasing)
            })
    }

    /// The array a stored node holds, once its metadata is read: the deltas are its one child.
    static func array(_ stored: StoredNode, base: Int64, nonDecreasing: Bool) throws -> DeltaArray {
        let deltas = try stored.child(0)
        guard deltas.dtype.ptype == .int64, !deltas.dtype.isNullable else {
            throw EddyError(.typeMismatch, "ext.delta deltas must be non-nullable i64, found \(deltas.dtype)")
        }
        // The file's flag is a claim the kernels rely on (binary search): hold it to the data when
        // the deltas are plain. Encoded deltas are not decoded here; a false claim there makes the
        // search answer wrongly for that file, it cannot make it read out of bounds.
        if nonDecreasing, let plain = deltas as? PrimitiveArray {
            let bad = try plain.withValues(Int64.self) { v in v.dropFirst().contains { $0 < 0 } }
            if bad {
                throw EddyError(.invalidArgument, "ext.delta claims non-decreasing but has a negative delta")
            }
        }
        return DeltaArray(
            base: base, deltas: deltas, nullability: stored.dtype.nullability, nonDecreasing: nonDecreasing)
    }
}
