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

    final class Metrics: Sendable {
        let registry = PrometheusCollectorRegistry()
        let evaluations: Counter
        let evaluationErrors: Counter
        let pluginLoads: Counter
        let pluginRejections: Counter
        let pluginRemovals: Counter
        let generation: Gauge
        let retainedImages: Gauge
        let refusals: Counter
        let workerRestarts: Counter
        let quarantines: Counter
        let connectionsOpen: Gauge
        let connectionsRefused: Counter
        let connectionsReclaimed: Counter
        let shadowChecks: Counter
        let shadowDivergences: Counter
        let shadowDropped: Counter
        let shadowInconclusive: Counter
        let inFlight = Atomic<Int>(0)
        private let connectionsCounted = Mutex((refused: 0, reclaimed: 0))

        /// Brings the connection gauges and counters up to the limiter's counts.
        func connectionsSeen(_ limit: ConnectionLimit) {
            connectionsOpen.set(Double(limit.open))
            let now = limit.counts
            let before = connectionsCounted.withLock { c in
                defer { c = (now.closedAtLimit, now.reclaimed) }
                return c
            }
            if now.closedAtLimit > before.refused {
                connectionsRefused.increment(by: Int64(now.closedAtLimit - before.refused))
            }
            if now.reclaimed > before.reclaimed {
                connectionsReclaimed.increment(by: Int64(now.reclaimed - before.reclaimed))
            }
        }
        private let restartsCounted = Atomic<Int>(0)

        /// Brings the restart counter up to the pool's count.
        func workerRestartsSeen(_ total: Int) {
            let before = restartsCounted.exchange(total, ordering: .relaxed)
            if total > before { workerRestarts.increment(by: Int64(total - before)) }
        }

        init() {
            evaluations = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "evaluations", unitName: "total",
                    helpText: "Evaluations completed"))
            evaluationErrors = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "evaluation_errors", unitName: "total",
                    helpText: "Evaluations that failed"))
            pluginLoads = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "plugin_loads", unitName: "total",
                    helpText: "Plugins added or replaced"))
            pluginRejections = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "plugin_rejections", unitName: "total",
                    helpText: "Plugin files refused"))
            pluginRemovals = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "plugin_removals", unitName: "total",
                    helpText: "Plugins withdrawn"))
            generation = registry.makeGauge(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "snapshot", unitName: "generation",
                    helpText: "Kernel registry snapshot generation"))
            retainedImages = registry.makeGauge(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "retained", unitName: "images",
                    helpText: "Plugin images mapped into the process (never unmapped)"))
            workerRestarts = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "worker_restarts", unitName: "total",
                    helpText: "Worker processes replaced after a crash, a deadline or a lost client"))
            quarantines = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "quarantines", unitName: "total",
                    helpText: "Plugin builds quarantined after they crashed or hung a worker"))
            connectionsOpen = registry.makeGauge(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "connections", unitName: "open",
                    helpText: "HTTP connections open (at most --max-connections)"))
            connectionsRefused = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "connections_refused", unitName: "total",
                    helpText: "Connections closed at once: at --max-connections with every connection busy"))
            connectionsReclaimed = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "connections_reclaimed", unitName: "total",
                    helpText: "Idle connections closed to make room for a new one at --max-connections"))
            shadowChecks = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "shadow_checks", unitName: "total",
                    helpText:
                        "Sampled answers compared with an evaluation without plugin kernels and hooks (--shadow-check)")
            )
            shadowDivergences = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "shadow_divergences", unitName: "total",
                    helpText: "Shadow checks whose answers differed: the plugin builds involved are quarantined"))
            shadowDropped = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "shadow_checks_dropped", unitName: "total",
                    helpText: "Sampled answers not checked: the shadow-check queue was full"))
            shadowInconclusive = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "shadow_checks_inconclusive", unitName: "total",
                    helpText: "Shadow checks that could not compare: the evaluation without plugin code failed"))
            refusals = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "eddy", metricName: "evaluations_refused", unitName: "total",
                    helpText: "Evaluations refused or stopped by a limit (busy, deadline, result size, client gone)"))
        }
    }

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
        installCanaries()
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

    /// Builds the router: `POST /eval`, `GET /plugins`, `GET /kernels`, `GET /health`, `GET /metrics`.
    public func router() -> Router<EddyRequestContext> {
        let router = Router(context: EddyRequestContext.self)
        router.add(middleware: ConnectionActivity(limit: connections))
        router.add(middleware: RequestGuard(options: options))
        router.get("health") { _, _ in
            self.json([
                "status": "ok", "generation": self.session.kernels.generation,
                "plugins": self.host.plugins.count, "in_flight": self.metrics.inFlight.load(ordering: .relaxed),
                "connections": self.connections.open, "confinement": self.confinement.description,
            ])
        }
        router.get("plugins") { _, _ in
            let loaded = self.host.plugins
            let rows = self.watcher.report.map { r -> [String: Any] in
                var row: [String: Any] = [
                    "file": r.file, "status": r.status.rawValue, "reason": r.reason, "plugin": r.plugin,
                    "version": r.version,
                    "kernels": r.kernels, "content_hash": r.contentHash, "load_ms": r.loadMilliseconds,
                ]
                if !r.linkTarget.isEmpty { row["link_target"] = r.linkTarget }
                // As `eddy plugins --json` says it. A row of a file rescanned unchanged has none of its own:
                // the build loaded from the file carries what it was verified on.
                let build = loaded.first { $0.file == r.file && $0.contentHash.hasPrefix(r.contentHash) }
                if r.status == .loaded || r.status == .replaced, let verified = r.verified ?? build?.verified {
                    row["verified_inputs"] = verified.inputs
                }
                return row
            }
            let canaries = self.canaryReport()
            let files = rows.map { row -> [String: Any] in
                // The row of a file whose build is (or was) in canary carries its run; while the build is in
                // canary or once promoted, the run's summary is the row's reason (the load's words go stale).
                guard let hash = row["content_hash"] as? String, !hash.isEmpty,
                    let run = canaries.last(where: { ($0["content_hash"] as? String)?.hasPrefix(hash) == true })
                else { return row }
                var out = row
                out["canary"] = run
                let state = run["state"] as? String
                if row["status"] as? String == "replaced", state == "canary" || state == "promoted" {
                    out["reason"] = run["summary"] ?? row["reason"]
                }
                return out
            }
            let quarantined = self.host.quarantined.map { q -> [String: Any] in
                ["content_hash": q.hash, "plugin": q.plugin, "cause": q.cause, "time": PluginHost.isoTime(q.time)]
            }
            return self.json([
                "directory": self.watcher.directory, "generation": self.session.kernels.generation,
                "quarantined": quarantined, "workers": self.pool?.count ?? 0, "canaries": canaries,
                "confinement": self.confinement.description,
                "retained_images": self.host.retainedImages,
                "fingerprint": self.session.kernels.snapshot.fingerprint, "files": files,
            ])
        }
        addCanaryRoutes(to: router)
        router.get("kernels") { _, _ in
            if let pool = self.pool {
                // The kernels live in the workers, but they are a function of the plugin set: while the
                // set is the one a worker last answered for, that answer is given without waiting for a
                // worker (busy workers held this request 7.3 s). Otherwise ask one, holding an
                // evaluation slot like any request.
                let key = Self.kernelsKey(self.session.kernels.generation, self.host.plugins)
                if let body = self.kernelsAnswer.body(for: key) {
                    var headers = HTTPFields()
                    headers[.contentType] = "application/json"
                    return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
                }
                guard await self.slots.acquire() else {
                    return self.json(["error": "server busy; try again"], status: .serviceUnavailable)
                }
                defer { self.slots.release() }
                return await self.offLoop {
                    self.runInWorker(pool, .kernels, job: nil, deadline: now() + 10, clientGone: { false })
                }
            }
            let snapshot = self.session.kernels.snapshot
            let keys = snapshot.entries.map { e -> [String: Any] in
                [
                    "parent": e.parent.name, "child": e.child.name,
                    "kernels": e.kernels.map { ["name": $0.name, "owner": $0.owner.description] },
                    "rules": e.rules.map { ["name": $0.name, "owner": $0.owner.description] },
                ]
            }
            return self.json(["generation": snapshot.generation, "fingerprint": snapshot.fingerprint, "keys": keys])
        }
        router.get("metrics") { _, _ in
            self.metrics.connectionsSeen(self.connections)
            self.metrics.generation.set(Double(self.session.kernels.generation))
            self.metrics.retainedImages.set(Double(self.host.retainedImages))
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.registry.emitToString())))
        }
        router.post("eval") { request, context in
            var params: EvalRequest.Params
            let query: [(String, String)]
            do throws(EvalRequest.Refusal) {
                // Decoded as forms encode them (`+` is a space), not only %-escapes.
                query = try EvalRequest.formPairs(request.uri.query)
                params = try EvalRequest.params(fromQuery: query)
            } catch {
                return self.json(["error": error.message], status: error.status)
            }
            let tooLarge = ["error": "the body is larger than \(self.options.maxBodyBytes) bytes (--max-body-bytes)"]
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > self.options.maxBodyBytes {
                return self.json(tooLarge, status: .contentTooLarge)
            }
            let body: ByteBuffer
            do {
                body = try await self.collectBody(request)
            } catch let e as HTTPError where e.status.code == 413 {
                return self.json(tooLarge, status: .contentTooLarge)
            } catch is BodyTimeout {
                return self.json(
                    ["error": "the body did not arrive within \(self.options.bodyTimeout) s (--body-timeout)"],
                    status: .requestTimeout)
            }
            let contentType = request.headers[.contentType] ?? ""
            params.accept = request.headers[.accept]
            return await self.evaluate(
                contentType: contentType, body: body, query: params,
                queryNames: Set(query.map(\.0)), channel: context.channel)
        }
        return router
    }

    struct BodyTimeout: Error {}

    /// The whole body, at most `maxBodyBytes`, within `bodyTimeout` seconds. It is read in a task of its
    /// own that the server's one body watchdog cancels when it is late (a timer per request, or a task
    /// group racing a sleep, cost a small request tens of microseconds); a cancelled read is a timeout,
    /// whatever it returned.
    func collectBody(_ request: Request) async throws -> ByteBuffer {
        let limit = options.maxBodyBytes
        let task = Task { try await request.body.collect(upTo: limit) }
        let id = bodies.add(deadline: now() + options.bodyTimeout, task)
        defer { bodies.remove(id) }
        let body: ByteBuffer
        do {
            body = try await withTaskCancellationHandler {
                try await task.value
            } onCancel: {
                task.cancel()
            }
        } catch {
            if task.isCancelled { throw BodyTimeout() }
            throw error
        }
        if task.isCancelled { throw BodyTimeout() }
        return body
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

    func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        jsonResponse(object, status: status)
    }

    /// Evaluates one request on a thread of its own (evaluation is CPU work; it must not hold up the
    /// server's event loops), with one execution context for the whole request. At most
    /// `maxConcurrent` run at once; the evaluation stops at its deadline or when the client goes away.
    /// A body is copied out of its buffer where it is parsed: a large one off the loop.
    func evaluate(
        contentType: String, body: ByteBuffer, query: EvalRequest.Params, queryNames: Set<String>,
        channel: any Channel
    ) async -> Response {
        guard await slots.acquire() else {
            metrics.refusals.increment()
            return json(
                [
                    "error": "server busy: \(slots.limit) evaluations running and \(slots.queueLimit) waiting "
                        + "(--max-concurrent, --max-queue); try again"
                ], status: .serviceUnavailable)
        }
        defer { slots.release() }
        let deadline = now() + options.evalTimeout
        let timeout = options.evalTimeout
        let liveness = LivenessCheck(channel)
        let stop: @Sendable () -> EvaluationStopped? = {
            if liveness.clientGone() { return EvaluationStopped(.cancelled, "the client closed the connection") }
            if now() > deadline {
                return EvaluationStopped(
                    .deadline, "the evaluation did not finish within \(timeout) s (--eval-timeout)")
            }
            return nil
        }
        // A JSON request is parsed here (an upload is stored off this task). count(*) alone over an .eddy
        // file this process already has open is answered here too: its footer is parsed, so the answer
        // takes microseconds, less than a hop to another thread and back.
        // With workers, a small upload is prepared here too (stored in memory, see `UploadDirectory`).
        var prepared: EvalRequest.Job?
        let small = body.readableBytes <= Self.inlineBodyBytes
        if small, pool != nil || contentType.lowercased().hasPrefix("application/json") {
            do throws(EvalRequest.Refusal) {
                prepared = try EvalRequest.prepare(
                    server: self, contentType: contentType, body: Data(body.readableBytesView), query: query,
                    queryNames: queryNames)
            } catch {
                count(error.status)
                return json(["error": error.message], status: error.status)
            }
        }
        // Only a short select list over a file already open: a loop's thread must not parse or format
        // for long.
        if pool != nil, let job = prepared, job.inputFormat == "eddy", (job.select?.utf8.count ?? 0) <= 1024,
            let (status, object) = footerAnswer(job, stop: stop, onlyIfOpen: true)
        {
            count(status)
            return json(object, status: status)
        }
        // With workers, a small request goes to a worker from here, and a loop reads the reply (see
        // `WorkerLink`): no thread waits for it. One that an `.eddy` file's footer may answer goes the
        // thread's way below, which reads the footer.
        if let pool, small {
            if let job = prepared, job.inputFormat != "eddy" || job.uploaded || job.where != nil || job.trace {
                metrics.inFlight.add(1, ordering: .relaxed)
                defer { metrics.inFlight.subtract(1, ordering: .relaxed) }
                let response = await runInWorker(pool, .eval, job: job, deadline: deadline, liveness: liveness)
                count(response.status)
                return response
            }
        }
        let parsed = prepared
        return await withCheckedContinuation { (continuation: CheckedContinuation<Response, Never>) in
            DispatchQueue.global().async {
                self.metrics.inFlight.add(1, ordering: .relaxed)
                defer { self.metrics.inFlight.subtract(1, ordering: .relaxed) }
                let (status, object): (HTTPResponse.Status, [String: Any])
                do throws(EvalRequest.Refusal) {
                    let job: EvalRequest.Job
                    if let parsed {
                        job = parsed
                    } else {
                        job = try EvalRequest.prepare(
                            server: self, contentType: contentType, body: Data(body.readableBytesView),
                            query: query, queryNames: queryNames)
                    }
                    if self.pool != nil, let answer = self.footerAnswer(job, stop: stop) {
                        (status, object) = answer
                    } else if let pool = self.pool {
                        let response = self.runInWorker(
                            pool, .eval, job: job, deadline: deadline,
                            clientGone: { liveness.clientGone() })
                        self.count(response.status)
                        continuation.resume(returning: response)
                        return
                    } else if self.sampledForCheck() {
                        let set = self.host.plugins
                        let stamp = FileStamp(job)
                        let evaluated = EvalRequest.evaluateForCheck(
                            job, session: self.session, check: .report, stop: stop)
                        (status, object) = (evaluated.status, evaluated.object)
                        if status == .ok, let evidence = evaluated.evidence, !evidence.owners.isEmpty {
                            self.queueShadowCheck(
                                job, plugins: set, answer: [UInt8](jsonBytes(object)), evidence: evidence,
                                stamp: stamp)
                        }
                    } else {
                        (status, object) = EvalRequest.evaluate(job, session: self.session, stop: stop)
                    }
                } catch {
                    (status, object) = (error.status, ["error": error.message])
                }
                self.count(status)
                continuation.resume(returning: self.json(object, status: status))
            }
        }
    }

    /// The largest JSON body parsed on the request's task (an event loop's thread): a larger one is
    /// parsed with the evaluation, off the loop, so that it holds up no other connection.
    static let inlineBodyBytes = 64 << 10

    /// `count(*)` alone over an `.eddy` file whose encodings are all built in, answered here: it is the
    /// footer's row counts, read with `pread` (see ``MappedEddyFile``), so no kernel, plugin code or
    /// mapped page is involved and there is nothing for a worker to isolate; a worker hop cost more
    /// than the answer. Only footers up to 4 MiB: parsing a larger (or hostile) one is left to a worker
    /// and its memory limit. Nil: a worker answers.
    /// - Parameter onlyIfOpen: answer only from a file this process has open unchanged (on an event
    ///   loop's thread, nothing may be read or parsed afresh).
    func footerAnswer(
        _ job: EvalRequest.Job, stop: @escaping @Sendable () -> EvaluationStopped?, onlyIfOpen: Bool = false
    ) -> (HTTPResponse.Status, [String: Any])? {
        guard job.inputFormat == "eddy", job.where == nil, !job.trace, !job.uploaded,
            Evaluation.readsNoColumn(whereText: nil, selectText: job.select),
            let opened = job.file,
            let file = try? EddyFile(
                descriptor: opened.descriptor, path: job.path, snapshot: session.kernels.snapshot,
                maxFooterBytes: 4 << 20, onlyIfOpen: onlyIfOpen, mapped: false)
        else { return nil }
        // The supervisor's snapshot names the current plugin set (without their kernels), so the reply's
        // fingerprint and plugins are those a worker would report.
        var (status, object) = EvalRequest.evaluate(job, session: session, file: file, stop: stop)
        if status == .ok { object["answered_from"] = "footer" }
        return (status, object)
    }

    func count(_ status: HTTPResponse.Status) {
        switch status.code {
        case 200: metrics.evaluations.increment()
        case 413, 499, 503, 504: metrics.refusals.increment()
        default: metrics.evaluationErrors.increment()
        }
        if status.code == 499 { logger.info("evaluation cancelled: the client closed the connection") }
    }

    /// Sends one request to a worker with the current plugin set, and turns what happened into a
    /// response: the worker's own, or — when it died or overran its deadline — a 5xx naming the
    /// plugin code it was running, whose build is then quarantined. Blocks (call off the event loops).
    /// An evaluation may go to a build in canary (see Canary.swift): its answer then carries the
    /// `Eddy-Canary` header, and when the build crashed its worker (and was rolled back for it) the request
    /// runs once more with the serving build.
    func runInWorker(
        _ pool: WorkerPool, _ op: WorkerRequest.Operation, job: EvalRequest.Job?, deadline: Double,
        clientGone: () -> Bool, retried: Bool = false
    ) -> Response {
        guard op == .eval, job != nil, !retried, let ticket = canaryTicket() else {
            return runInWorker(
                pool, op, job: job, deadline: deadline, clientGone: clientGone, retried: retried, canary: nil)
        }
        var response = runInWorker(
            pool, op, job: job, deadline: deadline, clientGone: clientGone, retried: retried, canary: ticket)
        if response.headers[canaryHeaderName] != nil { return response }
        if host.canaries.candidate(of: ticket.candidate.name)?.contentHash != ticket.candidate.contentHash,
            host.quarantine(of: ticket.candidate.contentHash) != nil
        {
            settleCanaries()
            // Its code crashed or broke the protocol: the serving build answers instead, if time is left.
            if [500, 502].contains(response.status.code), now() < deadline, !clientGone() {
                var again = runInWorker(pool, op, job: job, deadline: deadline, clientGone: clientGone, retried: true)
                again.headers[canaryHeaderName] = "\(ticket.id) rolled back; answered by the serving build"
                return again
            }
            response.headers[canaryHeaderName] = "\(ticket.id) rolled back"
            return response
        }
        response.headers[canaryHeaderName] = ticket.id
        return response
    }

    private func runInWorker(
        _ pool: WorkerPool, _ op: WorkerRequest.Operation, job: EvalRequest.Job?, deadline: Double,
        clientGone: () -> Bool, retried: Bool, canary: CanaryTicket?
    ) -> Response {
        let call = WorkerCall(self, op, job: job, retried: retried, canary: canary)
        let outcome = pool.run(
            call.request.encoded(), descriptor: job?.file?.descriptor ?? -1, id: call.request.id,
            plugins: call.request.plugins, deadline: deadline, clientGone: clientGone)
        return response(to: outcome, of: call, pool: pool, deadline: deadline, clientGone: clientGone)
    }

    /// ``runInWorker(_:_:job:deadline:clientGone:retried:)`` from a request's task: the reply is read by
    /// an event loop, with no thread waiting for it (see ``WorkerLink``); what follows a failure
    /// (quarantine, crash bundles, a retry) runs off the loops.
    func runInWorker(
        _ pool: WorkerPool, _ op: WorkerRequest.Operation, job: EvalRequest.Job?, deadline: Double,
        liveness: LivenessCheck
    ) async -> Response {
        let clientGone: @Sendable () -> Bool = { liveness.clientGone() }
        // A build in canary: routing, comparing and rolling back go the thread's way.
        guard host.canaries.staged.isEmpty else {
            return await offLoop {
                self.runInWorker(pool, op, job: job, deadline: deadline, clientGone: clientGone)
            }
        }
        let call = WorkerCall(self, op, job: job, retried: false, canary: nil)
        let outcome = await pool.run(
            call.request.encoded(), descriptor: job?.file?.descriptor ?? -1, id: call.request.id,
            plugins: call.request.plugins, deadline: deadline, clientGone: clientGone,
            clientGoneOnLoop: { await liveness.clientGoneOnLoop() })
        // A reply as it is (JSON) is passed on here; what needs more work (an Arrow stream, an error
        // that may name a quarantined build) is done off the loops.
        if case .reply(let status, _, _) = outcome, status < 400, job?.format != ArrowAnswer.format {
            return response(to: outcome, of: call, pool: pool, deadline: deadline, clientGone: clientGone)
        }
        return await offLoop {
            self.response(to: outcome, of: call, pool: pool, deadline: deadline, clientGone: clientGone)
        }
    }

    /// A request for a worker, with the plugin set it runs with.
    struct WorkerCall: Sendable {
        let op: WorkerRequest.Operation
        let job: EvalRequest.Job?
        let set: [LoadedPlugin]
        let generation: Int
        let check: WorkerRequest.Check
        let request: WorkerRequest
        /// The job's file before the answer, when the answer is checked (see ``FileStamp``).
        let stamp: FileStamp?
        let retried: Bool
        let canary: CanaryTicket?
        /// Sampled for a shadow check (see ShadowCheck.swift); a canary's request is compared instead.
        let shadowSampled: Bool

        init(
            _ server: EddyServer, _ op: WorkerRequest.Operation, job: EvalRequest.Job?, retried: Bool,
            canary: CanaryTicket?
        ) {
            self.op = op
            self.job = job
            self.retried = retried
            self.canary = canary
            generation = server.session.kernels.generation
            set = canary?.set ?? server.host.plugins
            shadowSampled = canary == nil && op == .eval && job != nil && !retried && server.sampledForCheck()
            // Every canary request reports which builds' code took part: one in which the canary's took
            // none says nothing about it, and is not counted towards its promotion.
            check = shadowSampled || canary != nil ? .report : .none
            request = WorkerRequest(
                id: UInt64.random(in: 1...UInt64.max), op: op,
                plugins: set.map {
                    .init(name: $0.name, version: $0.version, copy: $0.shadowPath, hash: $0.contentHash)
                }, job: job, generation: generation, check: check)
            // A check re-reads the file the answer read: it must still be as it was before the answer.
            stamp = check == .report ? job.flatMap { FileStamp($0) } : nil
        }
    }

    /// The response for what became of a worker request: the worker's own, or — when it died or
    /// overran its deadline — a 5xx naming the plugin code it was running, whose build is then
    /// quarantined. May block (a retry, a quarantine): off the loops, except for a reply below 400.
    func response(
        to outcome: WorkerPool.Outcome, of call: WorkerCall, pool: WorkerPool, deadline: Double,
        clientGone: () -> Bool
    ) -> Response {
        let (op, job, set, generation, stamp, retried) = (
            call.op, call.job, call.set, call.generation, call.stamp, call.retried
        )
        let (canary, shadowSampled) = (call.canary, call.shadowSampled)
        let restarts = pool.restarts.load(ordering: .relaxed)
        metrics.workerRestartsSeen(restarts)
        switch outcome {
        case .reply(let status, let body, let evidence):
            if let quarantined = quarantineReply(job, status: status) { return quarantined }
            if let canary, let job,
                let instead = canaryAnswered(
                    canary, job: job, status: status, body: body, evidence: evidence, stamp: stamp)
            {
                return instead
            }
            if op == .eval { answered(status, with: set) }
            if shadowSampled, status == 200, let job, let evidence, !evidence.owners.isEmpty {
                queueShadowCheck(job, plugins: set, answer: body, evidence: evidence, stamp: stamp)
            }
            if op == .kernels && status == 200 {
                kernelsAnswer.store(ByteBuffer(bytes: body), for: Self.kernelsKey(generation, set))
            }
            if job?.format == ArrowAnswer.format, let stream = ArrowAnswer.response(workerReply: body, status: status) {
                return stream
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(
                status: HTTPResponse.Status(code: status), headers: headers,
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        case .cancelled:
            return json(
                ["error": "the client closed the connection"],
                status: .init(code: 499, reasonPhrase: "Client Closed Request"))
        case .protocolViolation(let what, let site):
            logger.error("worker replaced: it answered out of protocol", metadata: ["what": "\(what)"])
            if let site, Self.plugin(named: site, in: set) != nil {
                return blame(cause: "wrote to its worker's socket (\(what))", site: site, in: set, status: .badGateway)
            }
            return json(
                [
                    "error": "the evaluation's worker answered out of protocol (\(what)): plugin code wrote to its "
                        + "socket; the worker was replaced and its answer dropped"
                ], status: .badGateway)
        case .died(var cause, let site, let suspects):
            if op == .eval { keepCrashBundle(timedOut: false, cause: cause, site: site, job: job, plugins: set) }
            // A worker killed by SIGBUS outside plugin code was reading a mapped file: name the one it read.
            if site == nil, cause.contains("SIGBUS"), let job, job.inputFormat == "eddy" {
                cause += " reading \(job.uploaded ? "the upload" : job.path)"
            } else if site == nil, !suspects.isEmpty {
                // Not this request's doing: the builds that ran code in the worker answer for it, and
                // the request runs once more on a worker without them (see WorkerBlame.swift).
                let whereText = cause.contains(" on a thread started in ") ? "" : " outside plugin code"
                chargeTainted(suspects, cause: "its worker \(cause)\(whereText)", in: set)
                if !retried {
                    return runInWorker(pool, op, job: job, deadline: deadline, clientGone: clientGone, retried: true)
                }
            }
            return blame(cause: cause, site: site, in: set, status: .internalServerError)
        case .timedOut(let site):
            if op == .eval {
                let cause = "did not finish within \(options.evalTimeout) s (--eval-timeout)"
                keepCrashBundle(timedOut: true, cause: cause, site: site, job: job, plugins: set)
            }
            return blame(
                cause: "did not finish within \(options.evalTimeout) s (--eval-timeout)", site: site, in: set,
                status: .gatewayTimeout)
        }
    }

    /// The response for a worker that died or hung, quarantining the plugin build it was running.
    func blame(cause: String, site: String?, in set: [LoadedPlugin], status: HTTPResponse.Status) -> Response {
        guard let site, let plugin = Self.plugin(named: site, in: set) else {
            let message = "the evaluation's worker \(cause)" + (site.map { " in \($0)" } ?? " outside plugin code")
            logger.error("worker lost", metadata: ["cause": "\(cause)"])
            return json(["error": message, "cause": cause], status: status)
        }
        let message =
            "\(cause) in \(site); plugin \(plugin.name)@\(plugin.version) "
            + "(\(String(plugin.contentHash.prefix(16)))) is quarantined: drop a fixed build to replace it"
        if host.quarantine(
            hash: plugin.contentHash, plugin: "\(plugin.name)@\(plugin.version)", cause: "\(cause) in \(site)")
        {
            metrics.quarantines.increment()
        }
        pool?.retire(loading: [plugin.contentHash])
        watcher.reload(plugin.file)
        logger.error(
            "plugin quarantined",
            metadata: [
                "plugin": "\(PluginHost.escaped(plugin.name))@\(PluginHost.escaped(plugin.version))",
                "cause": "\(PluginHost.escaped(cause)) in \(PluginHost.escaped(site))",
            ])
        return json(
            [
                "error": message, "cause": cause, "plugin": plugin.name, "version": plugin.version,
                "in": site, "content_hash": plugin.contentHash,
            ], status: status)
    }

    /// The plugin a marked call site belongs to: `… of plugin NAME@VERSION`, or the manifest function
    /// of a private copy's file.
    static func plugin(named site: String, in set: [LoadedPlugin]) -> LoadedPlugin? {
        if let r = site.range(of: "plugin ", options: .backwards) {
            let id = site[r.upperBound...]
            if let at = id.lastIndex(of: "@") {
                let name = String(id[..<at])
                let version = String(id[id.index(after: at)...])
                if let p = set.first(where: { $0.name == name && $0.version == version }) { return p }
            }
        }
        return set.first { site.hasSuffix(PluginHost.escaped(PluginHost.baseName($0.shadowPath))) }
    }
}

extension EddyServer {
    /// Runs blocking work on a thread of its own, off the event loops.
    func offLoop(_ body: @escaping @Sendable () -> Response) async -> Response {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: body()) }
        }
    }

    /// Whether the client closed its side of the connection. The connection is not read while a
    /// request is being evaluated, so a close is seen in the socket's TCP state (CLOSE_WAIT after the
    /// client's FIN), not as an event. Called from the evaluation's thread, between batches. On any
    /// of the server's event loops (a `count(*)` answered from a footer runs on one, not always the
    /// connection's: a handler that waited for a slot resumes on whichever loop is next) only
    /// `isActive` is asked: NIO traps a wait on a future from any loop of its group.
    static func clientGone(_ channel: any Channel) -> Bool {
        guard channel.isActive else { return true }
        guard MultiThreadedEventLoopGroup.currentEventLoop == nil, !channel.eventLoop.inEventLoop,
            let socket = channel as? any SocketOptionProvider,
            let info = try? socket.getTCPInfo().wait()
        else {
            return false
        }
        return Int32(info.tcpi_state) != 1  // TCP_ESTABLISHED
    }
}

/// The `GET /kernels` answer a worker gave, kept with the plugin set it describes (the registry
/// generation and every build's name, version and content hash): the next request for the same set
/// is answered from it, without a worker.
final class KernelsAnswer: Sendable {
    private let last = Mutex<(key: String, body: ByteBuffer)?>(nil)

    func body(for key: String) -> ByteBuffer? {
        last.withLock { $0?.key == key ? $0?.body : nil }
    }

    func store(_ body: ByteBuffer, for key: String) { last.withLock { $0 = (key, body) } }
}

extension EddyServer {
    /// What a kernels answer depends on: the generation and the builds sent to the worker.
    static func kernelsKey(_ generation: Int, _ set: [LoadedPlugin]) -> String {
        "\(generation) " + set.map { "\($0.name)@\($0.version)#\($0.contentHash)" }.joined(separator: ",")
    }
}

/// Request bodies being read: each one's reading task and the time it must be done by.
final class BodyDeadlines: Sendable {
    private struct Pending {
        var next: UInt64 = 0
        var reads: [UInt64: (deadline: Double, task: Task<ByteBuffer, any Error>)] = [:]
    }
    private let state = Mutex(Pending())

    func add(deadline: Double, _ task: Task<ByteBuffer, any Error>) -> UInt64 {
        state.withLock { s in
            s.next &+= 1
            s.reads[s.next] = (deadline, task)
            return s.next
        }
    }

    func remove(_ id: UInt64) { _ = state.withLock { $0.reads.removeValue(forKey: id) } }

    /// Cancels every read past its deadline.
    func cancelLate(now t: Double) {
        let late = state.withLock { s in s.reads.values.filter { $0.deadline <= t }.map(\.task) }
        for task in late { task.cancel() }
    }
}

/// Whether an evaluation's client went away, cheap enough to ask between batches: the channel's own
/// flag every time, the kernel's TCP state (a hop to the channel's event loop, tens of microseconds)
/// at most every 50 ms, so that short requests never pay for it.
final class LivenessCheck: Sendable {
    let channel: any Channel
    private let lastTCPCheck: Mutex<Double>

    init(_ channel: any Channel) {
        self.channel = channel
        lastTCPCheck = Mutex(now())
    }

    func clientGone() -> Bool {
        guard channel.isActive else { return true }
        let t = now()
        let due = lastTCPCheck.withLock { last in
            guard t - last >= 0.05 else { return false }
            last = t
            return true
        }
        return due && EddyServer.clientGone(channel)
    }

    /// ``clientGone()`` from a task on an event loop, which may not wait for a future but may await one:
    /// the TCP state is asked of the connection's loop.
    func clientGoneOnLoop() async -> Bool {
        guard channel.isActive else { return true }
        let t = now()
        let due = lastTCPCheck.withLock { last in
            guard t - last >= 0.05 else { return false }
            last = t
            return true
        }
        guard due, let socket = channel as? any SocketOptionProvider, let info = try? await socket.getTCPInfo().get()
        else { return false }
        return Int32(info.tcpi_state) != 1  // TCP_ESTABLISHED
    }
}

/// The request context of `eddy serve`: Hummingbird's, plus the connection, so that an evaluation
/// can notice a client that went away.
public struct EddyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Seconds on the monotonic clock (DispatchTime reads CLOCK_MONOTONIC on Linux). Not `timespec`: which
/// module owns that C type (Glibc or NIO's CNIOLinux) changes from build to build, and a clean build
/// failed on it under MemberImportVisibility.
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

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
