@_spi(Host) import EddyHost
import Logging
import Prometheus

/// The server's side of falling back to a plugin's last good build (see ``LastGoodBuilds``): the host
/// falls back when it quarantines a build (or finds one quarantined at start); the server logs each
/// fallback, counts it in `/metrics` (`eddy_last_good_fallbacks_total`), and tells the host which
/// builds answered requests without a fault, so that they become last good builds.
extension EddyServer {
    /// Logs and counts every fallback the host makes, those of the first scan included.
    func reportLastGoodFallbacks() {
        let fallbacks = metrics.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "eddy", metricName: "last_good_fallbacks", unitName: "total",
                helpText: "Plugins served by their last good build after a newer build was quarantined"))
        host.lastGood.observe { [logger] f in
            if let missed = f.missed {
                logger.warning(
                    "plugin's last good build cannot serve",
                    metadata: [
                        "plugin": "\(PluginHost.escaped(f.plugin))",
                        "last_good": "\(PluginHost.escaped(f.version)) (\(f.hash.prefix(16)))",
                        "quarantined": "\(PluginHost.escaped(f.quarantinedVersion))",
                        "why": "\(PluginHost.escaped(missed))",
                    ])
                return
            }
            fallbacks.increment()
            logger.warning(
                "plugin falls back to its last good build",
                metadata: [
                    "plugin": "\(PluginHost.escaped(f.plugin))",
                    "serving": "\(PluginHost.escaped(f.version)) (\(f.hash.prefix(16)))",
                    "quarantined": "\(PluginHost.escaped(f.quarantinedVersion))",
                    "cause": "\(PluginHost.escaped(f.cause))",
                ])
        }
    }

    /// A worker answered an evaluation with `status`, with `set` loaded: a success counts towards
    /// each build's becoming its plugin's last good build.
    func answered(_ status: Int, with set: [LoadedPlugin]) {
        guard status == 200, !set.isEmpty else { return }
        host.servedWithoutFault(set)
    }
}
