import Dispatch
@_spi(Host) public import Eddy
@_spi(Host) public import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
import Foundation
import Hummingbird
public import Logging
import NIOCore
import NIOPosix
import Prometheus
import Synchronization

/// The long-running host behind `eddy serve`: a session whose plugin directory is watched, and an
/// HTTP API that evaluates with one execution context per request.
public final class EddyServer: Sendable {
    @_spi(Host) public let session: Session
    public let host: PluginHost
    public let watcher: PluginWatcher
    public let logger: Logger
    public let options: ServerOptions
    let metrics: Metrics
    let uploads: UploadDirectory
    let slots: EvaluationSlots
    /// Request bodies being read, each with the time it must have arrived by (see ``collectBody(_:)``).
    let bodies = BodyDeadlines()
    /// The worker processes, when evaluation is isolated (`options.workers > 0`).
    let pool: WorkerPool?
    /// What confines plugin code here: the workers' and probes' (see ``Confinement/expected(user:)``),
    /// or none when plugin code runs in this process (`--workers 0`) or `--no-confine` is given.
    public let confinement: Confinement
    /// The connections open, within `options.maxConnections`.
    let connections: ConnectionLimit
    /// The last `GET /kernels` a worker answered, for the plugin set it was asked about.
    let kernelsAnswer = KernelsAnswer()
    /// The shadow checks (`--shadow-check RATE`; nil when off), see ShadowCheck.swift.
    let shadow: ShadowChecks?
    /// New builds in canary (`--canary`, per plugin by `POST /plugins/NAME/canary`), see Canary.swift.
    let canaries: Canaries

    /// - Throws: ``ServerSetupError`` when the private upload directory cannot be made.
    @_spi(Host) public init(
        pluginDirectory: String, logger: Logger, rescanSeconds: Double = 2, probe: PluginProbe? = nil,
        policy: PluginLoadPolicy = PluginLoadPolicy(), options: ServerOptions = ServerOptions(),
        verifier: PluginVerifier? = nil
    ) throws {
        self.options = options
        self.uploads = try UploadDirectory()
        self.shadow = options.shadowCheck > 0 ? ShadowChecks(rate: options.shadowCheck) : nil
        self.connections = ConnectionLimit(
            maxTotal: options.maxConnections, maxPerClient: options.maxConnectionsPerClient)
        let isolated = options.workers > 0
        if options.canaryFraction > 0 && !isolated {
            throw ServerSetupError(
                "--canary needs worker processes (--workers 1 or more): two builds of one plugin cannot share "
                    + "the server's own process")
        }
        if isolated && probe == nil {
            throw ServerSetupError(
                "--no-probe cannot go with --workers: the server learns each plugin through its probe "
                    + "and never loads plugin code itself")
        }
        self.slots = EvaluationSlots(
            limit: isolated ? min(options.workers, options.maxConcurrent) : options.maxConcurrent,
            queueLimit: options.maxQueue)
        if isolated {
            do {
                // One worker more for the shadow checks, and one for the canary's comparisons: the
                // evaluation slots keep them idle, so that a check never takes the worker a request is
                // about to need.
                pool = try WorkerPool(
                    count: options.workers + (options.shadowCheck > 0 ? 1 : 0) + (options.canaryFraction > 0 ? 1 : 0),
                    executable: PluginProbe.selfExecutable().executable,
                    arguments: [
                        "worker", "--max-plugin-bytes", String(policy.maxFileBytes),
                        "--memory-limit", String(options.workerMemory),
                    ] + Self.confinementArguments(options),
                    maxReplyBytes: options.maxResultBytes * 2 + (16 << 20))
            } catch {
                throw ServerSetupError("cannot start the worker processes: \(error)")
            }
        } else {
            pool = nil
        }
        let session = Session()
        let host = PluginHost(
            session: session, probe: probe, policy: policy, loading: isolated ? .checkOnly : .inProcess,
            verifier: probe == nil ? verifier : nil)
        let metrics = Metrics()
        canaries = Canaries(options: options, registry: metrics.registry)
        confinement = Self.confinement(options)
        if options.confine {
            // Workers and probes (with --workers 0 too) open copies by name as --worker-user: that user
            // must search the directory.
            let dropsUser = geteuid() == 0 && (options.workerUser?.uid ?? 0) != 0
            if dropsUser, let problem = host.allowOtherUsersToSearchCopies() {
                throw ServerSetupError("cannot let --worker-user reach the private plugin copies: \(problem)")
            }
        }
        self.session = session
        self.host = host
        self.logger = logger
        self.metrics = metrics
        self.watcher = PluginWatcher(host: host, directory: pluginDirectory, rescanSeconds: rescanSeconds) { event in
            Self.pluginEvent(event, metrics: metrics, host: host, logger: logger)
        }
        installCanaries()
    }

    /// Counts and logs what happened to the plugin set (the watcher's events).
    static func pluginEvent(_ event: PluginEvent, metrics: Metrics, host: PluginHost, logger: Logger) {
        // File names and details come from the directory and the plugin: escaped, one log line each.
        var meta: Logger.Metadata = [
            "file": "\(PluginHost.escaped(event.file))", "generation": "\(event.generation)",
        ]
        if !event.plugin.isEmpty {
            meta["plugin"] = "\(PluginHost.escaped(event.plugin))@\(PluginHost.escaped(event.version))"
        }
        if !event.detail.isEmpty { meta["detail"] = "\(PluginHost.escaped(event.detail))" }
        switch event.kind {
        case .added, .replaced: metrics.pluginLoads.increment()
        case .rejected: metrics.pluginRejections.increment()
        case .removed: metrics.pluginRemovals.increment()
        default: break
        }
        metrics.generation.set(Double(event.generation))
        metrics.retainedImages.set(Double(host.retainedImages))
        let level: Logger.Level = event.kind == .rejected || event.kind == .directoryGone ? .warning : .info
        logger.log(level: level, "plugin \(event.kind.rawValue)", metadata: meta)
    }

    /// What confines plugin code in a server started with `options` on this kernel.
    @_spi(Host) public static func confinement(_ options: ServerOptions) -> Confinement {
        if options.workers == 0 {
            return .off("--workers 0: plugin code runs in the server's own process, unconfined")
        }
        if !options.confine { return .off("--no-confine: plugin code runs with the server's rights") }
        return Confinement.expected(user: options.workerUser)
    }

    /// What a worker or probe is told about confinement: `--no-confine`, or the user to become.
    @_spi(Host) public static func confinementArguments(_ options: ServerOptions) -> [String] {
        guard options.confine else { return ["--no-confine"] }
        return (options.workerUser.map { ["--worker-user", $0.argument] } ?? [])
            + (options.requireConfinement ? ["--require-confinement"] : [])
    }

    /// Runs the HTTP server until SIGTERM or SIGINT; in-flight requests finish first.
    public func run(hostname: String, port: Int) async throws {
        if pool == nil {
            logger.warning(
                Logger.Message(
                    stringLiteral: "--workers 0: no crash isolation: plugin kernels run in the server's own process, "
                        + "so a kernel that crashes stops the server"))
        }
        watcher.start()
        superviseWorkers()
        // The body watchdog: ten times a second, cancels the reads of bodies past their deadline.
        let bodies = self.bodies
        let watchdog = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                bodies.cancelLate(now: now())
            }
        }
        defer {
            watchdog.cancel()
            watcher.stop()
            uploads.remove()
            pool?.shutdown()
        }
        let idle = TimeAmount.nanoseconds(Int64(options.idleTimeout * 1e9))
        let logger = self.logger
        let directory = watcher.directory
        let auth = options.token == nil ? "none" : "bearer"
        let connections = self.connections
        let app = Application(
            router: router(),
            server: .http1(
                configuration: .init(additionalChannelHandlers: [ConnectionTracker(connections)], idleTimeout: idle)),
            configuration: .init(address: .hostname(hostname, port: port)),
            // Said once the socket is bound (a port in use fails before it).
            onServerRunning: { channel in
                logger.info(
                    "eddy serve listening",
                    metadata: [
                        "address": "\(Self.shownAddress(hostname, channel.localAddress?.port ?? port))",
                        "plugins": "\(directory)",
                        "auth": "\(auth)",
                        "max_connections": "\(connections.maxTotal)",
                        "max_connections_per_client": "\(connections.maxPerClient)",
                    ])
            }, logger: logger)
        do {
            try await app.runService()
        } catch let e as NIOCore.IOError {
            // Binding the socket is the one I/O error before the server runs: named with its address.
            throw ServerSetupError(
                "cannot listen on \(Self.shownAddress(hostname, port)): \(systemMessage(e.errnoCode))")
        } catch let e as SocketAddressError {
            throw ServerSetupError("cannot listen on \(Self.shownAddress(hostname, port)): \(Self.describe(e))")
        } catch let e as SocketAddressError.UnknownHost {
            throw ServerSetupError(
                "cannot listen on \(Self.shownAddress(hostname, port)): no such host (\(escapedForDisplay(e.errorDescription)))"
            )
        }
    }

    /// A JSON reply (see ``ReplyJSON``).
    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        jsonResponse(value, status: status)
    }

    /// The reply to a failure: its status (``EddyFailure/status``) and ``ErrorReply``.
    func refuse(_ failure: EddyFailure) -> Response { jsonResponse(failure.reply, status: failure.status) }

    /// An evaluation's reply: the Arrow stream when one was asked for and made, else its answer as JSON.
    func answerResponse(_ evaluated: EvalRequest.Evaluated) -> Response {
        if evaluated.failure == nil, let stream = ArrowAnswer.response(evaluated.answer) { return stream }
        return jsonResponse(evaluated.answer, status: evaluated.status)
    }
}

extension EddyServer {
    /// Makes the server's event loops Swift Concurrency's executor, for the whole process: a request's
    /// handler then runs on the loop that read it and writes its reply there, with no hop to the
    /// cooperative pool and back (each hop woke a thread: `count(*)` over a warm `.eddy` file spent
    /// as long in those hops as in its own work). Evaluation never runs on these tasks (it runs on
    /// threads of its own, see ``evaluate(contentType:body:query:queryNames:channel:)``), so the loops
    /// are not held up. Call first thing in `main`, before any task is made, and only for `eddy serve`.
    public static func runTasksOnEventLoops() {
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}

extension EddyServer {
    /// `host:port`, with an IPv6 address in brackets.
    static func shownAddress(_ host: String, _ port: Int) -> String {
        host.contains(":") && !host.hasPrefix("[")
            ? "[\(escapedForDisplay(host))]:\(port)" : "\(escapedForDisplay(host)):\(port)"
    }

    /// What is wrong with a host name, in words.
    static func describe(_ e: SocketAddressError) -> String {
        switch e {
        case .unknown(let host, _): "no such host '\(escapedForDisplay(host))'"
        case .unsupported: "not an address family this system serves"
        case .unixDomainSocketPathTooLong: "the socket path is too long"
        case .failedToParseIPString(let s): "'\(escapedForDisplay(s))' is not an IP address"
        }
    }
}
