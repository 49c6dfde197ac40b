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
    let metrics: Metrics

    final class Metrics: Sendable {
        let registry = PrometheusCollectorRegistry()
        let evaluations: Counter
        let evaluationErrors: Counter
        let pluginLoads: Counter
        let pluginRejections: Counter
        let pluginRemovals: Counter
        let generation: Gauge
        let retainedImages: Gauge
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
        }
    }

    public init(pluginDirectory: String, logger: Logger, rescanSeconds: Double = 2, probe: PluginProbe? = nil,
                policy: PluginLoadPolicy = PluginLoadPolicy()) {
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
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("health") { _, _ in
            self.json(["status": "ok", "generation": self.session.kernels.generation,
                       "plugins": self.host.plugins.count, "in_flight": self.metrics.inFlight.load(ordering: .relaxed)])
        }
        router.get("plugins") { _, _ in
            let rows = self.watcher.report.map { r -> [String: Any] in
                ["file": r.file, "status": r.status.rawValue, "reason": r.reason, "plugin": r.plugin, "version": r.version,
                 "kernels": r.kernels, "content_hash": r.contentHash, "load_ms": r.loadMilliseconds]
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
            let body = try await request.body.collect(upTo: 256 << 20)
            let contentType = request.headers[.contentType] ?? ""
            let query = request.uri.queryParameters
            let params = EvalRequest.Params(
                where: query["where"].map(String.init), select: query["select"].map(String.init),
                format: query["format"].map(String.init), inputFormat: query["input_format"].map(String.init),
                trace: query["trace"].map { $0 == "1" || $0 == "true" } ?? false, path: query["path"].map(String.init))
            let data = Data(body.readableBytesView)
            return await self.evaluate(contentType: contentType, body: data, query: params)
        }
        return router
    }

    /// Runs the HTTP server until SIGTERM or SIGINT; in-flight requests finish first.
    public func run(hostname: String, port: Int) async throws {
        watcher.start()
        defer { watcher.stop() }
        let app = Application(router: router(), configuration: .init(address: .hostname(hostname, port: port)),
                              logger: logger)
        logger.info("eddy serve listening", metadata: ["address": "\(hostname):\(port)",
                                                        "plugins": "\(watcher.directory)"])
        try await app.runService()
    }

    func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Evaluates one request on a thread of its own (evaluation is CPU work; it must not hold up the
    /// server's event loops), with one execution context for the whole request.
    func evaluate(contentType: String, body: Data, query: EvalRequest.Params) async -> Response {
        await withCheckedContinuation { (continuation: CheckedContinuation<Response, Never>) in
            DispatchQueue.global().async {
                self.metrics.inFlight.add(1, ordering: .relaxed)
                defer { self.metrics.inFlight.subtract(1, ordering: .relaxed) }
                let (status, object) = EvalRequest.run(server: self, contentType: contentType, body: body, query: query)
                if status == .ok { self.metrics.evaluations.increment() } else { self.metrics.evaluationErrors.increment() }
                continuation.resume(returning: self.json(object, status: status))
            }
        }
    }
}
