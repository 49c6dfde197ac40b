import Eddy
import PluginTemplate

// The plugin's one exported symbol: the host asks it for the manifest, then to register.
@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(PluginTemplate.self, request, argument)
}
