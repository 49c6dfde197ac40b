import Eddy

/// Fixture: a plugin that says it was built against SDK ABI 2 (a future SDK). Its registration must
/// never be called.
@_cdecl("eddy_plugin_manifest_v1")
public func eddyPluginManifest() -> UnsafePointer<CChar> {
    let text = "EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=from-the-future\nversion=9.0.0\n"
    let bytes = Array(text.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(p)
}

@_cdecl("eddy_plugin_register_v1")
public func eddyPluginRegister(_ host: UnsafeRawPointer) -> UnsafeMutablePointer<CChar>? {
    fatalError("registration of an ABI-mismatched plugin must never run")
}
