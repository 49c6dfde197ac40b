// The plugin's C entry points, in a target of their own so that the kernels can be linked into
// tests (two plugins' entry points in one binary would clash).
import Eddy
import DeltaEncodingPlugin

@_cdecl("eddy_plugin_manifest_v1")
public func eddyPluginManifest() -> UnsafePointer<CChar> { exportManifest(DeltaPlugin.self) }

@_cdecl("eddy_plugin_register_v1")
public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    exportRegistration(DeltaPlugin.self, host)
}
