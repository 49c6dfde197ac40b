import Eddy

/// Fixture: a kernel for comparisons on canonical numbers that returns one row too few.
enum WrongLengthPlugin: EddyPlugin {
    static let kernelName = "short compare"

    static let name = "wrong-length"
    static let version = "0.1.0"

    static func register(into registrar: PluginRegistrar) throws {
        registrar.register(kernelName, parent: CompareFunction.id, child: ConstantArray.id) { parent, _, _, _ in
            try BoolArray(
                bits: Bitmap(repeating: true, count: max(parent.count - 1, 0)), nullability: parent.dtype.nullability)
        }
    }
}

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(WrongLengthPlugin.self, request, argument)
}
