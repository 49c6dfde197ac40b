#if canImport(Glibc)
import Glibc
#endif
import Crypto
public import Eddy
import Synchronization

/// One row of a scan report: what happened to one file.
public struct PluginReportRow: Sendable, Equatable {
    public enum Status: String, Sendable { case loaded, skipped, rejected, replaced }

    public var file: String
    public var status: Status
    /// Why it was skipped or rejected (the check that failed, what was expected and found).
    public var reason: String
    public var plugin: String
    public var version: String
    public var kernels: Int
    public var contentHash: String
    public var loadMilliseconds: Double

    /// The row as a JSON object.
    public var json: String {
        func q(_ s: String) -> String {
            "\"" + s.unicodeScalars.map { u -> String in
                switch u {
                case "\"": return "\\\""
                case "\\": return "\\\\"
                case "\n": return "\\n"
                default: return u.value < 0x20 ? "\\u00" + (u.value < 16 ? "0" : "") + String(u.value, radix: 16) : String(u)
                }
            }.joined() + "\""
        }
        return "{\"file\": \(q(file)), \"status\": \(q(status.rawValue)), \"reason\": \(q(reason)), "
            + "\"plugin\": \(q(plugin)), \"version\": \(q(version)), \"kernels\": \(kernels), "
            + "\"content_hash\": \(q(contentHash)), \"load_ms\": \((loadMilliseconds * 100).rounded() / 100)}"
    }
}

/// A plugin whose kernels are (or were) in the registry.
public struct LoadedPlugin: Sendable {
    public var name: String
    public var version: String
    public var file: String
    public var contentHash: String
    public var shadowPath: String
    public var kernelCount: Int
}

/// Loads kernel plugins into a session, checking each file before any of its code runs.
///
/// For each file, in order: a regular file; an ELF shared object for this machine with its program
/// headers and loadable segments inside the file; the two entry points among its dynamic symbols
/// (else "not an Eddy plugin"); no copy of the SDK of its own; then a private copy named by content
/// hash is `dlopen`ed (`RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE`, never closed), the manifest handshake
/// is checked field by field, and registration commits all of the plugin's kernels or none.
public final class PluginHost: Sendable {
    public let session: Session
    /// Where private copies of plugin files are written before `dlopen`.
    public let shadowDirectory: String

    private struct State {
        var plugins: [String: LoadedPlugin] = [:]
        /// Images mapped by `dlopen`; never unmapped (Swift metadata in them must stay valid).
        var retainedImages = 0
        var handles: [String: UnsafeMutableRawPointer] = [:]
    }
    private let state = Mutex(UnsafeSendable(State()))

    /// Loads a new plugin file in a separate process first (see ``PluginProbe``); nil loads directly.
    public let probe: PluginProbe?

    public init(session: Session, shadowDirectory: String? = nil, probe: PluginProbe? = nil) {
        self.session = session
        self.probe = probe
        let env = getenv("EDDY_SHADOW_DIR").map { String(cString: $0) }
        let tmp = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        self.shadowDirectory = shadowDirectory ?? env ?? "\(tmp)/eddy-plugins-\(getuid())"
        mkdir(self.shadowDirectory, 0o700)
    }

    /// Plugins currently registered, by name.
    public var plugins: [LoadedPlugin] { state.withLock { Array($0.value.plugins.values).sorted { $0.name < $1.name } } }

    /// Number of plugin images mapped into the process (they are never unmapped).
    public var retainedImages: Int { state.withLock { $0.value.retainedImages } }

    /// The default plugin directory: `$EDDY_PLUGIN_DIR`, else `./plugins`.
    public static var defaultDirectory: String {
        getenv("EDDY_PLUGIN_DIR").map { String(cString: $0) } ?? "plugins"
    }

    /// Loads every `*.so` in `directory` (not recursive; hidden and temporary files ignored), in name order.
    public func scan(_ directory: String) -> [PluginReportRow] {
        guard let dir = opendir(directory) else {
            return [row(directory, .rejected, "cannot open plugin directory: \(String(cString: strerror(errno)))")]
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if Self.isCandidate(name) { names.append(name) }
        }
        closedir(dir)
        return names.sorted().map { load(directory + "/" + $0) }
    }

    /// Whether a directory entry is considered: `*.so`, not hidden, not an editor or partial file.
    public static func isCandidate(_ name: String) -> Bool {
        name.hasSuffix(".so") && !name.hasPrefix(".") && !name.hasPrefix("~") && !name.hasPrefix("#")
    }

    func row(_ file: String, _ status: PluginReportRow.Status, _ reason: String, plugin: String = "",
             version: String = "", kernels: Int = 0, hash: String = "", ms: Double = 0) -> PluginReportRow {
        PluginReportRow(file: file, status: status, reason: reason, plugin: plugin, version: version, kernels: kernels,
                        contentHash: hash, loadMilliseconds: ms)
    }

    /// Checks and loads one file. The host keeps running whatever the file holds.
    public func load(_ path: String) -> PluginReportRow {
        let started = Self.now()
        func elapsed() -> Double { (Self.now() - started) * 1000 }
        var st = stat()
        guard stat(path, &st) == 0 else { return row(path, .rejected, "cannot read: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return row(path, .rejected, "not a regular file") }
        guard let bytes = Self.readFile(path) else {
            return row(path, .rejected, "cannot read: \(String(cString: strerror(errno)))")
        }
        let facts: ELFFacts
        do {
            facts = try ELFInspector.inspect(bytes)
        } catch let f as ELFInspector.Failure {
            return row(path, .rejected, "\(f.check) check failed: expected \(f.expected), found \(f.found)", ms: elapsed())
        } catch {
            return row(path, .rejected, "\(error)", ms: elapsed())
        }
        let manifestSymbol = PluginABI.manifestSymbol
        let registerSymbol = PluginABI.registerSymbol
        let missing = [manifestSymbol, registerSymbol].filter { !facts.definedSymbols.contains($0) }
        if !missing.isEmpty {
            return row(path, .skipped, "not an Eddy plugin: no \(missing.joined(separator: " or ")) symbol", ms: elapsed())
        }
        let ownSDK = facts.definedSymbols.filter { $0.hasPrefix("$s4Eddy") }
        if !ownSDK.isEmpty {
            return row(path, .rejected,
                       "carries its own copy of the Eddy SDK (defines \(ownSDK.count) symbols of module Eddy, e.g. "
                           + "\(ownSDK.sorted().first!)); link the SDK's shared library libEddy.so instead", ms: elapsed())
        }
        guard facts.neededLibraries.contains("libEddy.so") else {
            return row(path, .rejected,
                       "does not link libEddy.so (needs: \(facts.neededLibraries.joined(separator: ", ")))", ms: elapsed())
        }
        let hash = SHA256.hash(data: bytes).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let short = String(hash.prefix(16))
        if let same = plugins.first(where: { $0.contentHash == hash }) {
            let fileName = Self.baseName(path)
            if Self.baseName(same.file) != fileName {
                return row(path, .skipped, "same plugin as \(same.file) (already loaded; loaded once)",
                           plugin: same.name, version: same.version, hash: short, ms: elapsed())
            }
            return row(path, .loaded, "unchanged", plugin: same.name, version: same.version, kernels: same.kernelCount,
                       hash: short, ms: elapsed())
        }
        // The bytes checked above are the bytes loaded: write them to a private path named by content.
        let shadow = shadowDirectory + "/" + Self.baseName(path).dropLast(3) + "-" + short + ".so"
        if !Self.writeFile(shadow, bytes) {
            return row(path, .rejected, "cannot write private copy \(shadow): \(String(cString: strerror(errno)))",
                       hash: short, ms: elapsed())
        }
        // A plugin that crashes while loading or registering must not take this process with it:
        // the first load of each content hash happens in a child process.
        let alreadyMapped = state.withLock { $0.value.handles[hash] != nil }
        if let probe, !alreadyMapped, let crash = probe.check(shadow) {
            return row(path, .rejected, "crashed in the probe process (\(crash)); not loaded into the host",
                       hash: short, ms: elapsed())
        }
        guard let handle = dlopen(shadow, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            let message = dlerror().map { String(cString: $0) } ?? "unknown error"
            return row(path, .rejected, "dlopen failed: \(message)", hash: short, ms: elapsed())
        }
        state.withLock { s in
            if s.value.handles[hash] == nil {
                s.value.handles[hash] = handle
                s.value.retainedImages += 1
            }
        }
        typealias ManifestFunction = @convention(c) () -> UnsafePointer<CChar>?
        typealias RegisterFunction = @convention(c) (UnsafeRawPointer) -> UnsafeMutablePointer<CChar>?
        guard let manifestAddress = dlsym(handle, manifestSymbol), let registerAddress = dlsym(handle, registerSymbol) else {
            return row(path, .rejected, "entry points not found after dlopen", hash: short, ms: elapsed())
        }
        let manifestFunction = unsafeBitCast(manifestAddress, to: ManifestFunction.self)
        guard let text = manifestFunction().map({ String(cString: $0) }) else {
            return row(path, .rejected, "handshake failed: the manifest function returned nothing", hash: short, ms: elapsed())
        }
        let manifest: ParsedManifest
        do {
            manifest = try ParsedManifest(text)
        } catch let e as HandshakeError {
            return row(path, .rejected, "handshake failed: \(e.lines.joined(separator: "; "))", hash: short, ms: elapsed())
        } catch {
            return row(path, .rejected, "handshake failed: \(error)", hash: short, ms: elapsed())
        }
        if let other = plugins.first(where: { $0.name == manifest.name }), Self.baseName(other.file) != Self.baseName(path) {
            return row(path, .rejected,
                       "plugin '\(manifest.name)' is already loaded from \(other.file) (version \(other.version)); "
                           + "remove one of the two files", plugin: manifest.name, version: manifest.version, hash: short,
                       ms: elapsed())
        }
        let owner = KernelOwner.plugin(manifest.name, version: manifest.version, contentHash: hash)
        let registrar = PluginRegistrar(owner: owner)
        let registerFunction = unsafeBitCast(registerAddress, to: RegisterFunction.self)
        if let message = registerFunction(Unmanaged.passUnretained(registrar).toOpaque()) {
            let reason = String(cString: message)
            message.deallocate()
            return row(path, .rejected, "registration failed: \(reason) (no kernels of it were registered)",
                       plugin: manifest.name, version: manifest.version, hash: short, ms: elapsed())
        }
        let declared = Set(manifest.kernels.map { "\($0.parent)|\($0.child)|\($0.name)" })
        for k in registrar.kernels where !declared.contains("\(k.parent.name)|\(k.child.name)|\(k.name)") {
            return row(path, .rejected,
                       "registered kernel '\(k.name)' for (\(k.parent.name), \(k.child.name)) that its manifest does not "
                           + "declare (no kernels of it were registered)",
                       plugin: manifest.name, version: manifest.version, hash: short, ms: elapsed())
        }
        let replacedOld = plugins.first { $0.name == manifest.name }
        session.kernels.replace(pluginNamed: manifest.name, kernels: registrar.kernels, rules: registrar.rules,
                                owner: owner, compressorHooks: registrar.compressorHooks)
        let loaded = LoadedPlugin(name: manifest.name, version: manifest.version, file: path, contentHash: hash,
                                  shadowPath: shadow, kernelCount: registrar.kernels.count + registrar.rules.count)
        state.withLock { $0.value.plugins[manifest.name] = loaded }
        return row(path, replacedOld == nil ? .loaded : .replaced,
                   replacedOld.map { "replaces version \($0.version) (\(String($0.contentHash.prefix(16))))" } ?? "",
                   plugin: manifest.name, version: manifest.version, kernels: loaded.kernelCount, hash: short, ms: elapsed())
    }

    /// Withdraws a plugin's kernels from future contexts (its code stays mapped).
    @discardableResult
    public func unload(pluginNamed name: String) -> Bool {
        guard state.withLock({ $0.value.plugins.removeValue(forKey: name) }) != nil else { return false }
        session.kernels.replace(pluginNamed: name, kernels: [], rules: [], owner: nil)
        return true
    }

    public static func baseName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func readFile(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    /// Writes `bytes` to `path` through a temporary file and a rename, so that no reader sees half a file.
    static func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
        var st = stat()
        if stat(path, &st) == 0 && Int(st.st_size) == bytes.count { return true }
        let tmp = path + ".tmp-\(getpid())"
        guard let f = fopen(tmp, "wb") else { return false }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
        guard written == bytes.count, rename(tmp, path) == 0 else {
            unlink(tmp)
            return false
        }
        return true
    }
}

/// Carries a value that is only touched under a lock.
struct UnsafeSendable<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

struct HandshakeError: Error {
    var lines: [String]
}

/// A manifest as read by the host, checked field by field.
struct ParsedManifest {
    var name = ""
    var version = ""
    var abi = 0
    var compiler = ""
    var kernels: [(parent: String, child: String, name: String)] = []

    init(_ text: String) throws {
        let lines = text.split(separator: "\n").map(String.init)
        guard lines.first == PluginABI.magic else {
            throw HandshakeError(lines: ["magic: host expects \(PluginABI.magic), plugin sent '\(lines.first ?? "")'"])
        }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            let value = String(line[line.index(after: eq)...])
            if key == "kernel" {
                let parts = value.split(separator: "|", maxSplits: 2).map(String.init)
                if parts.count == 3 { kernels.append((parts[0], parts[1], parts[2])) }
            } else {
                fields[key] = value
            }
        }
        var problems: [String] = []
        abi = Int(fields["abi"] ?? "") ?? -1
        if abi != PluginABI.hostABIVersion {
            problems.append("host SDK ABI = \(PluginABI.hostABIVersion), plugin built against \(fields["abi"] ?? "none")")
        }
        name = fields["name"] ?? ""
        version = fields["version"] ?? ""
        compiler = fields["compiler"] ?? ""
        if name.isEmpty || name.contains("/") { problems.append("plugin name: expected a name, found '\(name)'") }
        if version.isEmpty { problems.append("plugin version: expected a version, found none") }
        if !problems.isEmpty { throw HandshakeError(lines: problems) }
    }
}
