import DeltaEncodingPlugin
// The plugin's C entry points, in a target of their own so that the kernels can be linked into
// tests (two plugins' entry points in one binary would clash).
import Eddy

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(DeltaPlugin.self, request, argument)
}
