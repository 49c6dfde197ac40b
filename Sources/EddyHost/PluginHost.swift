import CEddyHost
import Crypto
@_spi(Host) public import Eddy
@_spi(Host) import Eddy
import EddyIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One row of a scan report: what happened to one file.
public struct PluginReportRow: Sendable, Equatable {
    public enum Status: String, Sendable { case loaded, skipped, rejected, replaced, quarantined }

    public var file: String
    public var status: Status
    /// Why it was skipped or rejected (the check that failed, what was expected and found).
    public var reason: String
    public var plugin: String
    public var version: String
    public var kernels: Int
    public var contentHash: String
    public var loadMilliseconds: Double
    /// Where the file, a symbolic link in the plugin directory, points (empty for a plain file).
    public var linkTarget: String = ""
    /// Who signed the file: the trusted key's name, or the signer it names with its key's fingerprint
    /// when that key is not trusted (empty for an unsigned file).
    public var signer: String = ""

    /// Whether the file's first load in a child process ran for this row.
    public enum Probe: String, Sendable {
        /// The row was decided before the probe (a failed check, the same bytes already mapped).
        case none = ""
        /// The child process loaded it (its verdict is the row's, when it failed).
        case ran
        /// It passed in a child process earlier under this host build (a verdict kept beside the
        /// private copies), so it was not run again.
        case passedEarlier = "passed earlier"
        /// `--no-probe`.
        case off
    }
    public var probe: Probe = .none
    /// The file's Swift code was compiled without optimisation (`swift build` without `-c release`):
    /// its kernels run several times slower than a release build's (see ``ELFBuildMode``).
    public var debugBuild = false
    /// How many generated inputs its kernels, hooks and storage were checked on against
    /// decode-then-compute before they served a query (`--verify`); nil when not verified.
    public var verified: VerifiedInputs?

    /// The row as a JSON object.
    public var json: String {
        let q = Self.jsonString
        return "{\"file\": \(q(file)), \"status\": \(q(status.rawValue)), \"reason\": \(q(reason)), "
            + "\"plugin\": \(q(plugin)), \"version\": \(q(version)), \"kernels\": \(kernels), "
            + "\"content_hash\": \(q(contentHash)), \"load_ms\": \((loadMilliseconds * 100).rounded() / 100)"
            + (linkTarget.isEmpty ? "" : ", \"link_target\": \(q(linkTarget))")
            + (signer.isEmpty ? "" : ", \"signer\": \(q(signer))")
            + (probe == .none ? "" : ", \"probe\": \(q(probe.rawValue))")
            + (debugBuild ? ", \"debug_build\": true" : "")
            + (verified.map { ", \"verified_inputs\": \($0.inputs)" } ?? "") + "}"
    }

    /// `s` as a JSON string literal.
    public static func jsonString(_ s: String) -> String { ResultWriter.jsonString(s) }
}

/// A plugin whose kernels are (or were) in the registry.
public struct LoadedPlugin: Sendable {
    public var name: String
    public var version: String
    public var file: String
    public var contentHash: String
    public var shadowPath: String
    public var kernelCount: Int
    /// The inputs it was checked on before serving (`--verify`), as its load's row said; nil when not
    /// verified. Kept here because a later scan of the same bytes reports the file as unchanged, without it.
    public var verified: VerifiedInputs? = nil
}

/// Loads kernel plugins into a session, checking each file before any of its code runs.
///
/// For each file, in order: the directory and the file may be changed only by this user or root (see
/// ``PluginLoadPolicy``); a symbolic link must stay inside the directory; a regular file no larger than
/// the size cap; an ELF shared object for this machine with its program headers and loadable segments
/// inside the file; the two entry points among its dynamic symbols (else "not an Eddy plugin"); no copy
/// of the SDK of its own. Then the checked bytes are stored as a verified private copy named by content
/// hash, loaded first in a child process (see ``PluginProbe``), then `dlopen`ed
/// (`RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE`, never closed); the manifest handshake is checked field by
/// field, and registration (bounded in time) commits all of the plugin's kernels or none.
public final class PluginHost: Sendable {
    @_spi(Host) public let session: Session
    /// Where private copies of plugin files are written before `dlopen`.
    public var shadowDirectory: String { copies.path }
    public let policy: PluginLoadPolicy
    let copies: PrivateCopies
    /// Each plugin's last good build, kept beside the quarantine file (see ``LastGoodBuilds``).
    public let lastGood: LastGoodBuilds
    /// New builds in canary: staged beside the serving build instead of replacing it (see ``CanaryBuilds``).
    public let canaries = CanaryBuilds()

    /// How plugins become kernels: loaded into this process, or only checked (and probed) so that
    /// worker processes load them — a supervisor never maps plugin code.
    public enum Loading: Sendable { case inProcess, checkOnly }
    public let loading: Loading

    /// A plugin content hash that must not be loaded again (its code crashed, hung or ran out of
    /// memory in a worker), with the cause and when.
    public struct Quarantine: Sendable {
        public var hash: String
        public var plugin: String
        public var cause: String
        /// Seconds since 1970.
        public var time: Double
    }

    private struct State {
        var quarantine: [String: Quarantine] = [:]
        var plugins: [String: LoadedPlugin] = [:]
        /// Images mapped by `dlopen`; never unmapped (Swift metadata in them must stay valid).
        var retainedImages = 0
        var handles: [String: UnsafeMutableRawPointer] = [:]
        /// Shared locks on the private copies of the plugin set, by copy name (see
        /// ``PrivateCopies/Copy/hold``), and those of builds that left it, with when they left.
        var holds: [String: Int32] = [:]
        var released: [(fd: Int32, time: Double)] = []
    }
    private let state = Mutex(UnsafeSendable(State()))

    /// Loads a new plugin file in a separate process first (see ``PluginProbe``); nil loads directly.
    public let probe: PluginProbe?
    /// Checks what a plugin computes after it registers and before its kernels are published (in the
    /// process that loads it: the probe's child, or this one when there is no probe).
    @_spi(Host) public let verifier: PluginVerifier?
    /// What probe verdicts are kept under (see ``probeHostKey(_:)``), taken before any plugin loads.
    let hostBuild: String?

    /// - Parameters:
    ///   - shadowDirectory: where private copies go (default: see `PrivateCopies.defaultPath`); it is
    ///     created 0700 and verified before the first copy is written.
    @_spi(Host) public init(
        session: Session, shadowDirectory: String? = nil, probe: PluginProbe? = nil,
        policy: PluginLoadPolicy = PluginLoadPolicy(), loading: Loading = .inProcess,
        verifier: PluginVerifier? = nil
    ) {
        self.session = session
        self.probe = probe
        self.verifier = verifier
        self.policy = policy
        self.loading = loading
        self.copies = PrivateCopies(path: PrivateCopies.defaultPath(explicit: shadowDirectory))
        // Before any scan: their copies are held from now on, so that no collection removes them.
        self.lastGood = LastGoodBuilds(directory: copies.path)
        self.hostBuild = probe == nil ? nil : Self.hostBuildIdentity()
        let known = copies.quarantineRecords().compactMap(Self.parseQuarantine)
        state.withLock { s in for q in known { s.value.quarantine[q.hash] = q } }
    }

    /// Plugin hashes in quarantine (persisted beside the private copies, so every host sees them).
    public var quarantined: [Quarantine] {
        state.withLock { Array($0.value.quarantine.values) }.sorted { $0.time < $1.time }
    }

    /// The quarantine record of a content hash (full, or its first 16 hex digits).
    public func quarantine(of hash: String) -> Quarantine? {
        state.withLock { s in s.value.quarantine[hash] ?? s.value.quarantine.values.first { $0.hash.hasPrefix(hash) } }
    }

    /// Quarantines a plugin's content hash: it is withdrawn now and refused from then on (a build
    /// with other bytes loads normally), and its plugin's last good build serves instead, when it has
    /// one (see ``fallBackToLastGood(plugin:file:quarantinedVersion:cause:)``). False if it already was.
    @discardableResult
    public func quarantine(hash: String, plugin: String, cause: String) -> Bool {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let record = Quarantine(hash: hash, plugin: plugin, cause: cause, time: Double(ts.tv_sec))
        let (isNew, loaded) = state.withLock { s -> (Bool, LoadedPlugin?) in
            guard s.value.quarantine[hash] == nil else { return (false, nil) }
            s.value.quarantine[hash] = record
            return (true, s.value.plugins.values.first { $0.contentHash == hash })
        }
        canaries.drop(hash: hash)
        guard isNew else { return false }
        copies.appendQuarantineRecord("\(hash)\t\(Int(record.time))\t\(Self.escaped(plugin))\t\(Self.escaped(cause))")
        if let loaded {
            unload(pluginNamed: loaded.name)
            // Within the next request: the plugin's last good build serves, when it has one.
            fallBackToLastGood(
                plugin: loaded.name, file: loaded.file, quarantinedVersion: loaded.version, cause: cause)
        }
        return true
    }

    /// What a probe verdict holds for: the build IDs of this program, libEddy.so and every library
    /// loaded with them (taken when the host starts, before any plugin), the library search path
    /// (`LD_LIBRARY_PATH`, `LD_PRELOAD`: a plugin's own dependencies resolve through it), and the probe
    /// command; nil (verdicts are not kept) when a build ID is missing.
    func probeHostKey(_ probe: PluginProbe) -> String? {
        guard let build = hostBuild else { return nil }
        let command = ([probe.executable] + probe.arguments + ["timeout=\(probe.timeout)"]).joined(separator: " ")
        return build + " " + Self.escaped(command)
    }

    /// This process's libraries by build ID and its library search path, hashed; nil when the program
    /// or libEddy.so has no build ID.
    static func hostBuildIdentity() -> String? {
        var buffer = [CChar](repeating: 0, count: 1 << 16)
        guard eddy_host_build_ids(&buffer, buffer.count, 0) == 0 else { return nil }
        let own = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard eddy_host_build_ids(&buffer, buffer.count, 1) == 0 else { return nil }
        var all = Array(buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })
        for name in ["LD_LIBRARY_PATH", "LD_PRELOAD"] {
            all += Array("\n\(name)=".utf8) + Array((getenv(name).map { String(cString: $0) } ?? "").utf8)
        }
        return own + "+" + String(PrivateCopies.hex(SHA256.hash(data: all)).prefix(32))
    }

    static func parseQuarantine(_ line: String) -> Quarantine? {
        let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 4, f[0].count == 64, let t = Double(f[1]) else { return nil }
        return Quarantine(hash: f[0], plugin: f[2], cause: f[3], time: t)
    }

    /// Bumped whenever the plugin set changes (what workers must load).
    public var pluginSet: [LoadedPlugin] { plugins }

    /// Plugins currently registered, by name.
    public var plugins: [LoadedPlugin] {
        state.withLock { Array($0.value.plugins.values).sorted { $0.name < $1.name } }
    }

    /// Number of plugin images mapped into the process (they are never unmapped).
    public var retainedImages: Int { state.withLock { $0.value.retainedImages } }

    /// The default plugin directory: `$EDDY_PLUGIN_DIR`, else `./plugins`.
    public static var defaultDirectory: String {
        getenv("EDDY_PLUGIN_DIR").map { String(cString: $0) } ?? "plugins"
    }

    /// Loads every `*.so` in `directory` (not recursive; hidden and temporary files ignored), in name order.
    public func scan(_ directory: String) -> [PluginReportRow] {
        guard let names = Self.candidates(in: directory) else {
            return [row(directory, .rejected, "cannot open plugin directory: \(errnoText())")]
        }
        return names.map { load(directory + "/" + $0) }
    }

    /// The plugin file names in `directory`, sorted; nil if it cannot be read.
    static func candidates(in directory: String) -> [String]? {
        guard let dir = opendir(directory) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if isCandidate(name) { names.append(name) }
        }
        return names.sorted()
    }

    /// Whether a directory entry is considered: `*.so`, not hidden, not an editor or partial file.
    public static func isCandidate(_ name: String) -> Bool {
        name.hasSuffix(".so") && !name.hasPrefix(".") && !name.hasPrefix("~") && !name.hasPrefix("#")
    }

    /// `text` on one line, safe to print in a report or a log: control characters (a newline in a
    /// file name, terminal escapes) and backslashes are shown escaped.
    public static func escaped(_ text: String) -> String { escapedForDisplay(text) }

    /// The plugin ABI versions this host loads, as text (`2` or `2...3`).
    static var abiRange: String {
        let r = PluginABI.supportedPluginABIs
        return r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)...\(r.upperBound)"
    }

    /// What to rebuild a refused plugin against.
    static var rebuildAdvice: String {
        "rebuild it against Eddy SDK \(PluginABI.sdkVersion) (ABI \(PluginABI.hostABIVersion), Swift "
            + "\(PluginABI.hostCompilerVersion))" + (sdkCheckout.map { ", the plugin-sdk package at \($0)" } ?? "")
    }

    /// The `plugin-sdk` directory of the checkout this binary was built from, when it still exists.
    public static var sdkCheckout: String? {
        let source = #filePath
        guard let at = source.indices.last(where: { source[$0...].hasPrefix("/Sources/EddyHost/") }) else { return nil }
        let sdk = String(source[..<at]) + "/plugin-sdk"
        var st = stat()
        guard stat(sdk + "/Package.swift", &st) == 0 else { return nil }
        return sdk
    }

    func row(
        _ file: String, _ status: PluginReportRow.Status, _ reason: String, plugin: String = "",
        version: String = "", kernels: Int = 0, hash: String = "", ms: Double = 0
    ) -> PluginReportRow {
        PluginReportRow(
            file: file, status: status, reason: reason, plugin: plugin, version: version, kernels: kernels,
            contentHash: hash, loadMilliseconds: ms)
    }

    /// Loads the plugin file open on `descriptor` — a private copy that another host process verified
    /// and handed over (the probe) — reporting it as `path`. The directory checks were that host's.
    public func load(descriptor: Int32, path: String) -> PluginReportRow {
        let started = Self.now()
        do {
            let bytes = try PluginFile.read(descriptor: descriptor, policy: policy)
            defer { releaseUnusedHolds() }
            return load(PluginFile(bytes: bytes), path: path, started: started)
        } catch {
            return row(path, .rejected, error.reason, ms: (Self.now() - started) * 1000)
        }
    }

    /// Checks and loads one file. The host keeps running whatever the file holds.
    public func load(_ path: String) -> PluginReportRow {
        let started = Self.now()
        let file: PluginFile
        do {
            file = try PluginFile.read(path, directory: Self.directoryName(path), policy: policy)
        } catch {
            var r = row(path, .rejected, error.reason, ms: (Self.now() - started) * 1000)
            r.linkTarget = error.linkTarget
            return r
        }
        var r = load(file, path: path, started: started)
        if r.status == .quarantined { r = withLastGood(r) }
        releaseUnusedHolds()
        r.linkTarget = file.linkTarget
        if !file.warning.isEmpty, r.status == .loaded || r.status == .replaced {
            r.reason = r.reason.isEmpty ? file.warning : r.reason + "; " + file.warning
        }
        return r
    }

    private func load(_ file: PluginFile, path: String, started: Double) -> PluginReportRow {
        var signer = ""
        var warning = ""
        switch PluginSignature.verify(file.bytes, trusted: policy.trustedKeys) {
        case .unsigned:
            if policy.requireSigned {
                return row(
                    path, .rejected,
                    "unsigned: --require-signed loads only plugins signed by a key in "
                        + "--trusted-keys (sign it with eddy sign)", ms: (Self.now() - started) * 1000)
            }
        case .invalid(let reason):
            if policy.requireSigned { return row(path, .rejected, reason, ms: (Self.now() - started) * 1000) }
            warning = "warning: \(reason)"
        case .signed(let name, let fingerprint, let trustedAs):
            if let trustedAs {
                signer = trustedAs
            } else if policy.requireSigned {
                return row(
                    path, .rejected,
                    "signed by an untrusted key: '\(Self.escaped(name))' (key \(fingerprint)) is not "
                        + "in --trusted-keys", ms: (Self.now() - started) * 1000)
            } else {
                signer = "\(name) (key \(fingerprint), not checked against --trusted-keys)"
            }
        }
        var r = load(unsigned: file, path: path, started: started)
        r.signer = signer
        if r.status == .loaded || r.status == .replaced {
            r.debugBuild = ELFBuildMode.read(file.bytes).isDebugBuild
        }
        if !warning.isEmpty, r.status == .loaded || r.status == .replaced {
            r.reason = r.reason.isEmpty ? warning : r.reason + "; " + warning
        }
        return r
    }

    private func load(unsigned file: PluginFile, path: String, started: Double) -> PluginReportRow {
        func elapsed() -> Double { (Self.now() - started) * 1000 }
        var probeNote = PluginReportRow.Probe.none
        // Inputs the plugin was checked on (`--verify`): by its probe, or here before publishing.
        var verified: VerifiedInputs?
        func row(
            _ file: String, _ status: PluginReportRow.Status, _ reason: String, plugin: String = "",
            version: String = "", kernels: Int = 0, hash: String = "", ms: Double = 0
        ) -> PluginReportRow {
            var r = self.row(
                file, status, reason, plugin: plugin, version: version, kernels: kernels, hash: hash, ms: ms)
            r.probe = probeNote
            if status == .loaded || status == .replaced { r.verified = verified }
            return r
        }
        let bytes = file.bytes
        let entrySymbol = PluginABI.entrySymbol
        let legacySymbols = ["eddy_plugin_manifest_v1", "eddy_plugin_register_v1"]
        let facts: ELFFacts
        do {
            // Symbols of module Eddy defined in the file mean a static copy of the SDK.
            facts = try ELFInspector.inspect(bytes, symbols: Set([entrySymbol] + legacySymbols), prefix: "$s4Eddy")
        } catch let f as ELFInspector.Failure {
            return row(
                path, .rejected, "\(f.check) check failed: expected \(f.expected), found \(f.found)", ms: elapsed())
        } catch {
            return row(path, .rejected, "\(error)", ms: elapsed())
        }
        if !facts.definedSymbols.contains(entrySymbol) {
            if legacySymbols.contains(where: facts.definedSymbols.contains) {
                return row(
                    path, .rejected,
                    "built against Eddy SDK ABI 1 (it exports eddy_plugin_manifest_v1/eddy_plugin_register_v1); "
                        + "this host loads plugin ABI \(Self.abiRange): \(Self.rebuildAdvice)", ms: elapsed())
            }
            return row(
                path, .skipped,
                "not an Eddy plugin: no \(entrySymbol) symbol (a plugin exports it with one line: "
                    + "@_cdecl(\"\(entrySymbol)\") public func eddyPluginEntry(_ r: Int32, _ a: "
                    + "UnsafeMutableRawPointer?) -> Int32 { pluginEntry(MyPlugin.self, r, a) })", ms: elapsed())
        }
        if facts.prefixedSymbolCount > 0 {
            return row(
                path, .rejected,
                "carries its own copy of the Eddy SDK (defines \(facts.prefixedSymbolCount) symbols of module Eddy, "
                    + "e.g. \(Self.escaped(facts.prefixedExample))); link the SDK's shared library libEddy.so instead",
                ms: elapsed())
        }
        guard facts.neededLibraries.contains("libEddy.so") else {
            return row(
                path, .rejected,
                "does not link libEddy.so (needs: \(Self.escaped(facts.neededLibraries.joined(separator: ", "))))",
                ms: elapsed())
        }
        let hash = PrivateCopies.hex(SHA256.hash(data: bytes))
        let short = String(hash.prefix(16))
        if let q = quarantine(of: hash) {
            let at = q.plugin.lastIndex(of: "@")
            return row(
                path, .quarantined,
                "quarantined since \(Self.timestamp(q.time)): \(q.cause) (drop a fixed build to "
                    + "replace it)", plugin: at.map { String(q.plugin[..<$0]) } ?? q.plugin,
                version: at.map { String(q.plugin[q.plugin.index(after: $0)...]) } ?? "", hash: short, ms: elapsed())
        }
        if let staged = canaries.staged.first(where: { $0.contentHash == hash }),
            Self.baseName(staged.file) == Self.baseName(path)
        {
            return row(
                path, .replaced, "canary (unchanged)", plugin: staged.name, version: staged.version,
                kernels: staged.kernelCount, hash: short, ms: elapsed())
        }
        if let same = plugins.first(where: { $0.contentHash == hash }) {
            let fileName = Self.baseName(path)
            // The file holds the serving build again: a build in canary from it is dropped.
            if Self.baseName(same.file) == fileName { _ = canaries.take(same.name) }
            if Self.baseName(same.file) != fileName {
                return row(
                    path, .skipped, "same plugin as \(Self.escaped(same.file)) (already loaded; loaded once)",
                    plugin: same.name, version: same.version, hash: short, ms: elapsed())
            }
            return row(
                path, .loaded, "unchanged", plugin: same.name, version: same.version, kernels: same.kernelCount,
                hash: short, ms: elapsed())
        }
        // The bytes checked above are the bytes loaded: a verified private copy named by content.
        let copy: PrivateCopies.Copy
        do {
            copy = try copies.store(bytes, name: Self.copyName(path, short), hash: hash)
            adoptHold(copy)
        } catch {
            return row(path, .rejected, error.description, hash: short, ms: elapsed())
        }
        // A plugin that crashes, exits or hangs while loading or registering must not take this
        // process with it: the first load of each content hash happens in a child process, which
        // is handed the verified copy as an open descriptor.
        let alreadyMapped = state.withLock { $0.value.handles[hash] != nil }
        var probed: PluginProbe.Outcome?
        if let probe, !alreadyMapped {
            // A passed probe is kept beside the private copies, keyed by the plugin's hash and this
            // host build: the same bytes under the same build are not probed again (a one-shot
            // `eddy eval` would otherwise start a process per plugin every time).
            let host = probeHostKey(probe)
            if let host, let kept = copies.probeVerdict(hash: hash, host: host) {
                probed = .passed(kernels: kept.kernels, name: kept.name, version: kept.version, verified: kept.verified)
                probeNote = .passedEarlier
            } else {
                probeNote = .ran
                let outcome: PluginProbe.Outcome
                do {
                    let fd = try copies.openCopy(copy)
                    defer { close(fd) }
                    outcome = probe.check(descriptor: fd, path: path)
                } catch {
                    return row(path, .rejected, error.description, hash: short, ms: elapsed())
                }
                switch outcome {
                case .passed(let kernels, let name, let version, let verified):
                    probed = outcome
                    if let host {
                        copies.recordProbeVerdict(
                            hash: hash, host: host, kernels: kernels, name: name, version: version,
                            verified: verified)
                    }
                case .rejected(let reason, let plugin, let version):
                    // The child read the manifest: the row names the plugin it refused.
                    return row(path, .rejected, reason, plugin: plugin, version: version, hash: short, ms: elapsed())
                case .failed(let reason):
                    return row(path, .rejected, reason, hash: short, ms: elapsed())
                }
            }
        }
        if probe == nil { probeNote = .off }
        if case .passed(_, _, _, let v)? = probed { verified = v }
        if loading == .checkOnly {
            // A supervisor: the probe's word is all it takes; workers load the verified copy.
            guard case .passed(let kernels, let name, let version, _)? = probed else {
                return row(
                    path, .rejected, "this host loads plugins only through its probe, which is off", hash: short,
                    ms: elapsed())
            }
            if let conflict = nameConflict(name, path) {
                return row(path, .rejected, conflict, plugin: name, version: version, hash: short, ms: elapsed())
            }
            let replacedOld = plugins.first { $0.name == name }
            let loaded = LoadedPlugin(
                name: name, version: version, file: path, contentHash: hash,
                shadowPath: copy.displayPath, kernelCount: kernels, verified: verified)
            if let old = replacedOld, canaries.wants(name) {
                // A canary: the serving build stays in the set; the server routes a share of requests to
                // workers with this one in its place, until it is promoted or rolled back.
                canaries.put(loaded)
                return row(
                    path, .replaced,
                    "canary: serves a share of requests; \(Self.escaped(old.version)) "
                        + "(\(String(old.contentHash.prefix(16)))) serves the rest until it is promoted or rolled back",
                    plugin: name, version: version, kernels: kernels, hash: short, ms: elapsed())
            }
            publishChecked(loaded)
            return row(
                path, replacedOld == nil ? .loaded : .replaced,
                replacedOld.map {
                    "replaces version \(Self.escaped($0.version)) (\(String($0.contentHash.prefix(16))))"
                } ?? "",
                plugin: name, version: version, kernels: kernels, hash: short, ms: elapsed())
        }
        guard let handle = dlopen(copy.loadPath, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            let message = dlerror().map { String(cString: $0) } ?? "unknown error"
            return row(path, .rejected, "dlopen failed: \(Self.escaped(message))", hash: short, ms: elapsed())
        }
        state.withLock { s in
            if s.value.handles[hash] == nil {
                s.value.handles[hash] = handle
                s.value.retainedImages += 1
            }
        }
        typealias EntryFunction = @convention(c) (Int32, UnsafeMutableRawPointer?) -> Int32
        guard let entryAddress = dlsym(handle, entrySymbol) else {
            return row(path, .rejected, "entry point \(entrySymbol) not found after dlopen", hash: short, ms: elapsed())
        }
        let entry = unsafeBitCast(entryAddress, to: EntryFunction.self)
        // The plugin's own code runs on a thread of its own, bounded in time: a plugin that hangs
        // here is refused and its thread abandoned, instead of wedging the host (or its watcher).
        let timeout = policy.registrationTimeout
        let outcome: Registration? = BoundedCall.run(seconds: timeout) {
            let site = PluginCallSite("the entry function of \(Self.escaped(Self.baseName(path)))")
            let capacity = PluginABI.manifestCapacity
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
            let status = site.run { entry(PluginABI.manifestRequest, buffer) }
            // Never trust the plugin to terminate the text: the last byte is the host's.
            buffer.storeBytes(of: 0, toByteOffset: capacity - 1, as: UInt8.self)
            let text = String(cString: buffer.assumingMemoryBound(to: CChar.self))
            buffer.deallocate()
            guard status == 0 else {
                return .failed(
                    "handshake failed: the entry function answered the manifest request with status \(status)"
                        + (status == 2 ? " (manifest longer than \(capacity) bytes)" : ""))
            }
            let manifest: ParsedManifest
            do {
                manifest = try ParsedManifest(text)
            } catch let e as HandshakeError {
                return .failed("handshake failed: \(Self.escaped(e.lines.joined(separator: "; ")))")
            } catch {
                return .failed("handshake failed: \(error)")
            }
            if let conflict = self.nameConflict(manifest.name, path) { return .refused(manifest, conflict) }
            let owner = KernelOwner.plugin(manifest.name, version: manifest.version, contentHash: hash)
            // Declare, then register: the plugin's declaration is what its registration code says, run once
            // in declaring mode; the second run must register exactly that.
            var runs: [PluginRegistrar] = []
            for declaring in [true, false] {
                let registrar = PluginRegistrar(owner: owner, declaring: declaring)
                let registering = PluginCallSite("the registration of plugin \(manifest.name)@\(manifest.version)")
                let status = registering.run {
                    entry(PluginABI.registerRequest, Unmanaged.passUnretained(registrar).toOpaque())
                }
                if status != 0 || registrar.failure != nil {
                    let reason = registrar.failure ?? "status \(status)"
                    return .refused(
                        manifest,
                        "registration failed: \(Self.escaped(reason)) "
                            + "(\(declaring ? "while declaring; " : "")no kernels of it were registered)")
                }
                // What was registered until the entry function returned is all there is: a plugin that
                // keeps the registrar cannot add to it while it is checked or after it is published.
                registrar.seal()
                runs.append(registrar)
            }
            let (declared, registered) = (runs[0], runs[1])
            if declared.lateCalls + registered.lateCalls > 0 {
                return .refused(
                    manifest,
                    "registered after its registration had returned (from a thread it started?); "
                        + "register everything before returning (no kernels of it were registered)")
            }
            if let problem = registered.problems.first {
                return .refused(manifest, "\(Self.escaped(problem)) (no kernels of it were registered)")
            }
            let d = Set(declared.declarations), r = Set(registered.declarations)
            if let extra = r.subtracting(d).sorted().first {
                return .refused(
                    manifest,
                    "registered \(Self.escaped(extra)) that its declaration does not list "
                        + "(registration must not depend on isDeclaring; no kernels of it were registered)")
            }
            if let missing = d.subtracting(r).sorted().first {
                return .refused(
                    manifest,
                    "declared \(Self.escaped(missing)) but did not register it "
                        + "(registration must not depend on isDeclaring; no kernels of it were registered)")
            }
            return .registered(manifest, registered, owner)
        }
        guard let outcome else {
            return row(
                path, .rejected,
                "hung while registering in the host: no result within \(PluginProbe.seconds(timeout)) s "
                    + "(its thread is abandoned; restart the host to reclaim it)", hash: short, ms: elapsed())
        }
        let manifest: ParsedManifest
        let registrar: PluginRegistrar
        let owner: KernelOwner
        switch outcome {
        case .failed(let reason):
            return row(path, .rejected, reason, hash: short, ms: elapsed())
        case .refused(let m, let reason):
            return row(path, .rejected, reason, plugin: m.name, version: m.version, hash: short, ms: elapsed())
        case .registered(let m, let r, let o):
            (manifest, registrar, owner) = (m, r, o)
        }
        let contents = registrar.contents  // sealed: the lists that were checked
        if let verifier, verified == nil {
            // Checked in a session of its own before anything is published: a plugin that computes
            // wrong answers never serves a query here.
            let scratch = Session()
            scratch.kernels.replace(
                pluginNamed: manifest.name, kernels: contents.kernels, rules: contents.rules,
                owner: owner, compressorHooks: contents.compressorHooks, encodings: registrar.encodings,
                storages: registrar.storages)
            // Bounded like registration: a kernel that never returns refuses the plugin (its thread is
            // abandoned), instead of wedging a host that runs verification itself (--no-probe).
            let limit = verifier.hangSeconds
            let name = manifest.name
            switch BoundedCall.run(seconds: limit, { verifier.check(scratch, name) }) {
            case nil:
                return row(
                    path, .rejected,
                    "hung in verification (--verify \(verifier.level)): no result within "
                        + "\(PluginProbe.seconds(limit)) s (its thread is abandoned; restart the host to reclaim it)",
                    plugin: manifest.name, version: manifest.version, hash: short, ms: elapsed())
            case .verified(let checked)?:
                verified = checked
            case .refused(let report)?:
                return row(
                    path, .rejected,
                    "refused by verification (--verify \(verifier.level)): plugin \(Self.escaped(manifest.name)) "
                        + "\(Self.escaped(manifest.version)): \(Self.escaped(report))",
                    plugin: manifest.name, version: manifest.version, hash: short, ms: elapsed())
            }
        }
        let replacedOld = plugins.first { $0.name == manifest.name }
        session.kernels.replace(
            pluginNamed: manifest.name, kernels: contents.kernels, rules: contents.rules,
            owner: owner, compressorHooks: contents.compressorHooks, encodings: registrar.encodings,
            storages: registrar.storages)
        let loaded = LoadedPlugin(
            name: manifest.name, version: manifest.version, file: path, contentHash: hash,
            shadowPath: copy.displayPath, kernelCount: contents.kernels.count + contents.rules.count,
            verified: verified)
        state.withLock { $0.value.plugins[manifest.name] = loaded }
        return row(
            path, replacedOld == nil ? .loaded : .replaced,
            replacedOld.map { "replaces version \(Self.escaped($0.version)) (\(String($0.contentHash.prefix(16))))" }
                ?? "",
            plugin: manifest.name, version: manifest.version, kernels: loaded.kernelCount, hash: short, ms: elapsed())
    }

    /// Puts a build checked for workers into the plugin set, in place of any build of its plugin. The
    /// supervisor's own snapshot names the plugin set too (no kernels: workers run them), so its
    /// generation and fingerprint move with the set, as a removal's always did.
    func publishChecked(_ loaded: LoadedPlugin) {
        state.withLock { $0.value.plugins[loaded.name] = loaded }
        session.kernels.replace(
            pluginNamed: loaded.name, kernels: [], rules: [],
            owner: KernelOwner(
                name: loaded.name, version: loaded.version, isBuiltin: false, contentHash: loaded.contentHash))
        releaseUnusedHolds()
    }

    /// Why a plugin called `name` from `path` cannot load: one of that name already came from
    /// another file (a new build in the same file replaces it instead). Nil when it can.
    private func nameConflict(_ name: String, _ path: String) -> String? {
        guard let other = plugins.first(where: { $0.name == name }), Self.baseName(other.file) != Self.baseName(path)
        else {
            return nil
        }
        return "plugin '\(Self.escaped(name))' is already loaded from \(Self.escaped(other.file)) "
            + "(version \(Self.escaped(other.version))); remove one of the two files"
    }

    /// What the plugin's handshake and registration came to.
    private enum Registration: @unchecked Sendable {  // the registrar is handed from the bounded thread once
        case failed(String)
        case refused(ParsedManifest, String)
        case registered(ParsedManifest, PluginRegistrar, KernelOwner)
    }

    /// Withdraws a plugin's kernels from future contexts (its code stays mapped).
    @discardableResult
    public func unload(pluginNamed name: String) -> Bool {
        _ = canaries.take(name)
        guard state.withLock({ $0.value.plugins.removeValue(forKey: name) }) != nil else { return false }
        session.kernels.replace(pluginNamed: name, kernels: [], rules: [], owner: nil)
        releaseUnusedHolds()
        return true
    }

    // MARK: - Private copies in use

    /// How long the copy of a build that left the plugin set stays held: in a supervisor, a request
    /// sent to a worker just before names it (the worker holds it once it loaded it); a host that
    /// loads plugins itself has them mapped and lets go at once.
    var releasedHoldSeconds: Double { loading == .checkOnly ? 5 : 0 }

    private func adoptHold(_ copy: PrivateCopies.Copy) {
        guard copy.hold >= 0 else { return }
        let spare = state.withLock { s -> Int32 in
            if s.value.holds[copy.name] != nil { return copy.hold }
            s.value.holds[copy.name] = copy.hold
            return -1
        }
        if spare >= 0 { close(spare) }
    }

    /// Lets go of the copies of builds no longer in the plugin set, after ``releasedHoldSeconds``.
    private func releaseUnusedHolds() {
        let now = Self.now()
        let grace = releasedHoldSeconds
        let staged = canaries.staged.map { Self.baseName($0.shadowPath) }
        let done = state.withLock { s -> [Int32] in
            let current = Set(s.value.plugins.values.map { Self.baseName($0.shadowPath) } + staged)
            for (name, fd) in s.value.holds where !current.contains(name) {
                s.value.holds[name] = nil
                s.value.released.append((fd, now))
            }
            let done = s.value.released.filter { now - $0.time >= grace }.map(\.fd)
            s.value.released.removeAll { now - $0.time >= grace }
            return done
        }
        for fd in done { close(fd) }
    }

    /// Removes the private copies of builds that are neither in this host's plugin set nor held by
    /// another process (a server, a worker, a running `eddy eval` of this user): 30 replaced builds
    /// no longer leave 30 copies. The quarantine and probe-verdict records stay. Returns how many went.
    @discardableResult
    public func collectCopies() -> Int {
        releaseUnusedHolds()
        let keep = state.withLock { Set($0.value.holds.keys) }
        return copies.collect(keeping: keep)
    }

    public static func baseName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    static func directoryName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The private copy's name: the file's stem (letters, digits, `._-` only) and its short hash.
    static func copyName(_ path: String, _ short: String) -> String {
        let stem = baseName(path).dropLast(3).unicodeScalars.prefix(64).map { u -> Character in
            u.properties.isAlphabetic && u.isASCII || ("0"..."9").contains(u) || u == "." || u == "_" || u == "-"
                ? Character(u) : "_"
        }
        // A private copy (the probe child loads one) keeps its name.
        let name = String(stem)
        return (name.hasSuffix("-" + short) ? name : name + "-" + short) + ".so"
    }

    /// `seconds` since 1970 as an ISO 8601 UTC time.
    public static func isoTime(_ seconds: Double) -> String { timestamp(seconds) }

    static func timestamp(_ seconds: Double) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):"
            + "\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
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

    /// What a plugin name may be, for messages.
    static let nameRule = "expected letters, digits, '-', '_' or '.' (at most 128, not only dots)"

    /// A manifest's name: also a file name component, so never empty, '.', '..', nor holding a '/'.
    static func isValidName(_ name: String) -> Bool {
        !(name.isEmpty || name.count > 128 || name.allSatisfy({ $0 == "." })
            || !name.unicodeScalars.allSatisfy({
                $0.isASCII
                    && ($0.properties.isAlphabetic || ("0"..."9").contains($0)
                        || $0 == "-" || $0 == "_" || $0 == ".")
            }))
    }

    init(_ text: String) throws {
        let lines = text.split(separator: "\n").map(String.init)
        guard lines.first == PluginABI.magic else {
            let sent = String((lines.first ?? "").prefix(80))
            throw HandshakeError(lines: ["magic: host expects \(PluginABI.magic), plugin sent '\(sent)'"])
        }
        var fields: [String: String] = [:]
        var problems: [String] = []
        for line in lines.dropFirst() {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            let value = String(line[line.index(after: eq)...])
            if fields[key] != nil {
                problems.append("manifest field '\(key.prefix(40))' given twice")
            }
            fields[key] = value
        }
        abi = Int(fields["abi"] ?? "") ?? -1
        if !PluginABI.supportedPluginABIs.contains(abi) {
            problems.append(
                "plugin built against Eddy SDK ABI \(fields["abi"] ?? "none"), this host loads plugin ABI "
                    + "\(PluginHost.abiRange): \(PluginHost.rebuildAdvice)")
        }
        name = fields["name"] ?? ""
        version = fields["version"] ?? ""
        compiler = fields["compiler"] ?? ""
        let hostMajor = PluginABI.hostCompilerVersion.split(separator: ".").first.map(String.init) ?? ""
        let parts = compiler.split(separator: ".", omittingEmptySubsequences: false)
        let wellFormed =
            parts.count == 2
            && parts.allSatisfy { !$0.isEmpty && $0.count <= 4 && $0.allSatisfy { ("0"..."9").contains($0) } }
        let pluginMajor = wellFormed ? String(parts[0]) : ""
        if pluginMajor != hostMajor {
            problems.append(
                "plugin built with Swift \(compiler.isEmpty ? "(unknown)" : String(compiler.prefix(40))), this host with Swift "
                    + "\(PluginABI.hostCompilerVersion) (Swift has no stable ABI across major versions on Linux): rebuild it "
                    + "with a Swift \(hostMajor).x compiler")
        }
        if !Self.isValidName(name) {
            problems.append("plugin name: \(Self.nameRule), found '\(name.prefix(140))'")
        }
        let printable = version.unicodeScalars.allSatisfy {
            $0.properties.generalCategory != .control && $0.properties.generalCategory != .format
        }
        if version.allSatisfy({ $0 == " " || $0 == "\t" }) || version.count > 64 || !printable {
            problems.append(
                "plugin version: expected a version (at most 64 characters, no control characters), found '\(version.prefix(70))'"
            )
        }
        if !problems.isEmpty { throw HandshakeError(lines: problems) }
    }
}

extension PluginHost {
    /// Whether `name` is a name a manifest may give (checked as ``ParsedManifest`` checks it).
    @_spi(Host) public static func isValidPluginName(_ name: String) -> Bool { ParsedManifest.isValidName(name) }
    /// What a plugin name may be, for messages.
    @_spi(Host) public static var pluginNameRule: String { ParsedManifest.nameRule }
}
