import Eddy

/// `sum(column)` over a sparse column — one value in nearly every row, a few rows patched —
/// without expanding it: the fill value counts once per row not patched, and only the patches
/// are added. The engine has no kernel for this key (`eddy kernels` lists none for
/// `eddy.agg.sum ← eddy.sparse`): without this one it decodes every row, then sums.
/// `i64` columns only: other types, and a sum that does not fit 64 bits, decline (nil) to the
/// engine, which then computes the answer (or the overflow error) itself.
public enum PluginTemplate: EddyPlugin {
    public static let name = "plugin-template"
    public static let version = "0.1.0"

    public static func register(into registrar: PluginRegistrar) throws {
        registrar.aggregate(.sum, on: SparseArray.self, name: "sum of fill and patches") { sparse, ctx in
            guard let patches = try ctx.execute(sparse.values) as? PrimitiveArray,
                let values = try? patches.values(Int64.self)
            else { return nil }
            let fillRows = sparse.count - values.count
            guard fillRows >= 0 else { return nil }
            var total: Int64 = 0
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
                let (product, o1) = fill.multipliedReportingOverflow(by: Int64(fillRows))
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
