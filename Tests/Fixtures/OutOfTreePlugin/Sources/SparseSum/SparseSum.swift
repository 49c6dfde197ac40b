import Eddy

/// `sum` and `count` over a sparse array without expanding it: the fill counts once per row not
/// patched, the patched values are summed on their own.
enum SparseSum: EddyPlugin {
    static var manifest: PluginManifest {
        PluginManifest(name: "sparse-sum", version: "1.0.0", kernels: [
            (parent: "eddy.agg.sum", child: "eddy.sparse", name: "sum of fill and patches"),
            (parent: "eddy.agg.count", child: "eddy.sparse", name: "count of fill and patches"),
        ])
    }

    static func register(into registrar: PluginRegistrar) throws {
        for (kind, name) in [(AggregateFunction.Kind.sum, "sum of fill and patches"),
                             (.count, "count of fill and patches")] {
            registrar.register(name, parent: AggregateFunction(kind).encoding, child: SparseArray.id) { parent, child, _, ctx in
                guard let agg = parent as? AggregateArray, let sparse = child as? SparseArray else { return nil }
                let patches = try ctx.execute(AggregateArray(agg.function, sparse.values)).scalar(at: 0)
                let patchCount = try ctx.execute(AggregateArray(AggregateFunction(.count), sparse.values)).scalar(at: 0)
                let fillRows = Int64(sparse.count - sparse.indices.count)
                let fillValid = !sparse.fill.isNull
                if kind == .count {
                    let n = (patchCount.int64Value ?? 0) + (fillValid ? fillRows : 0)
                    return ConstantArray(Scalar(.int(n), agg.dtype), count: 1)
                }
                // Integer sums only; anything else declines to the built-in path.
                guard case .primitive(let p, _) = sparse.dtype, p.isInteger, let fill = sparse.fill.int64Value ?? (fillValid ? nil : 0)
                else { return nil }
                let (fillSum, o1) = fill.multipliedReportingOverflow(by: fillRows)
                guard !o1 else { return nil }
                if patches.isNull && (!fillValid || fillRows == 0) { return ConstantArray(.null(agg.dtype), count: 1) }
                let patchSum = patches.int64Value ?? 0
                let (total, o2) = patchSum.addingReportingOverflow(fillSum)
                guard !o2 else { return nil }
                return ConstantArray(Scalar(p.isSignedInteger ? .int(total) : .uint(UInt64(total)), agg.dtype), count: 1)
            }
        }
    }
}

@_cdecl("eddy_plugin_manifest_v1")
public func eddyPluginManifest() -> UnsafePointer<CChar> { exportManifest(SparseSum.self) }

@_cdecl("eddy_plugin_register_v1")
public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    exportRegistration(SparseSum.self, host)
}
