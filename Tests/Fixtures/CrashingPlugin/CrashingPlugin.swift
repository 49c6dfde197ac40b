import Eddy

/// Fixture: its registration crashes the process (a null pointer write). A host that probes new
/// plugins in a child process must survive it and report the crash.
enum CrashingPlugin: EddyPlugin {
    static var manifest: PluginManifest { PluginManifest(name: "crashing", version: "0.1.0") }

    static func register(into registrar: PluginRegistrar) throws {
        let p = UnsafeMutablePointer<Int>(bitPattern: 8)!
        p.pointee = 42
    }
}

@_cdecl("eddy_plugin_manifest_v1")
public func eddyPluginManifest() -> UnsafePointer<CChar> { exportManifest(CrashingPlugin.self) }

@_cdecl("eddy_plugin_register_v1")
public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    exportRegistration(CrashingPlugin.self, host)
}
