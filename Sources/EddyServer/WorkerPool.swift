#if canImport(Glibc)
import Glibc
#endif
import CEddyHost
import Dispatch
import Synchronization

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
    }

    static let pageSize = 4096
    let executable: String
    let arguments: [String]
    let count: Int
    private let idle = Mutex<[Worker]>([])
    let restarts = Atomic<Int>(0)

    /// Spawns `count` workers running `executable` with `arguments` (`worker` and its options).
    init(count: Int, executable: String, arguments: [String]) throws {
        self.executable = executable
        self.arguments = arguments
        self.count = max(1, count)
        for _ in 0..<self.count {
            let w = try spawn()
            idle.withLock { $0.append(w) }
        }
    }

    struct SpawnFailure: Error, CustomStringConvertible { var description: String }

    func spawn() throws -> Worker {
        var fds: [Int32] = [-1, -1]
        guard eddy_socketpair(&fds) == 0 else { throw SpawnFailure(description: "socketpair: \(String(cString: strerror(errno)))") }
        let pageFD = eddy_memfd("eddy-worker-blame", Self.pageSize)
        guard pageFD >= 0, let page = mmap(nil, Self.pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, pageFD, 0),
              page != MAP_FAILED else {
            close(fds[0]); close(fds[1])
            if pageFD >= 0 { close(pageFD) }
            throw SpawnFailure(description: "shared page: \(String(cString: strerror(errno)))")
        }
        // The child's descriptors 3 and 4 come from copies numbered above them.
        let childSocket = eddy_dup_above(fds[1], 10)
        let childPage = eddy_dup_above(pageFD, 10)
        close(fds[1])
        defer { close(childSocket); close(childPage) }
        let argv = [executable] + arguments + ["--socket-fd", "3", "--blame-fd", "4", "--blame-size", String(Self.pageSize),
                                               "--parent", String(getpid())]
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for p in cArgs { free(p) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, childSocket, 3)
        posix_spawn_file_actions_adddup2(&actions, childPage, 4)
        // No Swift backtrace in workers: the crash line names the culprit, the supervisor reports it.
        var env: [UnsafeMutablePointer<CChar>?] = []
        var e = environ
        while let entry = e.pointee {
            if !String(cString: entry).hasPrefix("SWIFT_BACKTRACE=") { env.append(strdup(entry)) }
            e += 1
        }
        env.append(strdup("SWIFT_BACKTRACE=enable=no"))
        env.append(nil)
        defer { for p in env { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, cArgs, env)
        guard spawned == 0 else {
            close(fds[0]); munmap(page, Self.pageSize); close(pageFD)
            throw SpawnFailure(description: "cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        return Worker(pid: pid, socket: fds[0], pageFD: pageFD, page: page)
    }

    /// The plugin code the worker marked last, or nil.
    func site(_ w: Worker) -> String? {
        let text = String(cString: w.page.assumingMemoryBound(to: CChar.self))
        return text.isEmpty ? nil : text
    }

    /// Runs one request on an idle worker and waits for its reply, its death, the deadline
    /// (`deadline`, monotonic seconds) or the client's going away. Blocks: call it off the event loops,
    /// holding one of `count` evaluation slots.
    func run(_ request: [UInt8], deadline: Double, clientGone: () -> Bool) -> Outcome {
        guard let w = idle.withLock({ $0.popLast() }) else {
            return .died(cause: "found no idle worker", site: nil)
        }
        w.page.storeBytes(of: 0, as: UInt8.self)
        do {
            try Frames.write(w.socket, request)
        } catch {
            return replace(w, outcome: .died(cause: exitCause(w), site: site(w)))
        }
        while true {
            var pfd = pollfd(fd: w.socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 50)
            if ready > 0 {
                do {
                    let reply = try Frames.read(w.socket)
                    guard reply.count >= 2 else { throw Frames.Closed() }
                    idle.withLock { $0.append(w) }
                    return .reply(status: Int(reply[0]) | Int(reply[1]) << 8, body: Array(reply[2...]))
                } catch {
                    let site = site(w)
                    return replace(w, outcome: .died(cause: exitCause(w), site: site))
                }
            }
            if ready < 0 && errno != EINTR {
                return replace(w, outcome: .died(cause: "its socket failed", site: site(w)))
            }
            if clientGone() {
                kill(w.pid, SIGKILL)
                _ = reap(w)
                return replace(w, outcome: .cancelled)
            }
            if now() > deadline {
                let site = site(w)
                kill(w.pid, SIGKILL)
                _ = reap(w)
                return replace(w, outcome: .timedOut(site: site))
            }
        }
    }

    /// How the worker ended (it closed its socket or died).
    private func exitCause(_ w: Worker) -> String {
        // Give a dying worker a moment to be reaped; one that is still alive is killed.
        var status: Int32 = 0
        var reaped = false
        for _ in 0..<200 {
            let r = waitpid(w.pid, &status, WNOHANG)
            if r == w.pid { reaped = true; break }
            if r < 0 && errno != EINTR { break }
            usleep(5_000)
        }
        if !reaped {
            kill(w.pid, SIGKILL)
            while waitpid(w.pid, &status, 0) < 0 && errno == EINTR {}
            return "stopped answering"
        }
        let signal = status & 0x7f
        if signal != 0 && signal != 0x7f {
            return "crashed with signal \(signal) (\(signalName(signal)))"
        }
        return "exited with status \((status >> 8) & 0xff)"
    }

    private func reap(_ w: Worker) -> Int32 {
        var status: Int32 = 0
        while waitpid(w.pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// Releases a dead worker's resources and starts its replacement.
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
            close(w.socket)
            _ = reap(w)
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
