import CEddyHost
@_spi(Host) public import Eddy
@_spi(Host) import Eddy
import EddyIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

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
    /// Whether report rows say which plugins are debug builds (``PluginReportRow/debugBuild``): reading
    /// that from the DWARF was a twentieth of a one-shot `eddy eval` with two plugins, which never shows it.
    let readsBuildMode: Bool
    /// Whether a recent probe refusal of the same bytes is taken as the build's verdict instead of
    /// probing again (one-shot commands: a build that crashes in its probe would cost each a child
    /// process). Off for `eddy plugins`, which reports what a probe says now, and for servers.
    let reusesRefusals: Bool

    /// A plugin content hash that must not be loaded again (its code crashed, hung or ran out of
    /// memory in a worker), with the cause and when.
    public struct Quarantine: Sendable {
        public var hash: String
        public var plugin: String
        public var cause: String
        /// Seconds since 1970.
        public var time: Double
    }

    struct State {
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
    let state = Mutex(UncheckedBox(State()))

    /// Loads a new plugin file in a separate process first (see ``PluginProbe``); nil loads directly.
    public let probe: PluginProbe?
    /// Checks what a plugin computes after it registers and before its kernels are published (in the
    /// process that loads it: the probe's child, or this one when there is no probe).
    @_spi(Host) public let verifier: PluginVerifier?
    /// The build IDs probe verdicts are kept under (see ``probeHostKey(_:)``), read before any plugin
    /// loads.
    let hostLibraries: (own: String, all: [UInt8])?

    /// What probe verdicts are kept under; nil when they are not kept. The list of build IDs is folded
    /// into 128 bits by FNV-1a, not SHA-256: it only tells host builds apart (whoever could make two
    /// lists collide controls the host's libraries already), and a one-shot `eddy eval` whose plugins'
    /// digests are known then never maps the hashing library (see ``KnownDigests``).
    var hostBuild: String? {
        guard let (own, all) = hostLibraries else { return nil }
        var lanes: (UInt64, UInt64) = (0xcbf2_9ce4_8422_2325, 0x6c62_272e_07bb_0142)
        for byte in all {
            lanes.0 = (lanes.0 ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            lanes.1 = (lanes.1 ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            lanes.1 ^= lanes.1 >> 29
        }
        return own + "+" + PrivateCopies.hex(withUnsafeBytes(of: (lanes.0.bigEndian, lanes.1.bigEndian)) { Array($0) })
    }

    /// - Parameters:
    ///   - shadowDirectory: where private copies go (default: see `PrivateCopies.defaultPath`); it is
    ///     created 0700 and verified before the first copy is written.
    ///   - holdsLastGood: hold the last good builds' copies from now on (see ``LastGoodBuilds``), as a
    ///     host that runs for a while and collects copies must; a one-shot command's host, which never
    ///     collects and exits in milliseconds, reads the record only when it asks it something.
    @_spi(Host) public init(
        session: Session, shadowDirectory: String? = nil, probe: PluginProbe? = nil,
        policy: PluginLoadPolicy = PluginLoadPolicy(), loading: Loading = .inProcess,
        verifier: PluginVerifier? = nil, readsBuildMode: Bool = true, reusesRefusals: Bool = false,
        holdsLastGood: Bool = true
    ) {
        self.session = session
        self.readsBuildMode = readsBuildMode
        self.reusesRefusals = reusesRefusals
        self.probe = probe
        self.verifier = verifier
        self.policy = policy
        self.loading = loading
        self.copies = PrivateCopies(path: PrivateCopies.defaultPath(explicit: shadowDirectory))
        // Before any scan: their copies are held from now on, so that no collection removes them.
        self.lastGood = LastGoodBuilds(directory: copies.path, holding: holdsLastGood)
        self.hostLibraries = probe == nil ? nil : Self.hostLibraryIdentity()
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

    /// This process's libraries by build ID and its library search path (hashed by ``hostBuild``);
    /// nil when the program or libEddy.so has no build ID.
    static func hostLibraryIdentity() -> (own: String, all: [UInt8])? {
        var buffer = [CChar](repeating: 0, count: 1 << 16)
        guard eddy_host_build_ids(&buffer, buffer.count, 0) == 0 else { return nil }
        let own = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard eddy_host_build_ids(&buffer, buffer.count, 1) == 0 else { return nil }
        var all = Array(buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })
        for name in ["LD_LIBRARY_PATH", "LD_PRELOAD"] {
            all += Array("\n\(name)=".utf8) + Array((getenv(name).map { String(cString: $0) } ?? "").utf8)
        }
        return (own, all)
    }

    static func parseQuarantine(_ line: String) -> Quarantine? {
        let f = line.utf8.split(separator: UInt8(ascii: "\t"), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        guard f.count == 4, f[0].utf8.count == 64, let t = Double(f[1]) else { return nil }
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
    public func scan(_ directory: String) -> [PluginReportRow] { scan(directory, leavingOut: [:]) }

    /// ``scan(_:)``, but the files named in `leftOut` (by their names in the directory) are not read:
    /// each gets the row given for it (see ``rememberedBuild(_:)``).
    @_spi(Host) public func scan(_ directory: String, leavingOut leftOut: [String: PluginReportRow])
        -> [PluginReportRow]
    {
        guard let names = Self.candidates(in: directory) else {
            return [row(directory, .rejected, "cannot open plugin directory: \(errnoText())")]
        }
        return names.map {
            let path = directory + "/" + $0.name
            if let row = leftOut[$0.name] { return row }
            return $0.valid ? load(path) : row(path, .rejected, Self.invalidName)
        }
    }

    /// What an earlier check of a plugin file found, as this host can recall it without reading the file.
    @_spi(Host) public struct RememberedBuild: Sendable {
        public var hash: String
        public var plugin: String
        public var version: String
        public var uses: PluginUses
    }

    /// The build the file at `path` held when it was last checked, recalled by the file's identity alone
    /// (its remembered digest, ``KnownDigests``) and this host build's passed probe of that digest, with
    /// what the build registered. The file is not read, so this is a hint: it may only ever leave a build
    /// out (a build an evaluation cannot use changes no answer), never load one. Nil when there is no
    /// probe, no digest for the identity, or no verdict that says what the build registered.
    @_spi(Host) public func rememberedBuild(_ path: String) -> RememberedBuild? {
        guard let probe, let host = probeHostKey(probe) else { return nil }
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
            let hash = copies.knownDigest(FileIdentity(st)),
            let verdict = copies.probeVerdict(hash: hash, host: host), let uses = verdict.uses
        else { return nil }
        return RememberedBuild(hash: hash, plugin: verdict.name, version: verdict.version, uses: uses)
    }

    /// Whether the plugin directory's trust checks find a problem (writable by others, another owner):
    /// then every file is read, so that each gets its warning or refusal.
    @_spi(Host) public static func directoryHasTrustProblem(_ directory: String) -> Bool {
        PluginFile.directoryProblem(directory) != nil
    }

    /// Why a file left out by ``scan(_:leavingOut:)`` for an evaluation's demand was not read.
    @_spi(Host) public static let notNeededReason =
        "not read: the build its file held when last checked (same file identity) cannot take part in this query"

    /// The row of a file left out because its remembered build cannot take part in the query.
    @_spi(Host) public func notNeededRow(_ path: String, _ build: RememberedBuild) -> PluginReportRow {
        row(
            path, .skipped, Self.notNeededReason, plugin: build.plugin, version: build.version,
            hash: String(build.hash.prefix(16)))
    }

    /// Why a plugin file whose name is not UTF-8 is refused: Swift's paths are strings, so the name
    /// read from the directory (its bytes repaired) would not open the file.
    static let invalidName = "its file name is not valid UTF-8, so this host cannot open it by name: rename it"

    /// A directory entry's name, and whether its bytes were valid UTF-8 (else the name shown has them
    /// replaced by U+FFFD).
    static func entryName(_ raw: UnsafeRawBufferPointer) -> (name: String, valid: Bool) {
        let bytes = raw.prefix { $0 != 0 }
        if let name = String(validating: bytes, as: UTF8.self) { return (name, true) }
        return (String(decoding: bytes, as: UTF8.self), false)
    }

    /// The plugin file names in `directory`, sorted; nil if it cannot be read.
    @_spi(Host) public static func candidates(in directory: String) -> [(name: String, valid: Bool)]? {
        guard let dir = opendir(directory) else { return nil }
        defer { closedir(dir) }
        var names: [(name: String, valid: Bool)] = []
        while let entry = readdir(dir) {
            let entry = withUnsafeBytes(of: entry.pointee.d_name) { entryName($0) }
            if isCandidate(entry.name) { names.append(entry) }
        }
        return names.sorted { $0.name < $1.name }
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
        let started = now()
        do {
            let bytes = try PluginFile.read(descriptor: descriptor, policy: policy)
            defer { releaseUnusedHolds() }
            return load(PluginFile(bytes: bytes), path: path, started: started)
        } catch {
            return row(path, .rejected, error.reason, ms: (now() - started) * 1000)
        }
    }

    /// Checks and loads one file. The host keeps running whatever the file holds.
    public func load(_ path: String) -> PluginReportRow {
        let started = now()
        let file: PluginFile
        do {
            file = try PluginFile.read(path, directory: Self.directoryName(path), policy: policy)
        } catch {
            var r = row(path, .rejected, error.reason, ms: (now() - started) * 1000)
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
        let r = loadSigned(file, path: path, started: started)
        // A new build refused while an earlier build of this file serves: the row says that one serves
        // (the top-level fingerprint and /eval name it; the file's row alone read as if nothing did).
        guard r.status == .rejected,
            let serving = plugins.first(where: { Self.baseName($0.file) == Self.baseName(path) })
        else { return r }
        var kept = r
        kept.reason +=
            "; \(Self.escaped(serving.name))@\(Self.escaped(serving.version)) (sha256 "
            + "\(serving.contentHash.prefix(16))), loaded from this file before, keeps serving"
        return kept
    }

    /// ``load(_:path:started:)`` before its note on a build that keeps serving: the signature policy,
    /// then the loader's stages.
    private func loadSigned(_ file: PluginFile, path: String, started: Double) -> PluginReportRow {
        var signer = ""
        var warning = ""
        switch PluginSignature.verify(file.bytes, trusted: policy.trustedKeys) {
        case .unsigned:
            if policy.requireSigned {
                return row(
                    path, .rejected,
                    "unsigned: --require-signed loads only plugins signed by a key in "
                        + "--trusted-keys (sign it with eddy sign)", ms: (now() - started) * 1000)
            }
        case .invalid(let reason):
            if policy.requireSigned { return row(path, .rejected, reason, ms: (now() - started) * 1000) }
            warning = "warning: \(reason)"
        case .signed(let name, let fingerprint, let trustedAs):
            if let trustedAs {
                signer = trustedAs
            } else if policy.requireSigned {
                return row(
                    path, .rejected,
                    "signed by an untrusted key: '\(Self.escaped(name))' (key \(fingerprint)) is not "
                        + "in --trusted-keys", ms: (now() - started) * 1000)
            } else {
                signer = "\(name) (key \(fingerprint), not checked against --trusted-keys)"
            }
        }
        var r = load(unsigned: file, path: path, started: started)
        r.signer = signer
        if readsBuildMode, r.status == .loaded || r.status == .replaced {
            r.debugBuild = ELFBuildMode.read(file.bytes).isDebugBuild
        }
        if !warning.isEmpty, r.status == .loaded || r.status == .replaced {
            r.reason = r.reason.isEmpty ? warning : r.reason + "; " + warning
        }
        return r
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
    func nameConflict(_ name: String, _ path: String) -> String? {
        guard let other = plugins.first(where: { $0.name == name }), Self.baseName(other.file) != Self.baseName(path)
        else {
            return nil
        }
        return "plugin '\(Self.escaped(name))' is already loaded from \(Self.escaped(other.file)) "
            + "(version \(Self.escaped(other.version))); remove one of the two files"
    }

    /// What the plugin's handshake and registration came to.
    enum Registration: @unchecked Sendable {  // the registrar is handed from the bounded thread once
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

    func adoptHold(_ copy: PrivateCopies.Copy) {
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
        let t = now()
        let grace = releasedHoldSeconds
        let staged = canaries.staged.map { Self.baseName($0.shadowPath) }
        let done = state.withLock { s -> [Int32] in
            let current = Set(s.value.plugins.values.map { Self.baseName($0.shadowPath) } + staged)
            for (name, fd) in s.value.holds where !current.contains(name) {
                s.value.holds[name] = nil
                s.value.released.append((fd, t))
            }
            let done = s.value.released.filter { t - $0.time >= grace }.map(\.fd)
            s.value.released.removeAll { t - $0.time >= grace }
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
}
