// C entry points of this build of the plugin (same module as its kernels).
import Eddy

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(DeltaV2Plugin.self, request, argument)
}
