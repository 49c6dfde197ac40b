import Eddy

enum StaticPlugin: EddyPlugin {
    static let name = "static-sdk"
    static let version = "0.1.0"
    static func register(into registrar: PluginRegistrar) throws {}
}

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(StaticPlugin.self, request, argument)
}
