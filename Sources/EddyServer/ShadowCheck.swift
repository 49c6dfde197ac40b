import CDispatch
import CNIOLinux
import Dispatch
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
import Foundation
import HTTPTypes
import Logging
import Prometheus
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Checks while serving (`eddy serve --shadow-check RATE`, issue 21): a sampled fraction of the requests
// in which a plugin's kernel, rule or compressor hook took part is evaluated again without any of them —
// decode-then-compute, in a worker of its own (a background thread with --workers 0), after the client
// has its answer — and the two results are compared. A divergence is confirmed with the built-in kernels,
// then bisected: the query runs once per plugin whose code took part with that plugin's code alone (the
// others' off), and only a build that makes the difference on its own is quarantined, with cause `wrong
// answer`, the query and the answers kept beside the quarantine record. The file is re-read through the
// descriptor the answer read; if it changed meanwhile (a client appending to it) nobody is charged. A
// check samples; it does not prove.

/// What a shadow check needs of one evaluation: the plugin builds whose code took part (`name@version`,
/// sorted) and a digest of the result text.
struct ShadowEvidence: Sendable, Equatable {
    var owners: [String]
    var digest: ResultDigest
}

/// A digest of a result as the output prints it, blind to row order: the multiset of its lines, each
/// hashed two independent ways (64 bits each) and summed, with the line and byte counts. A JSON result's
/// row separator (the `,` ending every row but the last) is left out, so that rows in another order give
/// the same digest; the writer prints the same value the same way every time (floats bit for bit, `-0.0`
/// included), so equal values give equal lines.
struct ResultDigest: Sendable, Equatable {
    var lines: UInt64
    var bytes: UInt64
    var sumA: UInt64
    var sumB: UInt64

    init(lines: UInt64, bytes: UInt64, sumA: UInt64, sumB: UInt64) {
        self.lines = lines
        self.bytes = bytes
        self.sumA = sumA
        self.sumB = sumB
    }

    init(_ text: String) {
        var (lines, bytes, a, b): (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var text = text
        text.withUTF8 { utf8 in
            var start = 0
            while start < utf8.count {
                var end = start
                while end < utf8.count && utf8[end] != UInt8(ascii: "\n") { end += 1 }
                var last = end
                if last > start && utf8[last - 1] == UInt8(ascii: ",") { last -= 1 }
                var ha: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
                var hb: UInt64 = 0x243f_6a88_85a3_08d3
                for k in start..<last {
                    ha = (ha ^ UInt64(utf8[k])) &* 0x0000_0100_0000_01b3
                    hb = (hb &+ UInt64(utf8[k])) &* 0x9e37_79b9_7f4a_7c15
                    hb ^= hb >> 29
                }
                a &+= Self.mix(ha ^ UInt64(last - start))
                b &+= Self.mix(hb &+ UInt64(last - start))
                lines += 1
                bytes += UInt64(last - start)
                start = end + 1
            }
        }
        self.init(lines: lines, bytes: bytes, sumA: a, sumB: b)
    }

    /// splitmix64's finalizer.
    private static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    var record: RecordedDigest {
        RecordedDigest(lines: lines, bytes: bytes, sumA: String(sumA, radix: 16), sumB: String(sumB, radix: 16))
    }
}

/// What identifies the contents of an open file at one moment: its device and inode, its size and its
/// modification and change times. A shadow check re-reads the answer's file through the same
/// descriptor, so only a write to that inode could feed it other data, and any write moves the size or
/// the times. (A file renamed over or deleted shows as changed too — its inode's change time moves as
/// its last name goes — though its bytes are the same: that errs on the side of charging nobody.) Times
/// move in the kernel's clock ticks (a few milliseconds), so an in-place rewrite of the same size within
/// one tick of a stamp is not seen; the size alone catches an append.
struct FileStamp: Sendable, Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    /// Nanoseconds since 1970.
    var modified: Int
    /// The inode's change time in nanoseconds since 1970: unlike the modification time, it cannot be
    /// set back.
    var changed: Int

    /// The stamp of the file open on `descriptor` now; nil when it cannot be read.
    init?(descriptor: Int32) {
        var st = stat()
        guard descriptor >= 0, fstat(descriptor, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        modified = Int(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int(st.st_mtim.tv_nsec)
        changed = Int(st.st_ctim.tv_sec) &* 1_000_000_000 &+ Int(st.st_ctim.tv_nsec)
    }

    /// The stamp of a job's file now (nil without one).
    init?(_ job: EvalRequest.Job) {
        guard let file = job.file else { return nil }
        self.init(descriptor: file.descriptor)
    }
}

extension Session {
    /// A session for one step of a shadow check's bisection: the engine's built-in kernels and rules, and
    /// the kernels, rules and compressor hooks of plugin `name` in `snapshot`; every other plugin of the
    /// snapshot keeps only its encodings' storages (an `.eddy` file written with them must still be read).
    /// The kernels are the snapshot's own objects: no new plugin call site is made.
    static func alone(_ name: String, of snapshot: KernelSnapshot) -> Session {
        let session = Session()
        let entries = snapshot.entries
        for owner in snapshot.plugins {
            let mine = owner.name == name
            func owned(_ o: KernelOwner) -> Bool { mine && !o.isBuiltin && o.name == owner.name }
            let storages = snapshot.pluginEncodingStorages.filter {
                !$0.owner.isBuiltin && $0.owner.name == owner.name
            }
            session.kernels.replace(
                pluginNamed: owner.name, kernels: entries.flatMap { $0.kernels.filter { owned($0.owner) } },
                rules: entries.flatMap { $0.rules.filter { owned($0.owner) } }, owner: owner,
                compressorHooks: snapshot.compressorHooks.filter { owned($0.owner) },
                encodings: storages.map(\.encoding.name), storages: storages)
        }
        return session
    }
}

/// Which plugin builds' compressor hooks encoded a column during one evaluation.
final class HookUse: Sendable {
    private let owners = Mutex<Set<String>>([])

    func reset() { owners.withLock { $0.removeAll() } }

    /// The builds noted since the last reset.
    func take() -> Set<String> { owners.withLock { $0 } }

    /// `hooks`, each noting its plugin here when it returns an encoding. A wrapper is a hook of the same
    /// name, owner and purpose, so crash reports and errors name it as before.
    func wrapping(_ hooks: [CompressorHook]) -> [CompressorHook] {
        hooks.map { hook in
            let id = "\(hook.owner.name)@\(hook.owner.version)"
            let builtin = hook.owner.isBuiltin
            return hook.replacing { [self] array, child in
                let encoded = try hook.compress(array, child)
                if encoded != nil && !builtin { owners.withLock { _ = $0.insert(id) } }
                return encoded
            }
        }
    }
}

/// A worker's compressor hooks, wrapped (see ``HookUse``) once per plugin set rather than per request:
/// each wrapper is a new plugin call site, and a worker lists every call site that runs in it once in a
/// page of bounded size (see `PluginCallSite.recordRuns`) — per-request wrappers would fill it.
final class HookWrappers: Sendable {
    let use = HookUse()
    private let cache = Mutex<(snapshot: KernelSnapshot?, hooks: [CompressorHook])>((nil, []))

    func hooks(for snapshot: KernelSnapshot) -> [CompressorHook] {
        cache.withLock { c in
            if c.snapshot !== snapshot {
                c = (snapshot, use.wrapping(snapshot.compressorHooks))
            }
            return c.hooks
        }
    }
}

/// The shadow checks waiting or running: sampled at `rate`, run one at a time on a queue of their own, at
/// most ``limit`` at once; past that a check is dropped (and counted), so that checking never holds up
/// or piles onto the requests it samples.
final class ShadowChecks: Sendable {
    let rate: Double
    static let limit = 4
    private let pending = Atomic<Int>(0)
    private let queue = DispatchQueue(label: "eddy.shadow-check")

    init(rate: Double) { self.rate = rate }

    /// Whether this request is one to check (if plugin code takes part in it).
    func sampled() -> Bool { rate >= 1 || Double.random(in: 0..<1) < rate }

    /// Runs `work` after the checks before it; false (and `work` never runs) when ``limit`` are pending.
    func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        guard pending.add(1, ordering: .relaxed).newValue <= Self.limit else {
            pending.subtract(1, ordering: .relaxed)
            return false
        }
        queue.async { [self] in
            defer { pending.subtract(1, ordering: .relaxed) }
            work()
        }
        return true
    }
}

extension EddyServer {
    /// Whether a request about to be evaluated is a sample to check.
    func sampledForCheck() -> Bool { shadow?.sampled() ?? false }

    /// Queues the check of a sampled request's answer (`answer`, the body the client got, with 200) when
    /// plugin code took part in it; a full queue drops it (counted). Returns at once.
    /// - Parameter stamp: the job's file as it was before the answer was computed (see ``FileStamp``): a
    ///   file that changed since is not checked (counted as inconclusive).
    func queueShadowCheck(
        _ job: EvalRequest.Job, plugins set: [LoadedPlugin], answer: [UInt8], evidence: ShadowEvidence,
        stamp: FileStamp?
    ) {
        guard let shadow else { return }
        // Only builds of the request's plugin set count: the list comes from a process that ran plugin code.
        let involved = set.filter { evidence.owners.contains("\($0.name)@\($0.version)") }
        guard !involved.isEmpty else { return }
        var untraced = job
        untraced.trace = false
        let reference = untraced
        guard let stamp, FileStamp(job) == stamp else {
            return inconclusive(job, "the file changed while the answer was computed")
        }
        let submitted = shadow.submit { [self] in
            check(reference, involved: involved, answer: answer, digest: evidence.digest, stamp: stamp)
        }
        if !submitted { metrics.shadowDropped.increment() }
    }

    /// Evaluates `job` again without plugin kernels, rules or hooks and compares the result with the
    /// answer given; runs on the checks' queue. Before anyone is charged, a difference is
    /// - confirmed with the engine's built-in kernels (still without plugin code): when they give the
    ///   answer's result, the difference is theirs (float rounding), not a plugin's;
    /// - bisected: the query runs once per suspect with that plugin's kernels, rules and hooks alone (the
    ///   other plugins' off), and only a plugin whose run differs from both decode-then-compute and the
    ///   built-in kernels is charged — a correct plugin that took part in the same query is not;
    /// - held to the file: the answer's file must be as it was when the answer was computed (`stamp`),
    ///   else the runs read other data than the answer did.
    /// Anything short of that is counted as inconclusive, and nobody is charged.
    private func check(
        _ job: EvalRequest.Job, involved: [LoadedPlugin], answer: [UInt8], digest: ResultDigest, stamp: FileStamp
    ) {
        // A build quarantined since (by an earlier check, a crash) is not charged again.
        let suspects = involved.filter { host.quarantine(of: $0.contentHash) == nil }
        guard !suspects.isEmpty else { return }
        let changed = "the file changed between the answer and its check: the check read other data"
        guard let reference = reevaluate(job, .reference) else { return }
        metrics.shadowChecks.increment()
        guard reference.digest != digest else { return }
        guard FileStamp(job) == stamp else { return inconclusive(job, changed) }
        guard let confirm = reevaluate(job, .confirm, counted: false) else {
            return inconclusive(job, "the answer differs without plugin code, and the confirmation failed")
        }
        guard confirm.digest != digest else {
            return inconclusive(
                job,
                "the answer differs from decode-then-compute, but the engine's built-in kernels give it too "
                    + "(a built-in kernel rounds differently): no plugin is charged")
        }
        var charged: [(plugin: LoadedPlugin, body: [UInt8], digest: ResultDigest)] = []
        var failed: [String] = []
        for plugin in suspects {
            guard let alone = reevaluate(job, .alone, plugin: plugin.name, counted: false) else {
                failed.append("\(plugin.name)@\(plugin.version)")
                continue
            }
            if alone.digest != reference.digest && alone.digest != confirm.digest {
                charged.append((plugin, alone.body, alone.digest))
            }
        }
        guard FileStamp(job) == stamp else { return inconclusive(job, changed) }
        guard !charged.isEmpty else {
            let names = suspects.map { "\($0.name)@\($0.version)" }.joined(separator: ", ")
            return inconclusive(
                job,
                "the answer differs from decode-then-compute, but no plugin's code makes the difference alone "
                    + "(plugins involved: \(names)"
                    + (failed.isEmpty ? "" : "; not evaluated alone: \(failed.joined(separator: ", "))")
                    + "): no plugin is charged")
        }
        diverged(
            job, charged: charged, involved: suspects, answer: (answer, digest),
            reference: (reference.body, reference.digest))
    }

    /// `job` evaluated in the role `check` (`.reference`, `.confirm`, or `.alone` with `plugin`'s code
    /// alone): in a worker, or here with --workers 0. Nil when it did not answer 200 (then logged and,
    /// when `counted`, counted as inconclusive); a worker that died or hung in plugin code (an `.eddy`
    /// file's plugin decoder, a kernel run alone) is blamed as for a request.
    func reevaluate(
        _ job: EvalRequest.Job, _ check: WorkerRequest.Check, plugin alone: String = "", counted: Bool = true
    ) -> (body: [UInt8], digest: ResultDigest)? {
        let deadline = now() + options.evalTimeout
        let status: Int
        let body: [UInt8]
        let digest: ResultDigest?
        if let pool {
            let set = host.plugins
            let id = UInt64.random(in: 1...UInt64.max)
            let request = WorkerRequest(
                id: id, op: .eval,
                plugins: set.map {
                    .init(name: $0.name, version: $0.version, copy: $0.shadowPath, hash: $0.contentHash)
                }, job: job, generation: session.kernels.generation, check: check, alone: alone)
            let outcome = pool.run(
                request.encoded(), descriptor: job.file?.descriptor ?? -1, id: id, plugins: request.plugins,
                deadline: deadline, clientGone: { false })
            metrics.workerRestartsSeen(pool.restarts.load(ordering: .relaxed))
            var failed: String?
            switch outcome {
            case .reply(let s, let b, let evidence):
                (status, body, digest) = (s, b, evidence?.digest)
            case .died(let cause, let site, _):
                if let site, Self.plugin(named: site, in: set) != nil {
                    _ = blame(cause: cause, site: site, in: set, status: .internalServerError)
                }
                (status, body, digest, failed) = (0, [], nil, "its worker \(cause)")
            case .timedOut(let site):
                if let site, Self.plugin(named: site, in: set) != nil {
                    _ = blame(
                        cause: "did not finish within \(options.evalTimeout) s (--eval-timeout)", site: site, in: set,
                        status: .gatewayTimeout)
                }
                (status, body, digest, failed) = (0, [], nil, "it did not finish within \(options.evalTimeout) s")
            case .protocolViolation(let what, _):
                (status, body, digest, failed) = (0, [], nil, "its worker answered out of protocol (\(what))")
            case .cancelled:
                (status, body, digest, failed) = (0, [], nil, "it was cancelled")
            }
            if let failed {
                if counted { inconclusive(job, failed) } else { note(job, check, alone, failed) }
                return nil
            }
        } else {
            let evaluated = EvalRequest.evaluateForCheck(
                job, session: session, check: check, alone: alone,
                stop: {
                    now() > deadline
                        ? EvaluationStopped(.deadline, "the shadow check did not finish within the --eval-timeout")
                        : nil
                })
            (status, body, digest) =
                (Int(evaluated.status.code), ReplyJSON.encode(evaluated.answer), evaluated.evidence?.digest)
        }
        guard status == 200, let digest else {
            let why = "it answered \(status): \(Self.excerpt(body, limit: 300))"
            if counted { inconclusive(job, why) } else { note(job, check, alone, why) }
            return nil
        }
        return (body, digest)
    }

    /// Logs a step of a check that failed without deciding it (a confirmation, a run with one plugin alone).
    private func note(_ job: EvalRequest.Job, _ check: WorkerRequest.Check, _ alone: String, _ why: String) {
        logger.warning(
            "shadow check step failed",
            metadata: [
                "step": "\(check == .alone ? "alone \(PluginHost.escaped(alone))" : "\(check)")",
                "why": "\(PluginHost.escaped(why))", "where": "\(PluginHost.escaped(job.where ?? ""))",
            ])
    }

    /// A check that could not compare (the reference evaluation failed, overran or was refused): nobody is
    /// charged; it is counted and logged.
    private func inconclusive(_ job: EvalRequest.Job, _ why: String) {
        metrics.shadowInconclusive.increment()
        logger.warning(
            "shadow check inconclusive",
            metadata: ["why": "\(PluginHost.escaped(why))", "where": "\(PluginHost.escaped(job.where ?? ""))"])
    }

    /// Quarantines each of `charged` with cause `wrong answer`, keeps the query, the answer, the reference
    /// and the plugin's answer alone in a record beside the quarantine file, logs it, and retires the
    /// workers that loaded them.
    private func diverged(
        _ job: EvalRequest.Job, charged: [(plugin: LoadedPlugin, body: [UInt8], digest: ResultDigest)],
        involved: [LoadedPlugin], answer: (body: [UInt8], digest: ResultDigest),
        reference: (body: [UInt8], digest: ResultDigest)
    ) {
        metrics.shadowDivergences.increment()
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let query = job.shownQuery
        let lines =
            answer.digest.lines == reference.digest.lines
            ? "" : "; \(answer.digest.lines) result lines, \(reference.digest.lines) without"
        for (plugin, aloneBody, aloneDigest) in charged {
            let name = "wrong-answer-\(plugin.contentHash.prefix(16))-\(Int(ts.tv_sec)).json"
            let record = WrongAnswerRecord(
                time: PluginHost.isoTime(Double(ts.tv_sec)),
                plugin: "\(plugin.name)@\(plugin.version)", contentHash: plugin.contentHash,
                pluginsInvolved: involved.map { "\($0.name)@\($0.version)" },
                pluginsCharged: charged.map { "\($0.plugin.name)@\($0.plugin.version)" },
                request: RecordedRequest(job),
                answer: Self.recorded(answer.body, answer.digest, note: "the answer the client got"),
                reference: Self.recorded(
                    reference.body, reference.digest,
                    note: "decode-then-compute: no kernel, rule or compressor hook (an .eddy file's plugin "
                        + "encodings still decode with their plugin's code)"),
                alone: Self.recorded(
                    aloneBody, aloneDigest,
                    note: "the built-in kernels and this plugin's kernels, rules and compressor hooks alone "
                        + "(no other plugin's)"))
            let saved = saveRecord(named: name, ReplyJSON.encode(record))
            let cause =
                "wrong answer: with its code alone, differs from decode-then-compute"
                + (query.isEmpty ? "" : " on \(query)") + lines + (saved != nil ? " (record \(name))" : "")
            if host.quarantine(hash: plugin.contentHash, plugin: "\(plugin.name)@\(plugin.version)", cause: cause) {
                metrics.quarantines.increment()
                keepCrashBundle(timedOut: false, cause: cause, site: nil, job: job, plugins: [plugin])
            }
            watcher.reload(plugin.file)
            logger.error(
                "plugin quarantined",
                metadata: [
                    "plugin": "\(PluginHost.escaped(plugin.name))@\(PluginHost.escaped(plugin.version))",
                    "cause": "\(PluginHost.escaped(cause))",
                    "record": "\(PluginHost.escaped(saved ?? "not saved"))",
                ])
        }
        pool?.retire(loading: Set(charged.map(\.plugin.contentHash)))
    }

    /// The largest share of each answer a record keeps.
    static let recordedBytes = 64 << 10

    static func recorded(_ body: [UInt8], _ digest: ResultDigest, note: String) -> RecordedAnswer {
        RecordedAnswer(
            note: note, digest: digest.record, bodyBytes: body.count,
            body: bounded(String(decoding: body, as: UTF8.self), limit: recordedBytes),
            truncated: body.count > recordedBytes)
    }

    /// `text` cut to at most `limit` bytes, at a character boundary.
    static func bounded(_ text: String, limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var bytes = Array(text.utf8.prefix(limit))
        while let last = bytes.last, last & 0xC0 == 0x80 { bytes.removeLast() }
        if bytes.last.map({ $0 >= 0xC0 }) == true { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func excerpt(_ body: [UInt8], limit: Int) -> String {
        bounded(String(decoding: body.prefix(limit + 4), as: UTF8.self), limit: limit)
    }

    /// Writes a record (mode 0600, a new file, never through a link) into the private-copies directory
    /// when that directory is this user's and closed to others (search alone allowed), as the host checks it.
    /// The path, or nil.
    func saveRecord(named name: String, _ bytes: [UInt8]) -> String? {
        let directory = host.shadowDirectory
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dirfd >= 0 else { return nil }
        defer { close(dirfd) }
        var st = stat()
        guard fstat(dirfd, &st) == 0, st.st_uid == geteuid(), st.st_mode & 0o066 == 0 else { return nil }
        let fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard PluginFileIO.writeFully(fd, bytes) else {
            unlinkat(dirfd, name, 0)
            return nil
        }
        return directory + "/" + name
    }
}
