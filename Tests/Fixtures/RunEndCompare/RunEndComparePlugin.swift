import Eddy

/// `x op constant` over run-end columns, compared once per run and written into the result a run at a
/// time, with exactly the six SDK concepts that the DocC article "Writing a kernel plugin" lists:
/// ``EddyPlugin`` (with `pluginEntry`), ``PluginRegistrar``, ``ExecutionCtx``, ``RunEndArray``
/// (`forEachRun`), ``Compare`` (`evaluate`) and ``BoolArray`` (`value(at:)`, `BoolArray.Builder`).
/// Keep it that way: it is the article's example, checked by `RunEndCompareTests`.
public enum RunEndCompare: EddyPlugin {
    public static let name = "run-end-compare"
    public static let version = "1.0.0"

    public static func register(into registrar: PluginRegistrar) throws {
        registrar.compare(on: RunEndArray.self, name: "compare once per run") { array, op, constant, ctx in
            let perRun = try Compare.evaluate(array.values, op, constant, in: ctx)
            var result = BoolArray.Builder(capacity: array.count)
            try array.forEachRun(ctx) { run, rows in
                try result.append(perRun.value(at: run), count: rows.count)
            }
            return result.finish()
        }
    }
}

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(RunEndCompare.self, request, argument)
}
