import Eddy

/// Fixture: a kernel for comparisons on canonical numbers that returns one row too few.
enum WrongLengthPlugin: EddyPlugin {
    static let kernelName = "short compare"

    static var manifest: PluginManifest {
        PluginManifest(name: "wrong-length", version: "0.1.0",
                       kernels: [(parent: "eddy.compare", child: "eddy.constant", name: kernelName)])
    }

    static func register(into registrar: PluginRegistrar) throws {
        registrar.register(kernelName, parent: CompareFunction.id, child: ConstantArray.id) { parent, _, _, _ in
            BoolArray(bits: Bitmap(repeating: true, count: max(parent.count - 1, 0)), nullability: parent.dtype.nullability)
        }
    }
}

@_cdecl("eddy_plugin_manifest_v1")
public func eddyPluginManifest() -> UnsafePointer<CChar> { exportManifest(WrongLengthPlugin.self) }

@_cdecl("eddy_plugin_register_v1")
public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    exportRegistration(WrongLengthPlugin.self, host)
}
