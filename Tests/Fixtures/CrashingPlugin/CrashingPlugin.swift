import Eddy

/// Fixture: its registration crashes the process (a null pointer write). A host that probes new
/// plugins in a child process must survive it and report the crash.
enum CrashingPlugin: EddyPlugin {
    static let name = "crashing"
    static let version = "0.1.0"

    static func register(into registrar: PluginRegistrar) throws {
        guard !registrar.isDeclaring else { return }
        let p = UnsafeMutablePointer<Int>(bitPattern: 8)!
        p.pointee = 42
    }
}

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(CrashingPlugin.self, request, argument)
}
