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

/// One request on a worker: sending it, waiting for the reply, and what follows a failure.
extension WorkerPool {
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
    func killAndReap(_ w: Worker) -> Int32 {
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

    func reap(_ w: Worker) -> Int32 {
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
    func replace(_ w: Worker, outcome: Outcome) -> Outcome {
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
}
