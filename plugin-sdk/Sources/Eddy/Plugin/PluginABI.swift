/// The binary interface between a host and a plugin `.so`.
///
/// A plugin is a dynamic library that links the SDK's one shared library (`libEddy.so`, never a
/// static copy) and exports one C symbol, ``PluginABI/entrySymbol``, written in one line:
///
/// ```swift
/// @_cdecl("eddy_plugin_entry_v2")
/// public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
///     pluginEntry(MyPlugin.self, request, argument)
/// }
/// ```
///
/// The host calls it twice or three times:
/// - request ``PluginABI/manifestRequest``: `argument` is a host buffer of ``PluginABI/manifestCapacity``
///   bytes; the plugin writes its manifest there as NUL-terminated text (`key=value` lines: the magic,
///   `abi`, `compiler`, `name`, `version`). That code is compiled into the plugin, so the host reads
///   the plugin's ABI version before any Swift type crosses the boundary.
/// - request ``PluginABI/registerRequest``: `argument` is the host's ``PluginRegistrar``; the plugin's
///   ``EddyPlugin/register(into:)`` runs. The host runs it once with a declaring registrar (the
///   manifest's list of kernels, rules, encodings and hooks) and once for real, and checks that the
///   two agree.
///
/// Nothing allocated on one side is freed on the other: the manifest goes into the host's buffer,
/// an error message into the registrar.
public enum PluginABI {
    /// The ABI version of the SDK a plugin was compiled against (inlined into the plugin).
    ///
    /// Raised whenever a change to the SDK would break a plugin built against the previous version
    /// (`.ci/run` compares the public interface with `plugin-sdk/abi/Eddy.abi.json` and fails on a
    /// break that does not raise it).
    @_alwaysEmitIntoClient
    public static var sdkABIVersion: Int { 2 }

    /// The first line of every manifest.
    @_alwaysEmitIntoClient
    public static var magic: String { "EDDY-PLUGIN" }

    /// The one symbol a plugin exports.
    @_alwaysEmitIntoClient
    public static var entrySymbol: String { "eddy_plugin_entry_v2" }

    /// Request: write the manifest text into the buffer `argument`.
    @_alwaysEmitIntoClient
    public static var manifestRequest: Int32 { 0 }

    /// Request: register into the ``PluginRegistrar`` `argument`.
    @_alwaysEmitIntoClient
    public static var registerRequest: Int32 { 1 }

    /// Bytes of the host's manifest buffer, terminating NUL included.
    @_alwaysEmitIntoClient
    public static var manifestCapacity: Int { 4096 }

    /// The compiler a plugin was built with, `MAJOR.MINOR` (inlined, so it is the plugin's compiler,
    /// not the host's). Swift has no stable ABI on Linux across major compiler versions: the host
    /// refuses a plugin whose major version differs from its own.
    @_alwaysEmitIntoClient
    public static var compilerVersion: String {
        #if compiler(>=7.0)
            "7.0"
        #elseif compiler(>=6.4)
            "6.4"
        #elseif compiler(>=6.3)
            "6.3"
        #elseif compiler(>=6.2)
            "6.2"
        #elseif compiler(>=6.1)
            "6.1"
        #else
            "6.0"
        #endif
    }

    /// The ABI version of the SDK the host runs (not inlined: it comes from the loaded library).
    public static let hostABIVersion = 2

    /// The plugin ABI versions this SDK library loads. A minor SDK release keeps the range; a
    /// release that breaks plugins raises both ends.
    public static let supportedPluginABIs: ClosedRange<Int> = 2...2

    /// The compiler this SDK library was built with, `MAJOR.MINOR`.
    public static let hostCompilerVersion: String = compilerVersion

    /// The SDK release, as in the `plugin-sdk` package's documentation.
    public static let sdkVersion = "1.0.0"
}

/// A kernel plugin: a name, a version, and what it registers.
///
/// Registration is the only declaration: the host runs ``register(into:)`` once to learn what the
/// plugin provides (its manifest), once to register it, and refuses a plugin whose two runs differ.
public protocol EddyPlugin {
    /// The plugin's name: unique among the plugins a host loads (a newer file with the same name
    /// replaces the older one). Letters, digits, `-`, `_` and `.`.
    static var name: String { get }
    /// The plugin's version, shown in listings, traces and errors: 1 to 64 letters, digits, `.`, `-`,
    /// `+`, `_` or `~` (it is written in `name@version` lists; a host refuses others).
    static var version: String { get }
    /// Adds the plugin's kernels, rules, encodings and compressor hooks. Throwing leaves the host
    /// unchanged (no registration of the plugin takes effect).
    static func register(into registrar: PluginRegistrar) throws
}

/// The manifest text a plugin hands the host: magic, ABI, compiler, name, version.
@_alwaysEmitIntoClient
public func pluginManifestText<P: EddyPlugin>(_ plugin: P.Type) -> String {
    [
        PluginABI.magic, "abi=\(PluginABI.sdkABIVersion)", "compiler=\(PluginABI.compilerVersion)",
        "name=\(P.name)", "version=\(P.version)",
    ].joined(separator: "\n") + "\n"
}

/// The body of a plugin's entry symbol (see ``PluginABI``): answers the host's requests for plugin `P`.
///
/// - Returns: 0 on success; 1 for an unknown request or a missing argument; 2 when the manifest does
///   not fit the host's buffer; 3 when registration threw (the message is in the registrar).
@_alwaysEmitIntoClient
public func pluginEntry<P: EddyPlugin>(_ plugin: P.Type, _ request: Int32, _ argument: UnsafeMutableRawPointer?)
    -> Int32
{
    guard let argument else { return 1 }
    if request == PluginABI.manifestRequest {
        let bytes = Array(pluginManifestText(P.self).utf8)
        guard bytes.count < PluginABI.manifestCapacity else { return 2 }
        for (i, b) in bytes.enumerated() { argument.storeBytes(of: b, toByteOffset: i, as: UInt8.self) }
        argument.storeBytes(of: 0, toByteOffset: bytes.count, as: UInt8.self)
        return 0
    }
    if request == PluginABI.registerRequest {
        let registrar = Unmanaged<PluginRegistrar>.fromOpaque(argument).takeUnretainedValue()
        do {
            try P.register(into: registrar)
            return 0
        } catch {
            registrar.fail("\(error)")
            return 3
        }
    }
    return 1
}
