import Eddy

/// `sum(column)` over a sparse column — one value in nearly every row, a few rows patched —
/// without expanding it: the fill value counts once per row not patched, and only the patches
/// are added. The engine has no kernel for this key (`eddy kernels` lists none for
/// `eddy.agg.sum ← eddy.sparse`): without this one it decodes every row, then sums.
/// `i64` columns only: other types, and a sum that does not fit 64 bits, decline (nil) to the
/// engine, which then computes the answer (or the overflow error) itself.
// SDK and Swift types are named with their module: the plugin's own type takes the plugin's name, which
// may be one of theirs (a plugin called int64 or sparse-array).
public enum PluginTemplate: Eddy.EddyPlugin {
    public static let name = "plugin-template"
    public static let version = "0.1.0"

    public static func register(into registrar: Eddy.PluginRegistrar) throws {
        registrar.aggregate(.sum, on: Eddy.SparseArray.self, name: "sum of fill and patches") { sparse, ctx in
            guard let patches = try ctx.execute(sparse.values) as? Eddy.PrimitiveArray,
                let values = try? patches.values(Swift.Int64.self)
            else { return nil }
            let fillRows = sparse.count - values.count
            guard fillRows >= 0 else { return nil }
            var total: Swift.Int64 = 0
            var summed = 0
            // The validity once, not per element: each `patches.validity` is a call into
            // libEddy. Without nulls, a plain loop.
            let validity = patches.validity
            if case .allValid = validity {
                for x in values {
                    let (next, overflow) = total.addingReportingOverflow(x)
                    if overflow { return nil }
                    total = next
                }
                summed = values.count
            } else {
                for (i, x) in values.enumerated() where validity.isValid(i) {
                    let (next, overflow) = total.addingReportingOverflow(x)
                    if overflow { return nil }
                    total = next
                    summed += 1
                }
            }
            if let fill = sparse.fill.int64Value, fillRows > 0 {
                let (product, o1) = fill.multipliedReportingOverflow(by: Swift.Int64(fillRows))
                let (next, o2) = total.addingReportingOverflow(product)
                if o1 || o2 { return nil }
                total = next
                summed += fillRows
            }
            // SQL: the sum of no values (all null, or no rows) is null.
            return summed == 0 ? .null : .int(total)
        }
    }
}
