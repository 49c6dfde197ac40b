import Eddy

/// `sum` and `count` over a sparse array without expanding it: the fill counts once per row not
/// patched, the patched values are summed on their own.
enum SparseSum: EddyPlugin {
    static let name = "sparse-sum"
    static let version = "1.0.0"

    static func register(into registrar: PluginRegistrar) throws {
        registrar.aggregate(.count, on: SparseArray.self, name: "count of fill and patches") { sparse, ctx in
            let patched = try ctx.execute(AggregateArray(AggregateFunction(.count), sparse.values)).scalar(at: 0)
            let fillRows = Int64(sparse.count - sparse.indices.count)
            return .int((patched.int64Value ?? 0) + (sparse.fill.isNull ? 0 : fillRows))
        }
        registrar.aggregate(.sum, on: SparseArray.self, name: "sum of fill and patches") { sparse, ctx in
            // Signed integer sums only; anything else declines to the built-in path.
            guard case .primitive(let p, _) = sparse.dtype, p.isSignedInteger else { return nil }
            // The patches alone can overflow where the whole column does not (a fill of i64.max beside
            // patches of i64.min): then the engine sums the rows itself.
            guard let patches = try? ctx.execute(AggregateArray(AggregateFunction(.sum), sparse.values)).scalar(at: 0)
            else { return nil }
            let fillRows = Int64(sparse.count - sparse.indices.count)
            let fill = sparse.fill.isNull ? 0 : (sparse.fill.int64Value ?? 0)
            if patches.isNull && (sparse.fill.isNull || fillRows == 0) { return .null }
            let (fillSum, o1) = fill.multipliedReportingOverflow(by: fillRows)
            let (total, o2) = (patches.int64Value ?? 0).addingReportingOverflow(fillSum)
            return o1 || o2 ? nil : .int(total)
        }
    }
}

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(SparseSum.self, request, argument)
}
