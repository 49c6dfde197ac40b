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
    let idle = Mutex<[Worker]>([])
    /// Workers running a request, by process id, until they are reaped: a stop ends them too.
    let busy = Mutex<Set<pid_t>>([])
    /// Content hashes of quarantined builds: a worker that loaded one is not used again.
    let condemned = Mutex<Set<String>>([])
    /// Plugins with a build in canary (see Canary.swift), with the builds of each that serve (the serving
    /// one and the one in canary): a request naming one of them goes to a worker that loaded no other
    /// build of it (see ``takeIdle(for:)``).
    let apart = Mutex<[String: Set<String>]>([:])
    let restarts = Atomic<Int>(0)
    /// The loops that read workers' replies (the server's own: see ``WorkerLink``), taken in turn.
    let loops: [any EventLoop]
    private let nextLoop = Atomic<Int>(0)
    /// Every live worker's link, for the tick that wakes requests waiting on a loop for a reply.
    let links = Mutex<[pid_t: WorkerLink]>([:])
    private let ticker = Mutex<RepeatedTask?>(nil)
    /// The CPU watch and orphan sweep (see ``watch(charge:)``) runs while this is false.
    let stopping = Atomic<Bool>(false)
    let watching = Atomic<Bool>(false)
    /// Who is told when an idle worker is charged to plugin builds (see ``watch(charge:)``).
    let charge = Mutex<(@Sendable (_ cause: String, _ suspects: [WorkerRequest.Plugin]) -> Void)?>(nil)
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
