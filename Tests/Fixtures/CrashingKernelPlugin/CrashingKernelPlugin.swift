import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Fixture: registers fine (so the probe passes it), then its kernel for `column > literal`
/// misbehaves according to the literal: 1 writes through a bad pointer, 2 never returns, 3 calls
/// `exit(0)`, 4 allocates without bound; any other literal is declined. Built a second time with
/// `EDDY_FIXED` (the "fixed" release of the same plugin), it declines everything.
enum CrashingKernelPlugin: EddyPlugin {
    static let kernelName = "crash on compare"

    static let name = "crashing-kernel"
    #if EDDY_FIXED
        static let version = "0.1.1"
    #else
        static let version = "0.1.0"
    #endif

    static func register(into registrar: PluginRegistrar) throws {
        registrar.register(kernelName, parent: CompareFunction.id, child: ConstantArray.id) { _, child, _, _ in
            #if !EDDY_FIXED
                let literal: Double? =
                    switch (child as? ConstantArray)?.scalar.value {
                    case .int(let v)?: Double(v)
                    case .float(let v)?: v
                    default: nil
                    }
                switch literal {
                case 1: UnsafeMutablePointer<Int>(bitPattern: 8).map { $0.pointee = 42 }
                case 2: while true { usleep(1_000) }
                case 3: exit(0)
                case 4:
                    var hoard: [[UInt8]] = []
                    while true { hoard.append([UInt8](repeating: 1, count: 64 << 20)) }
                default: break
                }
            #endif
            return nil
        }
    }
}

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(CrashingKernelPlugin.self, request, argument)
}
