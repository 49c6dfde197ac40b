import Dispatch
public import Eddy
public import EddyHost
import EddyIO
import EddyQuery
import Foundation
import Hummingbird
import NIOCore
public import Logging
import Prometheus
import Synchronization

/// The long-running host behind `eddy serve`: a session whose plugin directory is watched, and an
/// HTTP API that evaluates with one execution context per request.
public final class EddyServer: Sendable {
    public let session: Session
    public let host: PluginHost
    public let watcher: PluginWatcher
    public let logger: Logger
    public let options: ServerOptions
    let metrics: Metrics
    let uploads: UploadDirectory
    let slots: EvaluationSlots

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
        let inFlight = Atomic<Int>(0)

        init() {
            evaluations = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "eddy", metricName: "evaluations", unitName: "total",
                                                   helpText: "Evaluations completed"))
            evaluationErrors = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "eddy", metricName: "evaluation_errors", unitName: "total",
                                                   helpText: "Evaluations that failed"))
            pluginLoads = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "eddy", metricName: "plugin_loads", unitName: "total",
                                                   helpText: "Plugins added or replaced"))
            pluginRejections = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "eddy", metricName: "plugin_rejections", unitName: "total",
                                                   helpText: "Plugin files refused"))
            pluginRemovals = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "eddy", metricName: "plugin_removals", unitName: "total",
                                                   helpText: "Plugins withdrawn"))
            generation = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "eddy", metricName: "snapshot", unitName: "generation",
                                                   helpText: "Kernel registry snapshot generation"))
            retainedImages = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "eddy", metricName: "retained", unitName: "images",
                                                   helpText: "Plugin images mapped into the process (never unmapped)"))
            refusals = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "eddy", metricName: "evaluations_refused", unitName: "total",
                                                   helpText: "Evaluations refused or stopped by a limit (busy, deadline, result size, client gone)"))
        }
    }

    /// - Throws: ``ServerSetupError`` when the private upload directory cannot be made.
    public init(pluginDirectory: String, logger: Logger, rescanSeconds: Double = 2, probe: PluginProbe? = nil,
                policy: PluginLoadPolicy = PluginLoadPolicy(), options: ServerOptions = ServerOptions()) throws {
        self.options = options
        self.uploads = try UploadDirectory()
        self.slots = EvaluationSlots(limit: options.maxConcurrent, queueLimit: options.maxQueue)
        let session = Session()
        let host = PluginHost(session: session, probe: probe, policy: policy)
        let metrics = Metrics()
        self.session = session
        self.host = host
        self.logger = logger
        self.metrics = metrics
        self.watcher = PluginWatcher(host: host, directory: pluginDirectory, rescanSeconds: rescanSeconds) { event in
            // File names and details come from the directory and the plugin: escaped, one log line each.
            var meta: Logger.Metadata = ["file": "\(PluginHost.escaped(event.file))", "generation": "\(event.generation)"]
            if !event.plugin.isEmpty { meta["plugin"] = "\(PluginHost.escaped(event.plugin))@\(PluginHost.escaped(event.version))" }
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
    }

    /// Builds the router: `POST /eval`, `GET /plugins`, `GET /kernels`, `GET /health`, `GET /metrics`.
    public func router() -> Router<EddyRequestContext> {
        let router = Router(context: EddyRequestContext.self)
        router.add(middleware: RequestGuard(options: options))
        router.get("health") { _, _ in
            self.json(["status": "ok", "generation": self.session.kernels.generation,
                       "plugins": self.host.plugins.count, "in_flight": self.metrics.inFlight.load(ordering: .relaxed)])
        }
        router.get("plugins") { _, _ in
            let rows = self.watcher.report.map { r -> [String: Any] in
                var row: [String: Any] = [
                    "file": r.file, "status": r.status.rawValue, "reason": r.reason, "plugin": r.plugin, "version": r.version,
                    "kernels": r.kernels, "content_hash": r.contentHash, "load_ms": r.loadMilliseconds,
                ]
                if !r.linkTarget.isEmpty { row["link_target"] = r.linkTarget }
                return row
            }
            return self.json(["directory": self.watcher.directory, "generation": self.session.kernels.generation,
                              "retained_images": self.host.retainedImages,
                              "fingerprint": self.session.kernels.snapshot.fingerprint, "files": rows])
        }
        router.get("kernels") { _, _ in
            let snapshot = self.session.kernels.snapshot
            let keys = snapshot.entries.map { e -> [String: Any] in
                ["parent": e.parent.name, "child": e.child.name,
                 "kernels": e.kernels.map { ["name": $0.name, "owner": $0.owner.description] },
                 "rules": e.rules.map { ["name": $0.name, "owner": $0.owner.description] }]
            }
            return self.json(["generation": snapshot.generation, "fingerprint": snapshot.fingerprint, "keys": keys])
        }
        router.get("metrics") { _, _ in
            self.metrics.generation.set(Double(self.session.kernels.generation))
            self.metrics.retainedImages.set(Double(self.host.retainedImages))
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers,
                            body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.registry.emitToString())))
        }
        router.post("eval") { request, context in
            let params: EvalRequest.Params
            let query = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
            do throws(EvalRequest.Refusal) {
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
                return self.json(["error": "the body did not arrive within \(self.options.bodyTimeout) s (--body-timeout)"],
                                 status: .requestTimeout)
            }
            let contentType = request.headers[.contentType] ?? ""
            return await self.evaluate(contentType: contentType, body: Data(body.readableBytesView), query: params,
                                       queryNames: Set(query.map(\.0)), channel: context.channel)
        }
        return router
    }

    struct BodyTimeout: Error {}

    /// The whole body, at most `maxBodyBytes`, within `bodyTimeout` seconds.
    func collectBody(_ request: Request) async throws -> ByteBuffer {
        let limit = options.maxBodyBytes
        let seconds = options.bodyTimeout
        return try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask { try await request.body.collect(upTo: limit) }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let body = first else { throw BodyTimeout() }
            return body
        }
    }

    /// Runs the HTTP server until SIGTERM or SIGINT; in-flight requests finish first.
    public func run(hostname: String, port: Int) async throws {
        watcher.start()
        defer {
            watcher.stop()
            uploads.remove()
        }
        let idle = TimeAmount.nanoseconds(Int64(options.idleTimeout * 1e9))
        let app = Application(router: router(), server: .http1(configuration: .init(idleTimeout: idle)),
                              configuration: .init(address: .hostname(hostname, port: port)), logger: logger)
        logger.info("eddy serve listening", metadata: ["address": "\(hostname):\(port)",
                                                        "plugins": "\(watcher.directory)"])
        try await app.runService()
    }

    func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        jsonResponse(object, status: status)
    }

    /// Evaluates one request on a thread of its own (evaluation is CPU work; it must not hold up the
    /// server's event loops), with one execution context for the whole request. At most
    /// `maxConcurrent` run at once; the evaluation stops at its deadline or when the client goes away.
    func evaluate(contentType: String, body: Data, query: EvalRequest.Params, queryNames: Set<String>,
                  channel: any Channel) async -> Response {
        guard await slots.acquire() else {
            metrics.refusals.increment()
            return json(["error": "server busy: \(slots.limit) evaluations running and \(slots.queueLimit) waiting "
                             + "(--max-concurrent, --max-queue); try again"], status: .serviceUnavailable)
        }
        defer { slots.release() }
        let deadline = now() + options.evalTimeout
        let timeout = options.evalTimeout
        let stop: @Sendable () -> EvaluationStopped? = {
            if Self.clientGone(channel) { return EvaluationStopped(.cancelled, "the client closed the connection") }
            if now() > deadline {
                return EvaluationStopped(.deadline, "the evaluation did not finish within \(timeout) s (--eval-timeout)")
            }
            return nil
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Response, Never>) in
            DispatchQueue.global().async {
                self.metrics.inFlight.add(1, ordering: .relaxed)
                defer { self.metrics.inFlight.subtract(1, ordering: .relaxed) }
                let (status, object) = EvalRequest.run(server: self, contentType: contentType, body: body, query: query,
                                                       queryNames: queryNames, stop: stop)
                switch status.code {
                case 200: self.metrics.evaluations.increment()
                case 413, 499, 503, 504: self.metrics.refusals.increment()
                default: self.metrics.evaluationErrors.increment()
                }
                if status.code == 499 {
                    self.logger.info("evaluation cancelled: the client closed the connection")
                }
                continuation.resume(returning: self.json(object, status: status))
            }
        }
    }
}

extension EddyServer {
    /// Whether the client closed its side of the connection. The connection is not read while a
    /// request is being evaluated, so a close is seen in the socket's TCP state (CLOSE_WAIT after the
    /// client's FIN), not as an event. Called from the evaluation's thread, between batches.
    static func clientGone(_ channel: any Channel) -> Bool {
        guard channel.isActive else { return true }
        guard let socket = channel as? any SocketOptionProvider, let info = try? socket.getTCPInfo().wait() else {
            return false
        }
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

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
