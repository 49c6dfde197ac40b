import CEddyHost
@_spi(Host) import Eddy
import EddyIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The loader's stages, in the order ``PluginHost/load(unsigned:path:started:)`` runs them. Each stage
/// either hands the next one what it learned or ends the load with the file's row (``LoadStop``).
extension PluginHost {
    /// Loads a file whose signature (if any) was checked: its image, then builds already known, a private
    /// copy, the probe, and — in a host that loads plugins itself — `dlopen`, registration, verification
    /// and publication.
    func load(unsigned file: PluginFile, path: String, started: Double) -> PluginReportRow {
        let attempt = LoadAttempt(self, path: path, started: started)
        do throws(LoadStop) {
            let bytes = file.bytes
            try checkImage(bytes, attempt)
            let hash = try contentHash(bytes, identity: file.identity, attempt)
            if let known = knownBuild(hash: hash, attempt) { return known }
            let copy = try storeCopy(bytes, hash: hash, attempt)
            let probed = try probeFirstLoad(copy, hash: hash, attempt)
            if probe == nil { attempt.probeNote = .off }
            if case .passed(_, _, _, let v, _)? = probed { attempt.verified = v }
            if loading == .checkOnly { return try publishProbed(probed, copy: copy, hash: hash, attempt) }
            let entry = try mapImage(copy, hash: hash, attempt)
            let registered = try registerInHost(entry, hash: hash, attempt)
            try verifyInScratch(registered, hash: hash, attempt)
            return publish(registered, copy: copy, hash: hash, attempt)
        } catch {
            return error.row
        }
    }

    /// Loads a build that a ``Loading/checkOnly`` host of this process checked and probed a moment ago
    /// (`plugin` is its entry): its private copy is hashed again through a descriptor, required to be
    /// the build checked, and mapped through that descriptor — not read, ELF-inspected, signature-checked
    /// or compared a second time. (The hash is not skipped: the probe ran plugin code after the check,
    /// and where confinement is partial that code could replace the copy.) Registration here must name
    /// the plugin and version the probe's did.
    @_spi(Host) public func load(checked plugin: LoadedPlugin) -> PluginReportRow {
        let attempt = LoadAttempt(self, path: plugin.file, started: now())
        let short = String(plugin.contentHash.prefix(16))
        do throws(LoadStop) {
            let copy: PrivateCopies.Copy
            do {
                copy = try copies.held(name: Self.baseName(plugin.shadowPath), hash: plugin.contentHash)
            } catch {
                throw attempt.stop(.rejected, error.description, hash: short)
            }
            adoptHold(copy)
            let entry = try mapImage(copy, hash: plugin.contentHash, attempt)
            let registered = try registerInHost(entry, hash: plugin.contentHash, attempt)
            let manifest = registered.manifest
            guard manifest.name == plugin.name, manifest.version == plugin.version else {
                throw attempt.stop(
                    .rejected,
                    "registered as \(Self.escaped(manifest.name))@\(Self.escaped(manifest.version)) here but as "
                        + "\(Self.escaped(plugin.name))@\(Self.escaped(plugin.version)) in its probe",
                    plugin: manifest.name, version: manifest.version, hash: short)
            }
            attempt.verified = plugin.verified
            try verifyInScratch(registered, hash: plugin.contentHash, attempt)
            return publish(registered, copy: copy, hash: plugin.contentHash, attempt)
        } catch {
            return error.row
        }
    }

    /// The file's SHA-256 in hex: what its private copy, verdicts and quarantine are kept under. An
    /// earlier host's digest for the file's identity (``KnownDigests``) is used only when the private copy
    /// named by it holds exactly these bytes: the copy was hashed when it was written, and a file can be
    /// changed without its times moving (through a shared mapping), so the identity alone is a hint.
    private func contentHash(_ bytes: [UInt8], identity: FileIdentity?, _ attempt: LoadAttempt) throws(LoadStop)
        -> String
    {
        if let identity, let known = copies.knownDigest(identity),
            copies.holds(name: Self.copyName(attempt.path, String(known.prefix(16))), bytes)
        {
            return known
        }
        do {
            let hash = PrivateCopies.hex(try HostCrypto.sha256(bytes))
            if let identity { copies.rememberDigest(hash, of: identity) }
            return hash
        } catch {
            throw attempt.stop(.rejected, "cannot hash it: \(error)")
        }
    }

    /// Stage 1: the ELF image — an Eddy plugin's entry point, no SDK of its own, linked to libEddy.so.
    private func checkImage(_ bytes: [UInt8], _ attempt: LoadAttempt) throws(LoadStop) {
        let entrySymbol = PluginABI.entrySymbol
        let legacySymbols = ["eddy_plugin_manifest_v1", "eddy_plugin_register_v1"]
        let facts: ELFFacts
        do {
            // Symbols of module Eddy defined in the file mean a static copy of the SDK.
            facts = try ELFInspector.inspect(bytes, symbols: Set([entrySymbol] + legacySymbols), prefix: "$s4Eddy")
        } catch let f as ELFInspector.Failure {
            throw attempt.stop(.rejected, "\(f.check) check failed: expected \(f.expected), found \(f.found)")
        } catch {
            throw attempt.stop(.rejected, "\(error)")
        }
        if !facts.definedSymbols.contains(entrySymbol) {
            if legacySymbols.contains(where: facts.definedSymbols.contains) {
                throw attempt.stop(
                    .rejected,
                    "built against Eddy SDK ABI 1 (it exports eddy_plugin_manifest_v1/eddy_plugin_register_v1); "
                        + "this host loads plugin ABI \(Self.abiRange): \(Self.rebuildAdvice)")
            }
            throw attempt.stop(
                .skipped,
                "not an Eddy plugin: no \(entrySymbol) symbol (a plugin exports it with one line: "
                    + "@_cdecl(\"\(entrySymbol)\") public func eddyPluginEntry(_ r: Int32, _ a: "
                    + "UnsafeMutableRawPointer?) -> Int32 { pluginEntry(MyPlugin.self, r, a) })")
        }
        if facts.prefixedSymbolCount > 0 {
            throw attempt.stop(
                .rejected,
                "carries its own copy of the Eddy SDK (defines \(facts.prefixedSymbolCount) symbols of module Eddy, "
                    + "e.g. \(Self.escaped(facts.prefixedExample))); link the SDK's shared library libEddy.so instead")
        }
        guard facts.neededLibraries.contains("libEddy.so") else {
            throw attempt.stop(
                .rejected,
                "does not link libEddy.so (needs: \(Self.escaped(facts.neededLibraries.joined(separator: ", "))))")
        }
    }

    /// Stage 2: a build known by its content hash — quarantined, the staged canary, or one already in the
    /// plugin set — is answered for without loading anything. Nil: a new build.
    private func knownBuild(hash: String, _ attempt: LoadAttempt) -> PluginReportRow? {
        let path = attempt.path
        let short = String(hash.prefix(16))
        if let q = quarantine(of: hash) {
            let at = q.plugin.lastIndex(of: "@")
            return attempt.row(
                .quarantined,
                "quarantined since \(Self.timestamp(q.time)): \(q.cause) (drop a fixed build to "
                    + "replace it)", plugin: at.map { String(q.plugin[..<$0]) } ?? q.plugin,
                version: at.map { String(q.plugin[q.plugin.index(after: $0)...]) } ?? "", hash: short)
        }
        if let staged = canaries.staged.first(where: { $0.contentHash == hash }),
            Self.baseName(staged.file) == Self.baseName(path)
        {
            return attempt.row(
                .replaced, "canary (unchanged)", plugin: staged.name, version: staged.version,
                kernels: staged.kernelCount, hash: short)
        }
        if let same = plugins.first(where: { $0.contentHash == hash }) {
            let fileName = Self.baseName(path)
            // The file holds the serving build again: a build in canary from it is dropped.
            if Self.baseName(same.file) == fileName { _ = canaries.take(same.name) }
            if Self.baseName(same.file) != fileName {
                return attempt.row(
                    .skipped, "same plugin as \(Self.escaped(same.file)) (already loaded; loaded once)",
                    plugin: same.name, version: same.version, hash: short)
            }
            return attempt.row(
                .loaded, "unchanged", plugin: same.name, version: same.version, kernels: same.kernelCount,
                hash: short)
        }
        return nil
    }

    /// Stage 3: the bytes checked above are the bytes loaded: a verified private copy named by content.
    private func storeCopy(_ bytes: [UInt8], hash: String, _ attempt: LoadAttempt) throws(LoadStop)
        -> PrivateCopies.Copy
    {
        let short = String(hash.prefix(16))
        do {
            let copy = try copies.store(bytes, name: Self.copyName(attempt.path, short), hash: hash)
            adoptHold(copy)
            return copy
        } catch {
            throw attempt.stop(.rejected, error.description, hash: short)
        }
    }

    /// Stage 4: a plugin that crashes, exits or hangs while loading or registering must not take this
    /// process with it: the first load of each content hash happens in a child process, which is handed
    /// the verified copy as an open descriptor. Nil: no probe ran (none, or the image is mapped already).
    private func probeFirstLoad(_ copy: PrivateCopies.Copy, hash: String, _ attempt: LoadAttempt) throws(LoadStop)
        -> PluginProbe.Outcome?
    {
        let alreadyMapped = state.withLock { $0.value.handles[hash] != nil }
        guard let probe, !alreadyMapped else { return nil }
        let short = String(hash.prefix(16))
        // A passed probe is kept beside the private copies, keyed by the plugin's hash and this
        // host build: the same bytes under the same build are not probed again (a one-shot
        // `eddy eval` would otherwise start a process per plugin every time).
        let host = probeHostKey(probe)
        let now = Double(time(nil))
        let refusals = copies.probeRefusals(hash: hash, host: host, now: now)
        // A build a probe caught giving a wrong answer, or crashing on verification's inputs (at any
        // --verify level, in either program), is never loaded again: not by a host verifying less, not
        // after a while.
        if let wrong = refusals.wrongAnswer {
            attempt.probeNote = .refusedEarlier
            throw attempt.stop(
                .rejected,
                "\(wrong.reason) (found by an earlier probe; a build that gave a wrong answer or crashed while "
                    + "it was verified is not loaded again at any --verify level: rebuild it, or delete its line in "
                    + "\(PluginHost.escaped(copies.path))/\(PrivateCopies.probeRefusalFile))",
                plugin: wrong.plugin, version: wrong.version, hash: short)
        }
        if let host, let kept = copies.probeVerdict(hash: hash, host: host) {
            attempt.probeNote = .passedEarlier
            return .passed(
                kernels: kept.kernels, name: kept.name, version: kept.version, verified: kept.verified, uses: kept.uses)
        }
        // A one-shot host takes a recent refusal of the same bytes as the verdict: a build that crashes
        // in its probe would otherwise cost every query a child process (~40 ms).
        if reusesRefusals, let refused = refusals.recent {
            attempt.probeNote = .refusedEarlier
            let minutes = Int(PrivateCopies.probeRefusalLifetime / 60)
            throw attempt.stop(
                .rejected,
                "\(refused.reason) (in its probe \(Int(max(0, now - refused.at))) s ago; the same bytes are "
                    + "not probed again for \(minutes) minutes: `eddy plugins` probes them now)",
                plugin: refused.plugin, version: refused.version, hash: short)
        }
        attempt.probeNote = .ran
        let outcome: PluginProbe.Outcome
        do {
            let fd = try copies.openCopy(copy)
            defer { close(fd) }
            outcome = probe.check(descriptor: fd, path: attempt.path)
        } catch {
            throw attempt.stop(.rejected, error.description, hash: short)
        }
        switch outcome {
        case .passed(let kernels, let name, let version, let verified, let uses):
            if let host {
                copies.recordProbeVerdict(
                    hash: hash, host: host, kernels: kernels, name: name, version: version, verified: verified,
                    uses: uses)
            }
            copies.clearProbeRefusals(hash: hash, at: now)
            return outcome
        case .rejected(let reason, let plugin, let version):
            // The child read the manifest: the row names the plugin it refused.
            if let host {
                copies.recordProbeRefusal(
                    hash: hash, host: host, at: now, plugin: plugin, version: version, reason: reason)
            }
            if PluginVerifier.reportsWrongAnswer(reason) {
                copies.recordProbeRefusal(
                    hash: hash, host: PrivateCopies.wrongAnswerKey, at: now, plugin: plugin, version: version,
                    reason: reason)
            }
            throw attempt.stop(.rejected, reason, plugin: plugin, version: version, hash: short)
        case .failed(let reason):
            if let host, PluginProbe.failureLasts(reason) {
                copies.recordProbeRefusal(hash: hash, host: host, at: now, plugin: "", version: "", reason: reason)
            }
            if PluginProbe.crashedInVerification(reason) {
                // Kept like a wrong answer: a racy kernel that crashed under `--verify full` must not pass
                // a later, lighter probe and serve queries on several threads.
                copies.recordProbeRefusal(
                    hash: hash, host: PrivateCopies.wrongAnswerKey, at: now, plugin: "", version: "", reason: reason)
            }
            throw attempt.stop(.rejected, reason, hash: short)
        }
    }

    /// Stage 5 in a supervisor (``Loading/checkOnly``): the probe's word is all it takes; workers load
    /// the verified copy. A new build of a plugin in canary is staged instead of published.
    private func publishProbed(
        _ probed: PluginProbe.Outcome?, copy: PrivateCopies.Copy, hash: String, _ attempt: LoadAttempt
    ) throws(LoadStop) -> PluginReportRow {
        let (path, short) = (attempt.path, String(hash.prefix(16)))
        guard case .passed(let kernels, let name, let version, _, let uses)? = probed else {
            throw attempt.stop(.rejected, "this host loads plugins only through its probe, which is off", hash: short)
        }
        if let conflict = nameConflict(name, path) {
            throw attempt.stop(.rejected, conflict, plugin: name, version: version, hash: short)
        }
        let replacedOld = plugins.first { $0.name == name }
        let loaded = LoadedPlugin(
            name: name, version: version, file: path, contentHash: hash,
            shadowPath: copy.displayPath, kernelCount: kernels, verified: attempt.verified, uses: uses)
        if let old = replacedOld, canaries.wants(name) {
            // A canary: the serving build stays in the set; the server routes a share of requests to
            // workers with this one in its place, until it is promoted or rolled back.
            canaries.put(loaded)
            return attempt.row(
                .replaced,
                "canary: serves a share of requests; \(Self.escaped(old.version)) "
                    + "(\(String(old.contentHash.prefix(16)))) serves the rest until it is promoted or rolled back",
                plugin: name, version: version, kernels: kernels, hash: short)
        }
        publishChecked(loaded)
        return attempt.row(
            replacedOld == nil ? .loaded : .replaced,
            replacedOld.map {
                "replaces version \(Self.escaped($0.version)) (\(String($0.contentHash.prefix(16))))"
            } ?? "",
            plugin: name, version: version, kernels: kernels, hash: short)
    }

    typealias EntryFunction = @convention(c) (Int32, UnsafeMutableRawPointer?) -> Int32

    /// Stage 5 in a host that loads plugins itself: the private copy `dlopen`ed (never closed: Swift
    /// metadata in it must stay valid) and its entry point found.
    private func mapImage(_ copy: PrivateCopies.Copy, hash: String, _ attempt: LoadAttempt) throws(LoadStop)
        -> EntryFunction
    {
        let short = String(hash.prefix(16))
        guard let handle = dlopen(copy.loadPath, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            let message = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw attempt.stop(.rejected, "dlopen failed: \(Self.escaped(message))", hash: short)
        }
        // The loader answers a name it mapped before with that image: a "/proc/self/fd/N" whose number
        // named another build's file then would run that build's code under this one's hash.
        let other = state.withLock { s -> String? in
            if let (known, _) = s.value.handles.first(where: { $0.value == handle && $0.key != hash }) { return known }
            if s.value.handles[hash] == nil {
                s.value.handles[hash] = handle
                s.value.retainedImages += 1
            }
            return nil
        }
        if let other {
            throw attempt.stop(
                .rejected,
                "dlopen of \(Self.escaped(copy.loadPath)) returned the image of build \(other.prefix(16)) mapped "
                    + "before under that name, not this file; it is not loaded", hash: short)
        }
        let entrySymbol = PluginABI.entrySymbol
        guard let entryAddress = dlsym(handle, entrySymbol) else {
            throw attempt.stop(.rejected, "entry point \(entrySymbol) not found after dlopen", hash: short)
        }
        return unsafeBitCast(entryAddress, to: EntryFunction.self)
    }

    /// What registration produced, checked: the manifest, the sealed registrar and the kernels' owner.
    struct Registered {
        var manifest: ParsedManifest
        var registrar: PluginRegistrar
        var owner: KernelOwner
        /// The registrar's lists, read once it was sealed: the lists that were checked.
        var contents: (kernels: [ExecuteParentKernel], rules: [ReduceParentRule], compressorHooks: [CompressorHook])
    }

    /// Stage 6: the plugin's own code runs on a thread of its own, bounded in time: a plugin that hangs
    /// here is refused and its thread abandoned, instead of wedging the host (or its watcher).
    private func registerInHost(_ entry: EntryFunction, hash: String, _ attempt: LoadAttempt) throws(LoadStop)
        -> Registered
    {
        let (path, short) = (attempt.path, String(hash.prefix(16)))
        let timeout = policy.registrationTimeout
        let outcome: Registration? = BoundedCall.run(seconds: timeout) {
            self.handshakeAndRegister(entry, path: path, hash: hash)
        }
        guard let outcome else {
            throw attempt.stop(
                .rejected,
                "hung while registering in the host: no result within \(PluginProbe.seconds(timeout)) s "
                    + "(its thread is abandoned; restart the host to reclaim it)", hash: short)
        }
        switch outcome {
        case .failed(let reason):
            throw attempt.stop(.rejected, reason, hash: short)
        case .refused(let m, let reason):
            throw attempt.stop(.rejected, reason, plugin: m.name, version: m.version, hash: short)
        case .registered(let m, let r, let o):
            return Registered(manifest: m, registrar: r, owner: o, contents: r.contents)
        }
    }

    /// On the bounded thread: the manifest handshake, then ``declareAndRegister(_:manifest:owner:)``.
    private func handshakeAndRegister(_ entry: EntryFunction, path: String, hash: String) -> Registration {
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
        return declareAndRegister(entry, manifest: manifest, owner: owner)
    }

    /// Declare, then register: the plugin's declaration is what its registration code says, run once
    /// in declaring mode; the second run must register exactly that.
    private func declareAndRegister(_ entry: EntryFunction, manifest: ParsedManifest, owner: KernelOwner)
        -> Registration
    {
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

    /// Stage 7 (`--verify`, when the probe did not verify): checked in a session of its own before
    /// anything is published: a plugin that computes wrong answers never serves a query here.
    private func verifyInScratch(_ registered: Registered, hash: String, _ attempt: LoadAttempt) throws(LoadStop) {
        guard let verifier, attempt.verified == nil else { return }
        let (manifest, registrar) = (registered.manifest, registered.registrar)
        let short = String(hash.prefix(16))
        let contents = registered.contents
        let scratch = Session()
        scratch.kernels.replace(
            pluginNamed: manifest.name, kernels: contents.kernels, rules: contents.rules,
            owner: registered.owner, compressorHooks: contents.compressorHooks, encodings: registrar.encodings,
            storages: registrar.storages)
        // Bounded like registration: a kernel that never returns refuses the plugin (its thread is
        // abandoned), instead of wedging a host that runs verification itself (--no-probe).
        let limit = verifier.hangSeconds
        let name = manifest.name
        switch BoundedCall.run(seconds: limit, { verifier.check(scratch, name) }) {
        case nil:
            throw attempt.stop(
                .rejected,
                "hung in verification (--verify \(verifier.level)): no result within "
                    + "\(PluginProbe.seconds(limit)) s (its thread is abandoned; restart the host to reclaim it)",
                plugin: manifest.name, version: manifest.version, hash: short)
        case .verified(let checked)?:
            attempt.verified = checked
        case .refused(let report)?:
            throw attempt.stop(
                .rejected,
                PluginVerifier.refusalPrefix + "--verify \(verifier.level)): plugin \(Self.escaped(manifest.name)) "
                    + "\(Self.escaped(manifest.version)): \(Self.escaped(report))",
                plugin: manifest.name, version: manifest.version, hash: short)
        }
    }

    /// Stage 8: the plugin's kernels replace those of any earlier build in the session's registry, and
    /// the build joins the plugin set.
    private func publish(_ registered: Registered, copy: PrivateCopies.Copy, hash: String, _ attempt: LoadAttempt)
        -> PluginReportRow
    {
        let (manifest, registrar, contents) = (registered.manifest, registered.registrar, registered.contents)
        let replacedOld = plugins.first { $0.name == manifest.name }
        session.kernels.replace(
            pluginNamed: manifest.name, kernels: contents.kernels, rules: contents.rules,
            owner: registered.owner, compressorHooks: contents.compressorHooks, encodings: registrar.encodings,
            storages: registrar.storages)
        let loaded = LoadedPlugin(
            name: manifest.name, version: manifest.version, file: attempt.path, contentHash: hash,
            shadowPath: copy.displayPath, kernelCount: contents.kernels.count + contents.rules.count,
            verified: attempt.verified)
        state.withLock { $0.value.plugins[manifest.name] = loaded }
        return attempt.row(
            replacedOld == nil ? .loaded : .replaced,
            replacedOld.map { "replaces version \(Self.escaped($0.version)) (\(String($0.contentHash.prefix(16))))" }
                ?? "",
            plugin: manifest.name, version: manifest.version, kernels: loaded.kernelCount,
            hash: String(hash.prefix(16)))
    }
}

/// One file on its way through the loader: what the stages learned that its row reports.
final class LoadAttempt {
    let host: PluginHost
    let path: String
    let started: Double
    var probeNote = PluginReportRow.Probe.none
    /// Inputs the plugin was checked on (`--verify`): by its probe, or here before publishing.
    var verified: VerifiedInputs?

    init(_ host: PluginHost, path: String, started: Double) {
        self.host = host
        self.path = path
        self.started = started
    }

    /// The file's row, with the time taken so far, the probe's note and (for a build that loaded) what it
    /// was verified on.
    func row(
        _ status: PluginReportRow.Status, _ reason: String, plugin: String = "", version: String = "",
        kernels: Int = 0, hash: String = ""
    ) -> PluginReportRow {
        var r = host.row(
            path, status, reason, plugin: plugin, version: version, kernels: kernels, hash: hash,
            ms: (now() - started) * 1000)
        r.probe = probeNote
        if status == .loaded || status == .replaced { r.verified = verified }
        return r
    }

    /// A stage's end of the load, with the file's row.
    func stop(
        _ status: PluginReportRow.Status, _ reason: String, plugin: String = "", version: String = "",
        hash: String = ""
    ) -> LoadStop {
        LoadStop(row: row(status, reason, plugin: plugin, version: version, hash: hash))
    }
}

/// A loader stage ended the load: `row` is the file's.
struct LoadStop: Error {
    var row: PluginReportRow
}
