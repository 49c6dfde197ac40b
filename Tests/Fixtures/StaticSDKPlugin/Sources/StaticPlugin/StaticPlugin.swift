import Eddy

enum StaticPlugin: EddyPlugin {
    static var manifest: PluginManifest { PluginManifest(name: "static-sdk", version: "0.1.0") }
    static func register(into registrar: PluginRegistrar) throws {}
}

@_cdecl("eddy_plugin_manifest_v1")
public func eddyPluginManifest() -> UnsafePointer<CChar> { exportManifest(StaticPlugin.self) }

@_cdecl("eddy_plugin_register_v1")
public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    exportRegistration(StaticPlugin.self, host)
}
