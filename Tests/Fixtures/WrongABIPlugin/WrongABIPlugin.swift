import Eddy

/// Fixture: a plugin that says it was built against SDK ABI 99 (a future SDK). Its registration must
/// never be called.
@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard request == 0, let argument else { fatalError("registration of an ABI-mismatched plugin must never run") }
    let text = Array("EDDY-PLUGIN\nabi=99\ncompiler=6.3\nname=from-the-future\nversion=9.0.0\n".utf8) + [0]
    for (i, b) in text.enumerated() { argument.storeBytes(of: b, toByteOffset: i, as: UInt8.self) }
    return 0
}
