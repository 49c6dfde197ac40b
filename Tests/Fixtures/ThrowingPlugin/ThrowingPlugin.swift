import Eddy

/// Fixture: registers one kernel, then throws. The host must register none of it.
enum ThrowingPlugin: EddyPlugin {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "configuration file missing: /etc/throwing-plugin.conf" }
    }

    static let name = "throwing"
    static let version = "0.1.0"

    static func register(into registrar: PluginRegistrar) throws {
        registrar.register("never registered", parent: FilterArray.id, child: PrimitiveArray.id) { _, _, _, _ in nil }
        throw Refused()
    }
}

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(ThrowingPlugin.self, request, argument)
}
