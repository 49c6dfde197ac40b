import Eddy

/// Fixture: registers fine (so the probe passes it), then its kernel writes through a bad pointer
/// the first time it runs. A host must name the plugin and the kernel when it dies of it.
enum CrashingKernelPlugin: EddyPlugin {
    static let kernelName = "crash on compare"

    static var manifest: PluginManifest {
        PluginManifest(name: "crashing-kernel", version: "0.1.0",
                       kernels: [(parent: "eddy.compare", child: "eddy.constant", name: kernelName)])
    }

    static func register(into registrar: PluginRegistrar) throws {
        registrar.register(kernelName, parent: CompareFunction.id, child: ConstantArray.id) { _, _, _, _ in
            UnsafeMutablePointer<Int>(bitPattern: 8).map { $0.pointee = 42 }
            return nil
        }
    }
}

@_cdecl("eddy_plugin_manifest_v1")
public func eddyPluginManifest() -> UnsafePointer<CChar> { exportManifest(CrashingKernelPlugin.self) }

@_cdecl("eddy_plugin_register_v1")
public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    exportRegistration(CrashingKernelPlugin.self, host)
}
