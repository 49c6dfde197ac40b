import CEddyHost
import Dispatch
@_spi(Host) import EddyHost
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
        let socket: Int32
        let pageFD: Int32
        let page: UnsafeMutableRawPointer
    }

    enum Outcome {
        case reply(status: Int, body: [UInt8])
        /// The worker died: how (signal, exit status) and what plugin code it was running, if any.
        case died(cause: String, site: String?)
        case timedOut(site: String?)
        case cancelled
        /// The worker answered out of protocol (a wrong request id, a bad status, bytes past its
        /// reply): plugin code wrote to its socket. It is replaced; nothing it sent is used. `site`
        /// is the plugin code that was running when it happened, if any.
        case protocolViolation(String, site: String?)
    }

    static let pageSize = 4096
    let executable: String
    let arguments: [String]
    let count: Int
    /// The largest reply accepted (the result limit and room for the rest of the response).
    let maxReplyBytes: Int
    private let idle = Mutex<[Worker]>([])
    let restarts = Atomic<Int>(0)

    /// Spawns `count` workers running `executable` with `arguments` (`worker` and its options).
    init(count: Int, executable: String, arguments: [String], maxReplyBytes: Int) throws {
        self.executable = executable
        self.arguments = arguments
        self.count = max(1, count)
        self.maxReplyBytes = maxReplyBytes
        for _ in 0..<self.count {
            let w = try spawn()
            idle.withLock { $0.append(w) }
        }
    }

    struct SpawnFailure: Error, CustomStringConvertible { var description: String }

    func spawn() throws -> Worker {
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
        // The worker's socket is its descriptor 3, the shared page its 4; its standard error is the
        // server's (a crash line lands in the server's log).
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(
                executable,
                arguments + [
                    "--socket-fd", "3", "--blame-fd", "4",
                    "--blame-size", String(Self.pageSize),
                    "--parent", String(getpid()),
                ],
                descriptors: [(fds[1], 3), (pageFD, 4)], newProcessGroup: true)
            close(fds[1])
        } catch {
            close(fds[0]); close(fds[1]); munmap(page, Self.pageSize); close(pageFD)
            throw SpawnFailure(description: "\(error)")
        }
        return Worker(pid: pid, socket: fds[0], pageFD: pageFD, page: page)
    }

    /// The plugin code the worker marked last, or nil. The page is the worker's to write: read at
    /// most its size, control characters dropped.
    func site(_ w: Worker) -> String? {
        let bytes = UnsafeRawBufferPointer(start: w.page, count: Self.pageSize - 1)
        let text = String(
            decoding: bytes.prefix { $0 != 0 }.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 },
            as: UTF8.self)
        return text.isEmpty ? nil : text
    }

    /// An idle worker that is still alive. Idle workers that died (killed from outside) are reaped and
    /// replaced first, all of them, so that none lingers as a zombie.
    private func takeIdle() -> Worker? {
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
            _ = killAndReap(w)
            _ = replace(w, outcome: .cancelled)
        }
        return idle.withLock { $0.popLast() }
    }

    /// Runs one request on an idle worker and waits for its reply, its death, the deadline
    /// (`deadline`, monotonic seconds) or the client's going away. Blocks: call it off the event loops,
    /// holding one of `count` evaluation slots.
    /// `request` must be a ``WorkerRequest`` carrying `id`; the reply must echo it.
    /// `descriptor` (when not negative) is the job's open file, passed with the request (SCM_RIGHTS).
    func run(_ request: [UInt8], descriptor: Int32 = -1, id: UInt64, deadline: Double, clientGone: () -> Bool)
        -> Outcome
    {
        guard let w = takeIdle() else {
            return .died(cause: "found no idle worker", site: nil)
        }
        w.page.storeBytes(of: 0, as: UInt8.self)
        do {
            try Frames.write(w.socket, request, descriptor: descriptor)
        } catch {
            return replace(w, outcome: .died(cause: exitCause(w), site: site(w)))
        }
        var reader = Frames.Reader(limit: maxReplyBytes)
        var lastLivenessCheck = now()
        while true {
            var pfd = pollfd(fd: w.socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 50)
            if ready > 0 {
                switch reader.receive(from: w.socket) {
                case .more:
                    break
                case .closed:
                    let site = site(w)
                    return replace(w, outcome: .died(cause: exitCause(w), site: site))
                case .trailing:
                    let site = site(w)
                    _ = killAndReap(w)
                    return replace(w, outcome: .protocolViolation("bytes after its reply", site: site))
                case .tooLarge:
                    let site = site(w)
                    _ = killAndReap(w)
                    return replace(
                        w, outcome: .protocolViolation("a reply larger than \(maxReplyBytes) bytes", site: site))
                case .done(let reply):
                    // Exactly one reply, for this request: anything else is plugin code on the socket.
                    var extra = pollfd(fd: w.socket, events: Int16(POLLIN), revents: 0)
                    let status = reply.count >= 10 ? Int(reply[8]) | Int(reply[9]) << 8 : 0
                    let echoed =
                        reply.count >= 10
                        ? reply[0..<8].enumerated().reduce(UInt64(0)) {
                            $0 | UInt64($1.element) << (8 * UInt64($1.offset))
                        } : 0
                    if echoed != id || !(200...599).contains(status) || poll(&extra, 1, 0) > 0 {
                        // The worker's own code writes only when no plugin code runs: a mark on the
                        // page now names who wrote.
                        let site = site(w)
                        _ = killAndReap(w)
                        return replace(
                            w,
                            outcome: .protocolViolation(
                                echoed != id
                                    ? "a reply to another request"
                                    : !(200...599).contains(status)
                                        ? "status \(status)" : "bytes after its reply", site: site))
                    }
                    idle.withLock { $0.append(w) }
                    return .reply(status: status, body: Array(reply[10...]))
                }
            }
            if ready < 0 && errno != EINTR {
                let site = site(w)
                _ = killAndReap(w)
                return replace(w, outcome: .died(cause: "its socket failed", site: site))
            }
            // A process the plugin started may hold the socket open after the worker died.
            if now() - lastLivenessCheck > 0.2 {
                lastLivenessCheck = now()
                if eddy_has_exited(w.pid) == 1 {
                    let site = site(w)
                    return replace(w, outcome: .died(cause: Self.describe(killAndReap(w)), site: site))
                }
            }
            if clientGone() {
                _ = killAndReap(w)
                return replace(w, outcome: .cancelled)
            }
            if now() > deadline {
                let site = site(w)
                _ = killAndReap(w)
                return replace(w, outcome: .timedOut(site: site))
            }
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
    private func killAndReap(_ w: Worker) -> Int32 {
        kill(-w.pid, SIGKILL)
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
        var status: Int32 = 0
        while waitpid(w.pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// Releases a dead worker's resources and starts its replacement. The caller has reaped it (every
    /// path does, through `killAndReap` or `exitCause`), so that no zombie is left.
    private func replace(_ w: Worker, outcome: Outcome) -> Outcome {
        close(w.socket)
        munmap(w.page, Self.pageSize)
        close(w.pageFD)
        restarts.add(1, ordering: .relaxed)
        if let fresh = try? spawn() { idle.withLock { $0.append(fresh) } }
        return outcome
    }

    /// Ends every idle worker (they exit when their socket closes).
    func shutdown() {
        let all = idle.withLock { w -> [Worker] in
            defer { w.removeAll() }
            return w
        }
        for w in all {
            close(w.socket)  // the worker exits when its socket closes
            for _ in 0..<200 where eddy_has_exited(w.pid) == 0 { usleep(5_000) }
            _ = killAndReap(w)  // and anything a plugin left running in its group
            munmap(w.page, Self.pageSize)
            close(w.pageFD)
        }
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
