import Eddy

/// Fixture: registers one kernel, then throws. The host must register none of it.
enum ThrowingPlugin: EddyPlugin {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "configuration file missing: /etc/throwing-plugin.conf" }
    }

    static var manifest: PluginManifest {
        PluginManifest(name: "throwing", version: "0.1.0",
                       kernels: [(parent: "eddy.filter", child: "eddy.primitive", name: "never registered")])
    }

    static func register(into registrar: PluginRegistrar) throws {
        registrar.register("never registered", parent: FilterArray.id, child: PrimitiveArray.id) { _, _, _, _ in nil }
        throw Refused()
    }
}

@_cdecl("eddy_plugin_manifest_v1")
public func eddyPluginManifest() -> UnsafePointer<CChar> { exportManifest(ThrowingPlugin.self) }

@_cdecl("eddy_plugin_register_v1")
public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    exportRegistration(ThrowingPlugin.self, host)
}
