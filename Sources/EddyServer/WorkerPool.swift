import CDispatch
import CEddyHost
import CNIOLinux
import Dispatch
@_spi(Host) import EddyHost
import EddyIO
import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The worker processes of a supervising `eddy serve`: each is a fresh `eddy worker` (posix_spawn,
/// never a fork of this threaded process) connected by a socket pair, with a page of shared memory
/// in which it marks the plugin code it is running. One request per worker at a time; a worker that
/// dies, overruns its deadline or loses its client is killed and replaced.
final class WorkerPool: Sendable {
    struct Worker: @unchecked Sendable {  // the page pointer is only read by the thread that owns the worker
        let pid: pid_t
        /// Its socket: requests written there, replies read by an event loop.
        let link: WorkerLink
        let pageFD: Int32
        let page: UnsafeMutableRawPointer
        /// Every plugin build loaded into it since it was spawned: their code (constructors,
        /// registration, kernels) has run in it, and a thread one of them started may still be there.
        var loaded: [WorkerRequest.Plugin] = []
        /// Requests it has answered: the CPU watch measures one idle spell at a time.
        var served = 0
    }

    enum Outcome: Sendable {
        /// `evidence`: what a request that asked for a shadow check's evidence got (see ``WorkerRequest/Check``).
        case reply(status: Int, body: [UInt8], evidence: ShadowEvidence? = nil)
        /// The worker died: how (signal, exit status) and what plugin code it was running, if any.
        /// `suspects`: when it died outside plugin code, of a crash (not killed from outside), the
        /// plugin builds whose code had run in it since it was spawned (see ``suspects(_:)``).
        case died(cause: String, site: String?, suspects: [WorkerRequest.Plugin] = [])
        case timedOut(site: String?)
        case cancelled
        /// The worker answered out of protocol (a wrong request id, a bad status, bytes past its
        /// reply): plugin code wrote to its socket. It is replaced; nothing it sent is used. `site`
        /// is the plugin code that was running when it happened, if any.
        case protocolViolation(String, site: String?)
    }

    /// The shared page: its first half holds the plugin call running now (the SDK's mirror), its
    /// second the list of plugin calls that have run in the worker (see `PluginCallSite.recordRuns`).
    static let pageSize = 4096
    let executable: String
    let arguments: [String]
    let count: Int
    /// The largest reply accepted (the result limit and room for the rest of the response).
    let maxReplyBytes: Int
    private let idle = Mutex<[Worker]>([])
    /// Workers running a request, by process id, until they are reaped: a stop ends them too.
    private let busy = Mutex<Set<pid_t>>([])
    /// Content hashes of quarantined builds: a worker that loaded one is not used again.
    private let condemned = Mutex<Set<String>>([])
    /// Plugins with a build in canary (see Canary.swift), with the builds of each that serve (the serving
    /// one and the one in canary): a request naming one of them goes to a worker that loaded no other
    /// build of it (see ``takeIdle(for:)``).
    private let apart = Mutex<[String: Set<String>]>([:])
    let restarts = Atomic<Int>(0)
    /// The loops that read workers' replies (the server's own: see ``WorkerLink``), taken in turn.
    private let loops: [any EventLoop]
    private let nextLoop = Atomic<Int>(0)
    /// Every live worker's link, for the tick that wakes requests waiting on a loop for a reply.
    private let links = Mutex<[pid_t: WorkerLink]>([:])
    private let ticker = Mutex<RepeatedTask?>(nil)
    /// The CPU watch and orphan sweep (see ``watch(charge:)``) runs while this is false.
    private let stopping = Atomic<Bool>(false)
    private let watching = Atomic<Bool>(false)
    /// Who is told when an idle worker is charged to plugin builds (see ``watch(charge:)``).
    private let charge = Mutex<(@Sendable (_ cause: String, _ suspects: [WorkerRequest.Plugin]) -> Void)?>(nil)
    /// Whether this process adopts what a worker's plugin left behind (PR_SET_CHILD_SUBREAPER).
    let subreaper: Bool

    /// Spawns `count` workers running `executable` with `arguments` (`worker` and its options).
    init(count: Int, executable: String, arguments: [String], maxReplyBytes: Int) throws {
        self.executable = executable
        self.arguments = arguments
        self.count = max(1, count)
        self.maxReplyBytes = maxReplyBytes
        // A process a plugin started in a session of its own outlives its worker's process group: as
        // the subreaper, this process inherits it when the worker dies, and ends it (see `sweepOrphans`).
        self.subreaper = eddy_become_subreaper() == 0
        self.loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
        for _ in 0..<self.count {
            let w = try spawn()
            idle.withLock { $0.append(w) }
        }
        // A request waiting on a loop for its reply is woken this often without one, to look at the
        // worker, the client and the deadline (as a thread waiting for a reply wakes every
        // `pollMilliseconds`).
        let tick = Int64(Self.pollMilliseconds)
        let task = loops.first?.scheduleRepeatedTask(initialDelay: .milliseconds(tick), delay: .milliseconds(tick)) {
            [weak self] _ in
            guard let self else { return }
            for link in self.links.withLock({ Array($0.values) }) { link.tick() }
        }
        ticker.withLock { $0 = task }
    }

    struct SpawnFailure: Error, CustomStringConvertible { var description: String }

    /// - Parameter loop: the loop to read its replies (by default the next in turn).
    func spawn(on loop: (any EventLoop)? = nil) throws -> Worker {
        var fds: [Int32] = [-1, -1]
        guard eddy_socketpair(&fds) == 0 else {
            throw SpawnFailure(description: "socketpair: \(String(cString: strerror(errno)))")
        }
        let pageFD = eddy_memfd("eddy-worker-blame", Self.pageSize)
        guard pageFD >= 0, let page = mmap(nil, Self.pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, pageFD, 0),
            page != MAP_FAILED
        else {
            close(fds[0]); close(fds[1])
            if pageFD >= 0 { close(pageFD) }
            throw SpawnFailure(description: "shared page: \(String(cString: strerror(errno)))")
        }
        // The worker's socket is its descriptor 3, the shared page its 4; its standard error reaches the
        // server's log line by line, prefixed and escaped (plugin code cannot forge the server's lines).
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(
                executable,
                arguments + [
                    "--socket-fd", "3", "--blame-fd", "4",
                    "--blame-size", String(Self.pageSize),
                    "--parent", String(getpid()),
                ],
                descriptors: [(fds[1], 3), (pageFD, 4)], newProcessGroup: true, relayStandardError: true)
            close(fds[1])
        } catch {
            close(fds[0]); close(fds[1]); munmap(page, Self.pageSize); close(pageFD)
            throw SpawnFailure(description: "\(error)")
        }
        let turn = UInt(bitPattern: nextLoop.wrappingAdd(1, ordering: .relaxed).oldValue)
        let reader =
            loop
            ?? (loops.isEmpty ? MultiThreadedEventLoopGroup.singleton.next() : loops[Int(turn % UInt(loops.count))])
        let link: WorkerLink
        do {
            link = try WorkerLink(socket: fds[0], eventLoop: reader, limit: maxReplyBytes)
        } catch {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            ChildProcess.reaped(pid)
            munmap(page, Self.pageSize); close(pageFD)
            throw SpawnFailure(description: "\(error)")
        }
        links.withLock { $0[pid] = link }
        return Worker(pid: pid, link: link, pageFD: pageFD, page: page)
    }

    /// The plugin code the worker marked last, or nil. The page is the worker's to write: read at
    /// most its size, control characters dropped.
    func site(_ w: Worker) -> String? {
        let bytes = UnsafeRawBufferPointer(start: w.page, count: Self.pageSize / 2 - Self.hostBytes)
        let text = String(
            decoding: bytes.prefix { $0 != 0 }.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 },
            as: UTF8.self)
        return text.isEmpty ? nil : text
    }

    /// The plugin builds a worker that died (or misbehaved) outside plugin code is charged with: of
    /// those loaded into it since it was spawned, the ones whose kernels, rules or compressor hooks
    /// ran in it (listed by the worker on the page's second half); all of them when none did or the
    /// list is full (their registration ran there too, and could have left a thread).
    /// The list is written in the worker, where plugin code could forge it; it can only narrow the
    /// blame to plugins that were loaded there.
    func suspects(_ w: Worker) -> [WorkerRequest.Plugin] {
        let half = Self.pageSize / 2
        let area = UnsafeRawBufferPointer(start: w.page + half, count: half)
        guard area[half - 1] != 1 else { return w.loaded }
        let lines = area.prefix { $0 != 0 && $0 != 1 }.split(separator: UInt8(ascii: "\n")).map {
            String(decoding: $0, as: UTF8.self)
        }
        let ran = w.loaded.filter { p in
            lines.contains { line in
                (line.hasPrefix("kernel '") || line.hasPrefix("rule '") || line.hasPrefix("compressor hook '"))
                    && line.hasSuffix("' of plugin \(p.name)@\(p.version)")
            }
        }
        return ran.isEmpty ? w.loaded : ran
    }

    /// The build whose code started the thread a crash happened on, when the crash handler named one
    /// ("a thread started in … of plugin NAME@VERSION", see threads.c) and the worker loaded it.
    static func startedBy(_ site: String, among loaded: [WorkerRequest.Plugin]) -> WorkerRequest.Plugin? {
        guard site.hasPrefix("a thread started in ") else { return nil }
        return loaded.first { site.hasSuffix(" of plugin \($0.name)@\($0.version)") }
    }

    /// Bytes at the end of the page's first half that are the host's, not the plugin-call mirror's.
    static let hostBytes = 8

    /// How long the supervisor waits for a reply before it looks at the worker, the client and the
    /// deadline again.
    static let pollMilliseconds = 50

    /// What the worker's crash handler said of its crash (see `eddy_crash_report_engine_flag`): "E", an
    /// abort on a thread doing the engine's own work outside plugin code (a request or a batch: out of
    /// `--worker-memory`, say), for which no plugin is charged, whatever code of theirs ran in the
    /// worker before; "F", a read of a mapped input file cut short under its mapping; else 0.
    func crashFlag(_ w: Worker) -> UInt8 {
        w.page.load(fromByteOffset: Self.pageSize / 2 - 1, as: UInt8.self)
    }

    /// Whether a worker's death is one its plugins can be charged with: a crash or an exit of its own,
    /// not a SIGKILL (sent from outside: the kernel's OOM killer, an operator).
    static func isCrash(_ cause: String) -> Bool {
        (cause.hasPrefix("crashed with signal") && !cause.contains("(SIGKILL")) || cause.hasPrefix("exited with status")
    }

    /// The outcome for a worker that died with `cause`: the plugin code it was running, or when none
    /// was marked, the builds that had run code in it.
    private func died(_ w: Worker, cause: String, site: String?) -> Outcome {
        // A mapped input file cut short under a kernel that read it is nobody's code's fault: the
        // request gets the file's error (named by the caller), no plugin is charged.
        let flag = crashFlag(w)
        if flag == UInt8(ascii: "F") {
            return replace(w, outcome: .died(cause: cause, site: nil, suspects: []))
        }
        // A thread plugin code started crashed (the crash handler names who started it): that plugin
        // answers for it, as for any code of its that ran here, and the request may run again.
        if let site, let started = Self.startedBy(site, among: w.loaded) {
            return replace(w, outcome: .died(cause: "\(cause) on \(site)", site: nil, suspects: [started]))
        }
        let engine = site == nil && flag == UInt8(ascii: "E")
        let suspects = site == nil && Self.isCrash(cause) && !engine ? suspects(w) : []
        // An abort in the engine's own work is most often an allocation that the address-space limit
        // refused (the Swift runtime aborts when malloc fails).
        let said =
            engine && cause.contains("(SIGABRT") ? cause + " in the engine's own work (out of --worker-memory?)" : cause
        return replace(w, outcome: .died(cause: said, site: site, suspects: suspects))
    }

    /// An idle worker that is still alive. Idle workers that died (killed from outside) are reaped and
    /// replaced first, all of them, so that none lingers as a zombie.
    private func takeIdle() -> Worker? {
        reapDeadIdle()
        return idle.withLock { workers in
            guard let w = workers.popLast() else { return nil }
            busy.withLock { _ = $0.insert(w.pid) }
            return w
        }
    }

    /// Keeps the builds of the plugins named apart: from now on a request that names one goes to a
    /// worker that loaded no other build of it. Two builds of one plugin (same Swift module, same type
    /// names) are not made to share a process while both serve — a canary and the build it may replace.
    /// `builds`: plugin name → the content hashes of its builds in use.
    func keepApart(_ builds: [String: Set<String>]) {
        apart.withLock { if $0 != builds { $0 = builds } }
    }

    /// An idle worker for a request naming `plugins`: with no plugin kept apart among them, any (see
    /// ``takeIdle()``); else one that loaded no other build of those plugins — when every idle worker
    /// did, one is replaced by a fresh worker, which is then taken.
    private func takeIdle(for plugins: [WorkerRequest.Plugin]) -> Worker? {
        let builds = apart.withLock { $0 }
        let kept = builds.isEmpty ? [] : plugins.filter { builds[$0.name] != nil }
        guard !kept.isEmpty else { return takeIdle() }
        func fits(_ w: Worker) -> Bool {
            w.loaded.allSatisfy { l in kept.allSatisfy { $0.name != l.name || $0.hash == l.hash } }
        }
        // A worker that loaded a build no longer in use (a canary replaced by a newer one) is replaced
        // first, rather than one another request needs.
        func stale(_ w: Worker) -> Bool {
            w.loaded.contains { l in builds[l.name].map { inUse in !inUse.contains(l.hash) } ?? false }
        }
        reapDeadIdle()
        for _ in 0..<2 {
            let (taken, other) = idle.withLock { workers -> (Worker?, Worker?) in
                if let k = workers.lastIndex(where: fits) {
                    let w = workers.remove(at: k)
                    busy.withLock { _ = $0.insert(w.pid) }
                    return (w, nil)
                }
                guard let k = workers.firstIndex(where: stale) ?? workers.indices.last else { return (nil, nil) }
                let w = workers.remove(at: k)
                busy.withLock { _ = $0.insert(w.pid) }
                return (nil, w)
            }
            if let taken { return taken }
            guard let other else { return nil }
            // Its replacement joins the idle workers and loaded nothing yet.
            _ = killAndReap(other)
            _ = replace(other, outcome: .cancelled)
        }
        return takeIdle()
    }

    /// An idle worker for a request naming `plugins`, preferably one whose replies are read by the
    /// calling thread's loop (then the reply wakes the loop the request's task runs on, and no other);
    /// nil when there is none, when an idle worker died or when one of `plugins` is kept apart (reaping
    /// or replacing a worker may block: ``takeIdle(for:)`` does that off the loops).
    private func takeIdleAlive(for plugins: [WorkerRequest.Plugin]) -> Worker? {
        let builds = apart.withLock { $0 }
        guard builds.isEmpty || !plugins.contains(where: { builds[$0.name] != nil }) else { return nil }
        return idle.withLock { workers in
            guard !workers.contains(where: { eddy_has_exited($0.pid) == 1 }) else { return nil }
            guard let k = workers.lastIndex(where: { $0.link.eventLoop.inEventLoop }) ?? workers.indices.last else {
                return nil
            }
            let w = workers.remove(at: k)
            busy.withLock { _ = $0.insert(w.pid) }
            return w
        }
    }

    /// Runs one request on an idle worker and waits for its reply, its death, the deadline
    /// (`deadline`, monotonic seconds) or the client's going away. Blocks: call it off the event loops,
    /// holding one of `count` evaluation slots.
    /// `request` must be a ``WorkerRequest`` carrying `id`; the reply must echo it. `plugins` are the
    /// builds it names: the worker is charged with them from now on (see ``suspects(_:)``).
    /// `descriptor` (when not negative) is the job's open file, passed with the request (SCM_RIGHTS).
    func run(
        _ request: [UInt8], descriptor: Int32 = -1, id: UInt64, plugins: [WorkerRequest.Plugin] = [],
        deadline: Double, clientGone: () -> Bool
    ) -> Outcome {
        guard var w = takeIdle(for: plugins) else {
            return .died(cause: "found no idle worker", site: nil)
        }
        if let failed = send(request, descriptor: descriptor, plugins: plugins, to: &w) { return failed() }
        var checked = now()
        while true {
            switch progress(&w, id: id, deadline: deadline, checked: &checked, clientGone: clientGone) {
            case .waiting: w.link.wait(milliseconds: Self.pollMilliseconds)
            case .answered(let outcome): return outcome
            case .ending(let end): return end()
            }
        }
    }

    /// ``run(_:descriptor:id:plugins:deadline:clientGone:)`` from a task on an event loop, without a
    /// thread of its own: the request is written here, and the task waits suspended until the loop
    /// reading the worker's socket has the reply (or the pool's tick wakes it to look at the worker, the
    /// client and the deadline). What may block — reaping or replacing a worker, waiting for a dying
    /// one, a request too large to write at once — runs on a thread off the loops.
    /// - Parameters:
    ///   - clientGone: asked off the loops (when the request is run by a thread after all).
    ///   - clientGoneOnLoop: asked on a loop, where no future may be waited for.
    func run(
        _ request: [UInt8], descriptor: Int32 = -1, id: UInt64, plugins: [WorkerRequest.Plugin] = [],
        deadline: Double, clientGone: @escaping @Sendable () -> Bool,
        clientGoneOnLoop: @escaping @Sendable () async -> Bool
    ) async -> Outcome {
        guard request.count <= Self.requestBytesWrittenOnLoop, var w = takeIdleAlive(for: plugins) else {
            return await offLoop {
                self.run(
                    request, descriptor: descriptor, id: id, plugins: plugins, deadline: deadline,
                    clientGone: clientGone)
            }
        }
        if let failed = send(request, descriptor: descriptor, plugins: plugins, to: &w) { return await offLoop(failed) }
        var checked = now()
        while true {
            switch progress(&w, id: id, deadline: deadline, checked: &checked, clientGone: { false }) {
            case .waiting:
                if await clientGoneOnLoop() {
                    let worker = w
                    return await offLoop {
                        _ = self.killAndReap(worker)
                        return self.replace(worker, outcome: .cancelled)
                    }
                }
                await w.link.wait()
            case .answered(let outcome): return outcome
            case .ending(let end): return await offLoop(end)
            }
        }
    }

    /// Requests up to this size are written from an event loop: they fit the socket's buffer, which
    /// the worker has emptied (it read the last request whole before it answered).
    static let requestBytesWrittenOnLoop = 16 << 10

    private func offLoop(_ body: @escaping @Sendable () -> Outcome) async -> Outcome {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: body()) }
        }
    }

    /// Where a request stands after a look at its worker's link (see ``progress(_:id:deadline:checked:clientGone:)``).
    private enum Progress {
        case waiting
        /// The worker answered and is back among the idle ones.
        case answered(Outcome)
        /// The request is over and the worker must be reaped or replaced: work that may block.
        case ending(@Sendable () -> Outcome)
    }

    /// Marks the worker as running `plugins`' code and writes the request; nil, or the ending when the
    /// worker could not take it.
    private func send(
        _ request: [UInt8], descriptor: Int32, plugins: [WorkerRequest.Plugin], to w: inout Worker
    ) -> (@Sendable () -> Outcome)? {
        w.page.storeBytes(of: 0, as: UInt8.self)
        for p in plugins where !w.loaded.contains(where: { $0.hash == p.hash }) { w.loaded.append(p) }
        do {
            try Frames.write(w.link.writeDescriptor, request, descriptor: descriptor)
            return nil
        } catch {
            let site = site(w)
            let w = w
            return { self.died(w, cause: self.exitCause(w), site: site) }
        }
    }

    /// Takes what the worker sent, if anything, and looks at the worker, the client and the deadline.
    private func progress(
        _ w: inout Worker, id: UInt64, deadline: Double, checked: inout Double, clientGone: () -> Bool
    ) -> Progress {
        let worker = w
        switch w.link.take() {
        case .more:
            break
        case .closed:
            let site = site(w)
            return .ending { self.died(worker, cause: self.exitCause(worker), site: site) }
        case .trailing:
            return violation(w, "bytes after its reply")
        case .tooLarge:
            return violation(w, "a reply larger than \(maxReplyBytes) bytes")
        case .done(let reply):
            // Exactly one reply, for this request: anything else is plugin code on the socket.
            let parsed = try? WorkerReply(decoding: reply)
            let status = parsed?.status ?? 0
            if parsed?.id != id || !(200...599).contains(status) || w.link.hasMore {
                // The worker's own code writes only when no plugin code runs: a mark on the page now
                // names who wrote.
                return violation(
                    w,
                    parsed == nil
                        ? "a malformed reply"
                        : parsed?.id != id
                            ? "a reply to another request"
                            : !(200...599).contains(status) ? "status \(status)" : "bytes after its reply")
            }
            w.served += 1
            let answer = Outcome.reply(status: status, body: parsed?.body ?? [], evidence: parsed?.evidence)
            let served = w
            if isTainted(w) {
                return .ending {
                    self.release(served); return answer
                }
            }
            release(w)
            return .answered(answer)
        }
        // A process the plugin started may hold the socket open after the worker died.
        if now() - checked > 0.2 {
            checked = now()
            if eddy_has_exited(w.pid) == 1 {
                let site = site(w)
                return .ending { self.died(worker, cause: Self.describe(self.killAndReap(worker)), site: site) }
            }
        }
        if clientGone() {
            return .ending {
                _ = self.killAndReap(worker)
                return self.replace(worker, outcome: .cancelled)
            }
        }
        if now() > deadline {
            let site = site(w)
            return .ending {
                _ = self.killAndReap(worker)
                return self.replace(worker, outcome: .timedOut(site: site))
            }
        }
        return .waiting
    }

    /// A worker that answered out of protocol: killed and replaced, its answer dropped.
    private func violation(_ w: Worker, _ what: String) -> Progress {
        let site = site(w)
        return .ending {
            _ = self.killAndReap(w)
            return self.replace(w, outcome: .protocolViolation(what, site: site))
        }
    }

    /// How the worker ended (it closed its socket or died). A dying worker gets a moment; one still
    /// alive after it is killed ("stopped answering").
    private func exitCause(_ w: Worker) -> String {
        var exited = false
        for _ in 0..<200 {
            if eddy_has_exited(w.pid) != 0 { exited = true; break }
            usleep(5_000)
        }
        let status = killAndReap(w)
        return exited ? Self.describe(status) : "stopped answering"
    }

    /// Kills the worker's process group — whatever the plugin started goes with it — then reaps the
    /// worker. In that order: until the worker is reaped its id stays reserved, so the group id cannot
    /// belong to some other process yet.
    /// The worker itself is killed too: plugin code can move it out of its group (`setpgid`), and a
    /// reap of a worker nobody killed waited for ever (the request and the server's stop with it).
    private func killAndReap(_ w: Worker) -> Int32 {
        kill(-w.pid, SIGKILL)
        kill(w.pid, SIGKILL)
        return reap(w)
    }

    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal != 0 && signal != 0x7f {
            // SIGBUS outside plugin code is almost always a mapped .eddy file cut short while it was read.
            let hint = signal == SIGBUS ? "; a mapped .eddy file truncated while it was read?" : ""
            return "crashed with signal \(signal) (\(signalName(signal))\(hint))"
        }
        return "exited with status \((status >> 8) & 0xff)"
    }

    private func reap(_ w: Worker) -> Int32 {
        // Out of the busy set first, under its lock: a stop signals the groups of the workers in it,
        // which are then not reaped yet (their ids not free for reuse).
        busy.withLock { _ = $0.remove(w.pid) }
        var status: Int32 = 0
        while waitpid(w.pid, &status, 0) < 0 && errno == EINTR {}
        ChildProcess.reaped(w.pid)
        return status
    }

    /// Puts a worker that answered back among the idle ones — unless it loaded a build quarantined
    /// meanwhile: whatever that build left in it goes with it, and a fresh worker takes its place.
    private func release(_ w: Worker) {
        if isTainted(w) {
            _ = killAndReap(w)
            _ = replace(w, outcome: .cancelled)
            return
        }
        busy.withLock { _ = $0.remove(w.pid) }
        idle.withLock { $0.append(w) }
    }

    /// Whether the worker loaded a build quarantined since (see ``release(_:)``).
    private func isTainted(_ w: Worker) -> Bool {
        condemned.withLock { c in !c.isEmpty && w.loaded.contains { c.contains($0.hash) } }
    }

    /// Retires every worker that loaded one of `hashes` (builds just quarantined): idle ones now, busy
    /// ones when they answer. Their replacements load only the builds still in the plugin set.
    func retire(loading hashes: Set<String>) {
        condemned.withLock { $0.formUnion(hashes) }
        let gone = idle.withLock { workers -> [Worker] in
            var out: [Worker] = []
            workers.removeAll { w in
                guard w.loaded.contains(where: { hashes.contains($0.hash) }) else { return false }
                out.append(w)
                return true
            }
            return out
        }
        for w in gone {
            _ = killAndReap(w)
            _ = replace(w, outcome: .cancelled)
        }
    }

    /// Releases a dead worker's resources and starts its replacement. The caller has reaped it (every
    /// path does, through `killAndReap` or `exitCause`), so that no zombie is left.
    private func replace(_ w: Worker, outcome: Outcome) -> Outcome {
        links.withLock { _ = $0.removeValue(forKey: w.pid) }
        w.link.close()
        munmap(w.page, Self.pageSize)
        close(w.pageFD)
        restarts.add(1, ordering: .relaxed)
        if !stopping.load(ordering: .relaxed), let fresh = try? spawn(on: w.link.eventLoop) {
            idle.withLock { $0.append(fresh) }
        }
        return outcome
    }

    // MARK: - Watching idle workers and what plugins leave behind

    /// An idle worker using more than this share of a core over ``cpuWindow`` seconds is running code
    /// nobody asked for (a thread a kernel left spinning): it is replaced. An idle worker uses next to
    /// nothing; a quarter (not half) still finds a spinner that shares two busy cores with a test suite.
    static let idleCPUShare = 0.25
    static let cpuWindow = 2.0

    /// Starts a thread that, once a second, measures the CPU time of each idle worker (utime + stime
    /// in /proc/PID/stat, every thread of it and of the processes it started) over its idle spell,
    /// replaces one that keeps a core busy while it has no request, or that died while it had none —
    /// calling `charge` with what happened and the builds charged with it (see ``suspects(_:)``) — and
    /// ends processes plugins left behind (see `sweepOrphans`).
    func watch(charge: @escaping @Sendable (_ cause: String, _ suspects: [WorkerRequest.Plugin]) -> Void) {
        guard !watching.exchange(true, ordering: .relaxed) else { return }
        self.charge.withLock { $0 = charge }
        let ticksPerSecond = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        Thread.detachNewThread { [self] in
            // pid -> (answered requests, CPU ticks, time) at the start of the current window.
            var windows: [pid_t: (served: Int, ticks: Int, time: Double)] = [:]
            while !stopping.load(ordering: .relaxed) {
                usleep(1_000_000)
                if stopping.load(ordering: .relaxed) { break }
                reapDeadIdle()
                let workers = idle.withLock { $0 }
                var seen: [pid_t: (served: Int, ticks: Int, time: Double)] = [:]
                let trees = Self.treeTicks(of: Set(workers.map(\.pid)))
                for w in workers {
                    guard let ticks = trees[w.pid] else { continue }
                    let t = now()
                    guard let start = windows[w.pid], start.served == w.served else {
                        seen[w.pid] = (w.served, ticks, t)
                        continue
                    }
                    let elapsed = t - start.time
                    guard elapsed >= Self.cpuWindow else {
                        seen[w.pid] = start
                        continue
                    }
                    let used = Double(ticks - start.ticks) / ticksPerSecond
                    seen[w.pid] = (w.served, ticks, t)
                    guard used > Self.idleCPUShare * elapsed, let spinning = takeIdle(w.pid, served: w.served) else {
                        continue
                    }
                    let suspects = suspects(spinning)
                    _ = killAndReap(spinning)
                    _ = replace(spinning, outcome: .cancelled)
                    seen[w.pid] = nil
                    charge(
                        "an idle worker kept \(Int((100 * used / elapsed).rounded()))% of a core busy for "
                            + "\(Int(elapsed.rounded())) s while it had no request (a thread left running?)", suspects)
                }
                windows = seen
                _ = sweepOrphans()
            }
        }
    }

    /// Reaps and replaces the idle workers that died (a thread a plugin left crashed while the worker
    /// had no request, or something killed it from outside); a crash is charged to the builds whose
    /// code ran in the worker (see ``suspects(_:)``), through the watch's `charge`.
    private func reapDeadIdle() {
        let dead = idle.withLock { workers -> [Worker] in
            var gone: [Worker] = []
            workers.removeAll { w in
                guard eddy_has_exited(w.pid) == 1 else { return false }
                gone.append(w)
                return true
            }
            return gone
        }
        for w in dead {
            let site = site(w)
            let cause = Self.describe(killAndReap(w))
            let started = site.flatMap { Self.startedBy($0, among: w.loaded) }
            let suspects = Self.isCrash(cause) ? started.map { [$0] } ?? suspects(w) : []
            _ = replace(w, outcome: .cancelled)
            if !suspects.isEmpty, let charge = charge.withLock({ $0 }) {
                charge(
                    started != nil
                        ? "an idle worker \(cause) on \(site ?? "")" : "an idle worker \(cause) outside plugin code",
                    suspects)
            }
        }
    }

    /// Takes the idle worker `pid` out of the pool if it is still idle in the same spell.
    private func takeIdle(_ pid: pid_t, served: Int) -> Worker? {
        idle.withLock { workers in
            guard let k = workers.firstIndex(where: { $0.pid == pid && $0.served == served }) else { return nil }
            let w = workers.remove(at: k)
            busy.withLock { _ = $0.insert(w.pid) }
            return w
        }
    }

    /// The CPU ticks (utime + stime, every thread) of each of `roots` and all its live descendants —
    /// a process a kernel started counts for its worker, in the worker's group or out of it.
    static func treeTicks(of roots: Set<pid_t>) -> [pid_t: Int] {
        guard !roots.isEmpty, let dir = opendir("/proc") else { return [:] }
        defer { closedir(dir) }
        var parent: [pid_t: pid_t] = [:]
        var ticks: [pid_t: Int] = [:]
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = pid_t(name), let stat = processStat(pid) else { continue }
            parent[pid] = stat.parent
            ticks[pid] = stat.cpuTicks
        }
        var total: [pid_t: Int] = [:]
        for (pid, own) in ticks {
            // Up the parent chain to a root, if any (bounded: a chain cannot be longer than the table).
            var at = pid
            for _ in 0...parent.count {
                if roots.contains(at) {
                    total[at, default: 0] &+= own
                    break
                }
                guard let up = parent[at], up > 1, up != at else { break }
                at = up
            }
        }
        return total
    }

    /// The fields of /proc/PID/stat used here.
    struct ProcessStat {
        var parent: pid_t
        var group: pid_t
        var session: pid_t
        var cpuTicks: Int
    }

    static func processStat(_ pid: pid_t) -> ProcessStat? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        // The command name (field 2) is in parentheses and may hold spaces or ')': fields resume after
        // the last ')'.
        guard let close = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buffer[(close + 1)..<n].split(separator: UInt8(ascii: " ")).map {
            String(decoding: $0, as: UTF8.self)
        }
        // state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt, majflt, cmajflt, utime, stime
        guard fields.count > 12, let parent = pid_t(fields[1]), let group = pid_t(fields[2]),
            let session = pid_t(fields[3]), let user = Int(fields[11]), let system = Int(fields[12])
        else { return nil }
        return ProcessStat(parent: parent, group: group, session: session, cpuTicks: user &+ system)
    }

    /// Ends and reaps the children of this process that a plugin left behind: as the subreaper it
    /// inherits the processes of a worker's group when the worker is reaped, and those a plugin started
    /// in a session of their own when their parent ends — whatever process group they moved to. The
    /// children it started itself (workers, probes: see `ChildProcess.isOwn`) are left alone.
    /// Returns how many it ended.
    @discardableResult
    func sweepOrphans() -> Int {
        guard subreaper, let dir = opendir("/proc") else { return 0 }
        defer { closedir(dir) }
        let me = getpid()
        var ended = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            // Workers and probes (started by ChildProcess) end through their own paths; anything else
            // whose parent this process is was adopted: a plugin started it, whatever group it joined.
            guard let pid = pid_t(name), pid != me, let stat = Self.processStat(pid), stat.parent == me,
                !ChildProcess.isOwn(pid)
            else { continue }
            kill(stat.group == pid ? -pid : pid, SIGKILL)
            var status: Int32 = 0
            for _ in 0..<200 where waitpid(pid, &status, WNOHANG) == 0 { usleep(5_000) }
            ended += 1
        }
        return ended
    }

    /// Ends every worker, with its process group: idle ones exit when their socket closes; busy ones
    /// (a request still running when the server stops) are killed, and their threads reap them.
    /// Then whatever a plugin started outside its worker's group is ended too (see `sweepOrphans`).
    func shutdown() {
        stopping.store(true, ordering: .relaxed)
        let all = idle.withLock { w -> [Worker] in
            defer { w.removeAll() }
            return w
        }
        busy.withLock { pids in
            for pid in pids {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
            }
        }
        ticker.withLock { $0?.cancel() }
        for w in all {
            links.withLock { _ = $0.removeValue(forKey: w.pid) }
            w.link.close()  // the worker exits when its socket closes
            for _ in 0..<200 where eddy_has_exited(w.pid) == 0 { usleep(5_000) }
            _ = killAndReap(w)  // and anything a plugin left running in its group
            munmap(w.page, Self.pageSize)
            close(w.pageFD)
        }
        // A child killed with its group is reparented here when its worker is reaped; a grandchild when
        // its parent is ended: a few rounds.
        for _ in 0..<5 where sweepOrphans() > 0 { usleep(20_000) }
    }
}

func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGSEGV: "SIGSEGV"
    case SIGBUS: "SIGBUS"
    case SIGILL: "SIGILL"
    case SIGFPE: "SIGFPE"
    case SIGABRT: "SIGABRT"
    case SIGTRAP: "SIGTRAP"
    case SIGKILL: "SIGKILL"
    default: "signal \(signal)"
    }
}
