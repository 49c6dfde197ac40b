import CEddyHost
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
import EddyIO
import EddyQuery
import Foundation
import HTTPTypes

#if canImport(Glibc)
    import Glibc
#endif

/// The body of an `eddy worker` process: loads the plugin set the supervisor names (verified
/// private copies, never the drop directory), evaluates one request at a time, and marks every
/// plugin call in a page of shared memory, so that if plugin code kills this process the
/// supervisor can say which.
public enum WorkerProcess {
    public struct Configuration: Sendable {
        public var socket: Int32
        public var blamePage: Int32
        public var blamePageSize: Int
        public var parent: Int32?
        /// Address-space limit in bytes (0: none).
        public var memoryLimit: Int
        public var maxPluginBytes: Int
        /// Whether to confine this process before any plugin code runs (see ``Confinement``), and the
        /// user to become when it runs as root.
        public var confine = true
        public var user: Confinement.WorkerUser?
        /// Exit (status 5) rather than run plugin code with less than full confinement.
        public var requireConfinement = false

        public init(
            socket: Int32, blamePage: Int32, blamePageSize: Int, parent: Int32?, memoryLimit: Int,
            maxPluginBytes: Int
        ) {
            self.socket = socket
            self.blamePage = blamePage
            self.blamePageSize = blamePageSize
            self.parent = parent
            self.memoryLimit = memoryLimit
            self.maxPluginBytes = maxPluginBytes
        }
    }

    /// Serves requests until the supervisor closes the socket, then exits (with `_exit`: plugin
    /// destructors are not run).
    public static func run(_ config: Configuration) -> Never {
        if let parent = config.parent, !PluginProbe.bindToParent(parent) { _exit(4) }
        if config.memoryLimit > 0 {
            var limit = rlimit(rlim_cur: rlim_t(config.memoryLimit), rlim_max: rlim_t(config.memoryLimit))
            setrlimit(Int32(RLIMIT_AS.rawValue), &limit)
        }
        if let page = mmap(nil, config.blamePageSize, PROT_READ | PROT_WRITE, MAP_SHARED, config.blamePage, 0),
            page != MAP_FAILED
        {
            // The first half names the plugin call running now; the second lists every plugin call
            // that has run here (a thread it started may crash after it returned: the supervisor
            // then knows whose code ran in this process).
            let half = config.blamePageSize / 2
            // The last bytes of the first half are the host's: its crash handler sets the very last
            // to "E" when this process crashes on a thread doing engine work outside plugin code.
            PluginCallSite.mirror(to: page, size: half - WorkerPool.hostBytes)
            eddy_crash_report_engine_flag((page + half - 1).assumingMemoryBound(to: CChar.self))
            PluginCallSite.recordRuns(to: page + half, size: config.blamePageSize - half)
        }
        // Plugin code should not find these by number: the page needs no descriptor once mapped, and
        // the socket moves to an unpredictable one.
        close(config.blamePage)
        var socket = config.socket
        let moved = fcntl(config.socket, F_DUPFD_CLOEXEC, Int32.random(in: 200...900))
        if moved >= 0 {
            close(config.socket)
            socket = moved
        }
        let session = Session()
        // Made before confinement: it opens the private copy directory while this process is still the
        // supervisor's user.
        let host = PluginHost(
            session: session, probe: nil,
            policy: PluginLoadPolicy(maxFileBytes: config.maxPluginBytes, registrationTimeout: 86_400))
        if config.confine {
            // Plugin code gets read access to the copies (and the system's libraries) and nothing else;
            // job files arrive as descriptors. A 1 GiB file-size limit: this process writes no file but
            // standard error, the server's log.
            let confinement = Confinement.apply(
                .init(readPaths: [host.shadowDirectory], user: config.user, fileSizeLimit: 1 << 30))
            if config.requireConfinement && confinement.level != .full {
                let line = "eddy worker: confinement \(confinement) (--require-confinement)\n"
                _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
                _exit(5)
            }
            // Becoming another user cleared the parent-death signal.
            if let parent = config.parent, !PluginProbe.bindToParent(parent) { _exit(4) }
        }
        while true {
            let frame: [UInt8]
            let file: OpenedFile?
            do {
                (frame, file) = try Frames.readWithDescriptor(socket)
            } catch {
                _exit(0)  // the supervisor went away or closed this worker
            }
            let reply = handle(frame, file: file, session: session, host: host)
            do {
                try Frames.write(socket, reply.encoded())
            } catch {
                _exit(0)
            }
        }
    }

    /// - Parameter file: the descriptor that came with the frame: the job's file (read through it, never
    ///   opened by path here).
    static func handle(_ frame: [UInt8], file: OpenedFile? = nil, session: Session, host: PluginHost)
        -> WorkerReply
    {
        var request: WorkerRequest
        do {
            request = try WorkerRequest(decoding: frame)
        } catch {
            return refusal(id: 0, EddyFailure(.internal, "worker: malformed request: \(error)"))
        }
        if request.expectsFile {
            guard let file else {
                return refusal(
                    id: request.id, EddyFailure(.internal, "worker: the request's file descriptor did not arrive"))
            }
            request.job?.file = file
        }
        let (status, body, evidence) = answer(request, session: session, host: host)
        return WorkerReply(id: request.id, status: status, evidence: evidence, body: body)
    }

    /// This process's compressor hooks, wrapped once per plugin set so that an evaluation can tell which
    /// builds' hooks encoded a column (one request at a time runs here).
    static let hooks = HookWrappers()

    static func answer(_ request: WorkerRequest, session: Session, host: PluginHost) -> (Int, [UInt8], ShadowEvidence?)
    {
        func refused(_ failure: EddyFailure) -> (Int, [UInt8], ShadowEvidence?) {
            (failure.httpStatus, ReplyJSON.encode(failure.reply), nil)
        }
        if let problem = sync(request.plugins, host: host) { return refused(EddyFailure(.internal, problem)) }
        switch request.op {
        case .kernels:
            let reply = KernelsReply(
                session.kernels.snapshot, generation: request.generation > 0 ? request.generation : nil)
            return (200, ReplyJSON.encode(reply), nil)
        case .eval:
            guard let job = request.job else { return refused(EddyFailure(.internal, "worker: eval without a job")) }
            var evaluated = asEngineWork {
                EvalRequest.evaluateForCheck(
                    job, session: session, mapFiles: true, check: request.check, alone: request.alone, hooks: hooks,
                    stop: { nil })
            }
            if request.generation > 0 { evaluated.answer.generation = request.generation }
            return (Int(evaluated.status.code), ReplyJSON.encode(evaluated.answer), evaluated.evidence)
        }
    }

    /// Makes the loaded plugins exactly `wanted`: loads what is new (checking the bytes are the ones
    /// the supervisor verified), withdraws what is gone. Nil, or what went wrong.
    static func sync(_ wanted: [WorkerRequest.Plugin], host: PluginHost) -> String? {
        // The set the last request named, loaded then (only this function changes the plugins here): once
        // per plugin set, not per request.
        if synced.holds(wanted) { return nil }
        synced.set(nil)
        let loaded = Dictionary(host.plugins.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let names = Set(wanted.map(\.name))
        for plugin in loaded.values where !names.contains(plugin.name) { host.unload(pluginNamed: plugin.name) }
        for plugin in wanted where loaded[plugin.name]?.contentHash != plugin.hash {
            // A new build of a loaded plugin: its private copy has another name, so withdraw the old
            // one first (this worker runs one request at a time; none is in flight on it).
            if loaded[plugin.name] != nil { host.unload(pluginNamed: plugin.name) }
            let row = host.loadPrivateCopy(plugin.copy)
            guard row.status == .loaded || row.status == .replaced,
                host.plugins.first(where: { $0.name == plugin.name })?.contentHash == plugin.hash
            else {
                return "worker could not load plugin \(plugin.name)@\(plugin.version): \(row.reason)"
            }
        }
        synced.set(wanted)
        return nil
    }

    /// The reply to a request this worker cannot answer.
    static func refusal(id: UInt64, _ failure: EddyFailure) -> WorkerReply {
        WorkerReply(id: id, status: failure.httpStatus, evidence: nil, body: ReplyJSON.encode(failure.reply))
    }
}
