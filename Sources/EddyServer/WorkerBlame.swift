@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
import HTTPTypes
import Hummingbird
import Logging
import Prometheus

/// Blame for what plugin code does in a worker after its call returned: a thread a kernel started that
/// crashes during someone else's request, or keeps a core busy while the worker is idle. A worker that
/// ran a plugin's code since it was spawned stays that plugin's responsibility (see
/// ``WorkerPool/suspects(_:)``): the builds charged are quarantined, the workers that loaded them are
/// retired, and an innocent request runs again on a worker without them.
extension EddyServer {
    /// Starts the pool's watch over idle workers: one that keeps a core busy without a request, or dies
    /// without one, is replaced, and the builds whose code ran in it are charged with it.
    func superviseWorkers() {
        reportLastGoodFallbacks()
        pool?.watch { [self] cause, suspects in
            guard !suspects.isEmpty else {
                logger.error("idle worker replaced", metadata: ["cause": "\(cause)"])
                return
            }
            chargeTainted(suspects, cause: cause, in: host.plugins)
        }
    }

    /// Quarantines each of `suspects` (builds whose code ran in a worker that then crashed or spun
    /// outside plugin code) with `cause`, logs one line per build naming it, and retires every worker
    /// that loaded one of them.
    func chargeTainted(_ suspects: [WorkerRequest.Plugin], cause: String, in set: [LoadedPlugin]) {
        let names = suspects.map { "\($0.name)@\($0.version)" }
        let whose =
            cause.contains(" on a thread started in ")
            ? ""
            : suspects.count == 1
                ? " after code of this plugin had run there (a thread it started?)"
                : " after code of plugins \(names.joined(separator: ", ")) had run there"
        for (p, name) in zip(suspects, names) {
            if host.quarantine(hash: p.hash, plugin: name, cause: "\(cause)\(whose)") {
                metrics.quarantines.increment()
            }
            if let loaded = set.first(where: { $0.contentHash == p.hash }) { watcher.reload(loaded.file) }
            logger.error(
                "plugin quarantined",
                metadata: [
                    "plugin": "\(PluginHost.escaped(p.name))@\(PluginHost.escaped(p.version))",
                    "cause": "\(PluginHost.escaped(cause))\(PluginHost.escaped(whose))",
                ])
        }
        pool?.retire(loading: Set(suspects.map(\.hash)))
    }

    /// A worker's refusal of an `.eddy` file whose encoding's plugin is not loaded because its build
    /// is quarantined or its file was refused, said as such (the worker knows nothing of either and
    /// asks for the plugin to be added, though its file is in the directory); nil for any other
    /// answer. The footer is read through the request's open descriptor.
    func quarantineReply(_ job: EvalRequest.Job?, status: Int) -> Response? {
        guard status >= 400, let job, job.inputFormat == "eddy", let fd = job.file?.descriptor else { return nil }
        let name = job.uploaded ? "the upload" : job.path
        // Quarantined, else refused at load (its probe crashed, say): either way its file is in the
        // directory, and the worker's "add that plugin" would mislead.
        let note =
            (host.quarantined.isEmpty ? nil : host.quarantineExplanation(forEddyFile: name, descriptor: fd))
            ?? host.refusalExplanation(forEddyFile: name, descriptor: fd, rows: watcher.report)
        guard let note else { return nil }
        return json(ErrorReply(note), status: HTTPResponse.Status(code: status))
    }
}
