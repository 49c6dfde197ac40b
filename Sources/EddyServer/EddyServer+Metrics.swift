import Dispatch
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Prometheus
import Synchronization

extension EddyServer {
    /// The server's Prometheus metrics (`GET /metrics`), all named `eddy_<name>_<unit>`.
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
            let r = registry
            evaluations = Self.counter(r, "evaluations", "total", "Evaluations completed")
            evaluationErrors = Self.counter(r, "evaluation_errors", "total", "Evaluations that failed")
            pluginLoads = Self.counter(r, "plugin_loads", "total", "Plugins added or replaced")
            pluginRejections = Self.counter(r, "plugin_rejections", "total", "Plugin files refused")
            pluginRemovals = Self.counter(r, "plugin_removals", "total", "Plugins withdrawn")
            generation = Self.gauge(r, "snapshot", "generation", "Kernel registry snapshot generation")
            retainedImages = Self.gauge(
                r, "retained", "images", "Plugin images mapped into the process (never unmapped)")
            workerRestarts = Self.counter(
                r, "worker_restarts", "total",
                "Worker processes replaced after a crash, a deadline or a lost client")
            quarantines = Self.counter(
                r, "quarantines", "total",
                "Plugin builds quarantined: they crashed or hung a worker, or a shadow check caught a wrong answer")
            connectionsOpen = Self.gauge(
                r, "connections", "open", "HTTP connections open (at most --max-connections)")
            connectionsRefused = Self.counter(
                r, "connections_refused", "total",
                "Connections closed at once: at --max-connections with every connection busy")
            connectionsReclaimed = Self.counter(
                r, "connections_reclaimed", "total",
                "Idle connections closed to make room for a new one at --max-connections")
            shadowChecks = Self.counter(
                r, "shadow_checks", "total",
                "Sampled answers compared with an evaluation without plugin kernels and hooks (--shadow-check)")
            shadowDivergences = Self.counter(
                r, "shadow_divergences", "total",
                "Shadow checks whose answers differed: the plugin builds involved are quarantined")
            shadowDropped = Self.counter(
                r, "shadow_checks_dropped", "total",
                "Sampled answers not checked: the shadow-check queue was full")
            shadowInconclusive = Self.counter(
                r, "shadow_checks_inconclusive", "total",
                "Shadow checks that could not compare: the evaluation without plugin code failed")
            refusals = Self.counter(
                r, "evaluations_refused", "total",
                "Evaluations refused or stopped by a limit (busy, deadline, result size, client gone)")
        }

        /// A counter named `eddy_<name>_<unit>`, as every metric of the server is named.
        static func counter(
            _ registry: PrometheusCollectorRegistry, _ name: String, _ unit: String, _ help: String
        ) -> Counter {
            registry.makeCounter(descriptor: descriptor(name, unit, help))
        }

        /// A gauge named `eddy_<name>_<unit>`.
        static func gauge(
            _ registry: PrometheusCollectorRegistry, _ name: String, _ unit: String, _ help: String
        ) -> Gauge {
            registry.makeGauge(descriptor: descriptor(name, unit, help))
        }

        private static func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "eddy", metricName: name, unitName: unit, helpText: help)
        }
    }

    /// Counts a finished evaluation by its status: an answer, a refusal or an error.
    func count(_ status: HTTPResponse.Status) {
        switch status.code {
        case 200: metrics.evaluations.increment()
        case 413, 499, 503, 504: metrics.refusals.increment()
        default: metrics.evaluationErrors.increment()
        }
        if status.code == 499 { logger.info("evaluation cancelled: the client closed the connection") }
    }
}
