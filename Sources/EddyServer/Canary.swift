@_spi(Host) import EddyHost
import EddyIO
import EddyQuery
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Canaries (`eddy serve --canary FRACTION`, issue 24): a new build of a plugin that is already loaded is
// staged (see `CanaryBuilds`) instead of replacing the serving build. A share of the requests — FRACTION
// of them — goes to workers holding the new build in its place; the rest stay on the serving build, in
// workers that never loaded the new one (see `WorkerPool.keepApart`). A sample of canary requests
// (`--canary-check`, all by default) is evaluated again with the serving build, through the shadow
// check's machinery (a worker's `.report` digest of the result, the file's stamp, the record format), and
// the two answers compared. After `--canary-requests N` canary requests answered without a crash, a
// timeout or a divergence, the new build is promoted: it becomes the serving build. A crash or a timeout
// in its code, or a divergence, rolls it back: it is quarantined with the cause (and, for a divergence,
// a record of both answers beside the quarantine file), the serving build stays, and the request that
// found it is answered by the serving build where it still can be (not after a timeout: its time is
// spent). An operator decides sooner with `POST /plugins/NAME/promote` or `/rollback` (`eddy plugins
// promote|rollback NAME`), and turns canaries on or off per plugin with `POST /plugins/NAME/canary`.

/// How a plugin's new builds are rolled out: the share of requests a new build serves first, and how
/// many it must answer cleanly before it is promoted.
struct CanaryPolicy: Sendable, Equatable {
    var fraction: Double
    var requests: Int
}

/// One request's trip to a canary: the staged build, the build it would replace, and the plugin set the
/// request runs with (the serving set with the candidate in its plugin's place).
struct CanaryTicket: Sendable {
    var candidate: LoadedPlugin
    var previous: LoadedPlugin
    var set: [LoadedPlugin]
    /// Whether this request is also evaluated with the serving build and compared.
    var compare: Bool

    var id: String { "\(candidate.name)@\(candidate.version)" }
}

/// The canaries of one server: policies (from `--canary`, and per plugin from the admin request), and
/// the runs — each staged build from its first request to its promotion or rollback — for `/plugins`.
final class Canaries: Sendable {
    /// One staged build's canary.
    struct Run: Sendable {
        enum State: String, Sendable {
            case canary
            case promoted
            case rolledBack = "rolled back"
            /// Its file was replaced or removed before it was decided.
            case withdrawn
        }
        var candidate: LoadedPlugin
        var previous: LoadedPlugin
        var policy: CanaryPolicy
        /// Canary requests sent, answered cleanly (200, no divergence), and compared.
        var routed = 0
        var clean = 0
        var compared = 0
        var state = State.canary
        var cause = ""
        /// Seconds since 1970.
        var started: Double
        var ended: Double?

        var reply: CanaryRunReply {
            CanaryRunReply(
                plugin: candidate.name, version: candidate.version, contentHash: candidate.contentHash,
                previousVersion: previous.version, previousContentHash: previous.contentHash, state: state.rawValue,
                fraction: policy.fraction, requestsToPromote: policy.requests, requests: routed, cleanRequests: clean,
                compared: compared, started: PluginHost.isoTime(started), cause: cause.isEmpty ? nil : cause,
                ended: ended.map(PluginHost.isoTime), summary: summary)
        }

        /// One line for a log or a CLI: "decimal 0.2.0 canary: 3 of 100 requests (0.1 of traffic); 0.1.0 serves the rest".
        var summary: String {
            let head = "\(PluginHost.escaped(candidate.name)) \(PluginHost.escaped(candidate.version))"
            switch state {
            case .canary:
                return "\(head) in canary: \(clean) of \(policy.requests) clean requests (\(routed) sent, "
                    + "\(compared) compared; \(policy.fraction) of traffic); \(PluginHost.escaped(previous.version)) "
                    + "serves the rest"
            case .promoted:
                return "\(head) promoted \(cause); it serves"
            case .rolledBack:
                return "\(head) rolled back after \(routed) canary requests: \(PluginHost.escaped(cause)); "
                    + "\(PluginHost.escaped(previous.version)) serves"
            case .withdrawn:
                return "\(head) withdrawn from canary after \(routed) requests (\(cause))"
            }
        }
    }

    /// `--canary` and `--canary-requests` (nil when `--canary` is 0).
    let defaults: CanaryPolicy?
    /// `--canary-check`.
    let checkRate: Double
    /// Runs kept for `/plugins`, the newest last.
    static let kept = 32
    private struct State {
        var policies: [String: CanaryPolicy] = [:]
        var runs: [Run] = []
    }
    private let state = Mutex(State())
    let requests: Counter
    let promotions: Counter
    let rollbacks: Counter
    let divergences: Counter

    init(options: ServerOptions, registry: PrometheusCollectorRegistry) {
        defaults =
            options.canaryFraction > 0
            ? CanaryPolicy(fraction: options.canaryFraction, requests: options.canaryRequests) : nil
        checkRate = options.canaryCheck
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(namespace: "eddy", metricName: name, unitName: "total", helpText: help)
            )
        }
        requests = counter("canary_requests", "Requests routed to a plugin build in canary")
        promotions = counter("canary_promotions", "Plugin builds promoted from canary to serving")
        rollbacks = counter(
            "canary_rollbacks", "Plugin builds rolled back from canary (crash, timeout, divergence or operator)")
        divergences = counter(
            "canary_divergences", "Canary answers that differed from the serving build's on the same request")
    }

    /// The policy for plugin `name`'s next build: its own (from the admin request; a fraction of 0 turns
    /// canaries off for it), else the server's; nil: a new build replaces the old at once.
    func policy(for name: String) -> CanaryPolicy? {
        let own = state.withLock { $0.policies[name] }
        if let own { return own.fraction > 0 ? own : nil }
        return defaults
    }

    func setPolicy(_ policy: CanaryPolicy, for name: String) {
        state.withLock { s in
            if s.policies[name] == nil && s.policies.count >= 4096 { return }
            s.policies[name] = policy
        }
    }

    /// The run of `candidate`, begun now (with the policy in force) if it has none; nil when it has one
    /// that is decided already.
    func run(of candidate: LoadedPlugin, previous: LoadedPlugin) -> Run? {
        let policy = self.policy(for: candidate.name) ?? defaults ?? CanaryPolicy(fraction: 0, requests: 1)
        return state.withLock { s in
            if let r = s.runs.last(where: { $0.candidate.contentHash == candidate.contentHash }) {
                return r.state == .canary ? r : nil
            }
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let r = Run(candidate: candidate, previous: previous, policy: policy, started: Double(ts.tv_sec))
            s.runs.append(r)
            if s.runs.count > Self.kept { s.runs.removeFirst(s.runs.count - Self.kept) }
            return r
        }
    }

    /// Changes the undecided run of the build `hash`; returns it as changed, or nil when there is none.
    @discardableResult
    func update(_ hash: String, _ change: (inout Run) -> Void) -> Run? {
        state.withLock { s in
            guard let k = s.runs.lastIndex(where: { $0.candidate.contentHash == hash && $0.state == .canary }) else {
                return nil
            }
            change(&s.runs[k])
            return s.runs[k]
        }
    }

    /// Ends the undecided run of the build `hash` in `state`, with `cause`; nil when there is none.
    @discardableResult
    func end(_ hash: String, _ state: Run.State, cause: String) -> Run? {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return update(hash) { r in
            r.state = state
            r.cause = cause
            r.ended = Double(ts.tv_sec)
        }
    }

    var runs: [Run] { state.withLock { $0.runs } }
}

/// The response header that marks an answer to a canary request: the build in canary, and whether it
/// was rolled back while answering (then the serving build answered).
let canaryHeaderName = HTTPField.Name("Eddy-Canary")!

extension EddyServer {
    /// Has the host stage new builds of plugins that have a canary policy (with worker processes only:
    /// two builds of one plugin cannot share this process).
    func installCanaries() {
        guard pool != nil else { return }
        let canaries = self.canaries
        host.canaries.stage { canaries.policy(for: $0) != nil }
    }

    /// Whether this request goes to a build in canary, and with which plugin set; nil: the serving set.
    func canaryTicket() -> CanaryTicket? {
        let staged = host.canaries.staged
        let serving = host.plugins
        keepCanariesApart(staged, serving)
        guard !staged.isEmpty else { return nil }
        for candidate in staged {
            guard let previous = serving.first(where: { $0.name == candidate.name }),
                let run = canaries.run(of: candidate, previous: previous),
                run.policy.fraction >= 1 || Double.random(in: 0..<1) < run.policy.fraction
            else { continue }
            canaries.update(candidate.contentHash) { $0.routed += 1 }
            canaries.requests.increment()
            let compare = canaries.checkRate >= 1 || Double.random(in: 0..<1) < canaries.checkRate
            return CanaryTicket(
                candidate: candidate, previous: previous,
                set: serving.map { $0.name == candidate.name ? candidate : $0 }, compare: compare)
        }
        return nil
    }

    /// A canary request's reply: when it is one to compare, the same request is evaluated with the serving
    /// build (the shadow check's `reevaluate`) and the answers' digests compared. A divergence rolls the
    /// canary back, and the serving build's answer is returned. Otherwise a clean answer counts towards
    /// promotion, and nil lets the canary's answer stand.
    func canaryAnswered(
        _ ticket: CanaryTicket, job: EvalRequest.Job, status: Int, body: [UInt8], evidence: ShadowEvidence?,
        stamp: FileStamp?
    ) -> Response? {
        // Stopped by a limit (client gone, deadline, busy): nothing to compare or count.
        guard ![413, 499, 503, 504].contains(status) else { return nil }
        // An answer in which the canary's code (kernels, rules, compressor hooks) took no part says
        // nothing about it: neither compared nor counted (20 `sum(id)` requests promoted a build whose
        // only kernel, on another column, was wrong).
        if status == 200, let evidence, !evidence.owners.contains(ticket.id) { return nil }
        if ticket.compare {
            var untraced = job
            untraced.trace = false
            // Not compared (the serving build's evaluation failed, or found no idle worker): not counted
            // towards promotion either.
            guard let previous = reevaluate(untraced, .report, counted: false) else { return nil }
            canaries.update(ticket.candidate.contentHash) { $0.compared += 1 }
            if status != 200 || evidence?.digest != previous.digest {
                // A file that changed between the two evaluations read other data: nobody is charged.
                guard let stamp, FileStamp(job) == stamp else { return nil }
                return canaryDiverged(ticket, job: job, canary: (status, body, evidence?.digest), serving: previous)
            }
        }
        guard status == 200 else { return nil }
        let run = canaries.update(ticket.candidate.contentHash) { $0.clean += 1 }
        if let run, run.clean >= run.policy.requests {
            promoteCanary(
                ticket.candidate.name, hash: ticket.candidate.contentHash,
                by: "after \(run.clean) clean canary requests")
        }
        return nil
    }

    /// Rolls back a canary whose answer differed from the serving build's: quarantined with the query and
    /// both answers kept in a record beside the quarantine file (as a shadow check's wrong answer is), a
    /// crash bundle written, and the serving build's answer returned.
    private func canaryDiverged(
        _ ticket: CanaryTicket, job: EvalRequest.Job, canary: (status: Int, body: [UInt8], digest: ResultDigest?),
        serving: (body: [UInt8], digest: ResultDigest)
    ) -> Response {
        canaries.divergences.increment()
        let c = ticket.candidate
        let p = ticket.previous
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let query = job.shownQuery
        let name = "canary-divergence-\(c.contentHash.prefix(16))-\(Int(ts.tv_sec)).json"
        let canaryDigest = canary.digest ?? ResultDigest(lines: 0, bytes: 0, sumA: 0, sumB: 0)
        let record = CanaryDivergenceRecord(
            time: PluginHost.isoTime(Double(ts.tv_sec)),
            plugin: "\(c.name)@\(c.version)", contentHash: c.contentHash,
            previous: "\(p.name)@\(p.version)", previousContentHash: p.contentHash, request: RecordedRequest(job),
            canary: Self.recorded(
                canary.body, canaryDigest, note: "the build in canary's answer (status \(canary.status))"),
            serving: Self.recorded(serving.body, serving.digest, note: "the serving build's answer (status 200)"))
        let saved = saveRecord(named: name, ReplyJSON.encode(record))
        let lines =
            canary.status != 200
            ? "; it answered \(canary.status), the serving build 200"
            : canaryDigest.lines == serving.digest.lines
                ? "" : "; \(canaryDigest.lines) result lines, \(serving.digest.lines) with \(p.version)"
        let cause =
            "canary divergence: answers differ from \(p.name)@\(p.version)'s"
            + (query.isEmpty ? "" : " on \(query)") + lines + (saved != nil ? " (record \(name))" : "")
        rollBackCanary(c, cause: cause)
        keepCrashBundle(timedOut: false, cause: cause, site: nil, job: job, plugins: ticket.set)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[canaryHeaderName] = "\(ticket.id) rolled back (divergence); answered by the serving build"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: serving.body)))
    }

    /// Quarantines a build in canary with `cause`, ends its run as rolled back, retires the workers that
    /// loaded it and reloads its file (its row then says which build serves). False when it is not staged.
    @discardableResult
    func rollBackCanary(_ build: LoadedPlugin, cause: String) -> Bool {
        beginRun(build.name)
        let rolled = host.rollBackCanary(build.name, hash: build.contentHash, cause: cause) != nil
        if rolled { metrics.quarantines.increment() }
        settleCanaries()
        pool?.retire(loading: [build.contentHash])
        watcher.reload(build.file)
        return rolled
    }

    /// Makes plugin `name`'s build in canary (`hash`, or whichever) the serving build. Nil when none is staged.
    @discardableResult
    func promoteCanary(_ name: String, hash: String? = nil, by how: String) -> LoadedPlugin? {
        beginRun(name)
        guard let promoted = host.promoteCanary(name, hash: hash) else { return nil }
        canaries.promotions.increment()
        let run = canaries.end(promoted.contentHash, .promoted, cause: how)
        keepCanariesApart()
        logger.info(
            "plugin build promoted from canary",
            metadata: [
                "plugin": "\(PluginHost.escaped(promoted.name))@\(PluginHost.escaped(promoted.version))",
                "how": "\(how)", "state": "\(run?.summary ?? "")",
            ])
        return promoted
    }

    /// Begins the run of plugin `name`'s staged build, if it has none yet (an operator may decide before
    /// any request went to it).
    private func beginRun(_ name: String) {
        guard let candidate = host.canaries.candidate(of: name),
            let previous = host.plugins.first(where: { $0.name == name })
        else { return }
        _ = canaries.run(of: candidate, previous: previous)
    }

    /// Ends the runs of builds no longer staged: quarantined (a crash, a hang, a shadow check, an
    /// operator) as rolled back, with the quarantine's cause; otherwise withdrawn (their file was
    /// replaced or removed). Logs and counts each.
    func settleCanaries() {
        let staged = Set(host.canaries.staged.map(\.contentHash))
        for run in canaries.runs where run.state == .canary && !staged.contains(run.candidate.contentHash) {
            let hash = run.candidate.contentHash
            if host.plugins.contains(where: { $0.contentHash == hash }) { continue }  // being promoted
            if let q = host.quarantine(of: hash) {
                guard let ended = canaries.end(hash, .rolledBack, cause: q.cause) else { continue }
                canaries.rollbacks.increment()
                logger.error("plugin build rolled back from canary", metadata: ["state": "\(ended.summary)"])
            } else if let ended = canaries.end(hash, .withdrawn, cause: "its file changed or went away") {
                logger.info("plugin build withdrawn from canary", metadata: ["state": "\(ended.summary)"])
            }
        }
        keepCanariesApart()
    }

    /// Tells the pool which builds of plugins in canary are in use: workers hold one or the other.
    private func keepCanariesApart(_ staged: [LoadedPlugin]? = nil, _ serving: [LoadedPlugin]? = nil) {
        guard let pool else { return }
        let staged = staged ?? host.canaries.staged
        let serving = staged.isEmpty ? [] : serving ?? host.plugins
        var builds: [String: Set<String>] = [:]
        for c in staged {
            builds[c.name] = Set([c.contentHash] + serving.filter { $0.name == c.name }.map(\.contentHash))
        }
        pool.keepApart(builds)
    }

    /// The canary runs for `/plugins`, newest last.
    func canaryReport() -> [CanaryRunReply] {
        settleCanaries()
        return canaries.runs.map(\.reply)
    }

    // MARK: - Admin requests

    /// `POST /plugins/NAME/canary?fraction=F&requests=N`, `POST /plugins/NAME/promote`,
    /// `POST /plugins/NAME/rollback`. Like every request but `/health` they need the bearer token; a
    /// server started with `--no-token` refuses them (any local user could call it).
    func addCanaryRoutes(to router: Router<EddyRequestContext>) {
        router.post("plugins/:name/canary") { request, context in
            if let refusal = self.adminRefusal() { return refusal }
            guard let name = self.pluginName(context) else { return self.badName() }
            var policy =
                self.canaries.policy(for: name) ?? CanaryPolicy(fraction: 0, requests: self.options.canaryRequests)
            for (key, value) in (try? EvalRequest.formPairs(request.uri.query)) ?? [] {
                switch key {
                case "fraction":
                    guard let f = Double(value), f >= 0, f <= 1 else {
                        return self.refuse(EddyFailure(.badRequest, "fraction: expected a share from 0 to 1"))
                    }
                    policy.fraction = f
                case "requests":
                    guard let n = Int(value), n >= 1, n <= 10_000_000 else {
                        return self.refuse(EddyFailure(.badRequest, "requests: expected 1 to 10000000"))
                    }
                    policy.requests = n
                default:
                    return self.refuse(
                        EddyFailure(
                            .badRequest, "unknown parameter '\(shortForDisplay(key, limit: 40))' (fraction, requests)"))
                }
            }
            self.canaries.setPolicy(policy, for: name)
            self.logger.info(
                "canary policy set",
                metadata: [
                    "plugin": "\(name)", "fraction": "\(policy.fraction)",
                    "requests": "\(policy.requests)",
                ])
            return self.json(
                CanaryPolicyReply(
                    plugin: name, fraction: policy.fraction, requestsToPromote: policy.requests,
                    note: policy.fraction > 0
                        ? "the next build of \(name) dropped into the plugin directory starts in canary"
                        : "the next build of \(name) replaces the serving one at once"))
        }
        router.post("plugins/:name/promote") { _, context in
            if let refusal = self.adminRefusal() { return refusal }
            guard let name = self.pluginName(context) else { return self.badName() }
            let clean = self.host.canaries.candidate(of: name).flatMap { c in
                self.canaries.runs.last { $0.candidate.contentHash == c.contentHash }?.clean
            }
            let how = "by an operator (POST /plugins/\(name)/promote) after \(clean ?? 0) clean canary requests"
            guard let promoted = self.promoteCanary(name, by: how) else {
                return self.noCanary(name)
            }
            return self.json(
                CanaryDecisionReply(
                    plugin: name, state: "promoted", version: promoted.version, contentHash: promoted.contentHash,
                    summary: self.canaries.runs.last { $0.candidate.contentHash == promoted.contentHash }?.summary
                        ?? ""))
        }
        router.post("plugins/:name/rollback") { _, context in
            if let refusal = self.adminRefusal() { return refusal }
            guard let name = self.pluginName(context) else { return self.badName() }
            guard let build = self.host.canaries.candidate(of: name),
                self.rollBackCanary(build, cause: "rolled back by an operator (POST /plugins/\(name)/rollback)")
            else { return self.noCanary(name) }
            return self.json(
                CanaryDecisionReply(
                    plugin: name, state: "rolled back", version: build.version, contentHash: build.contentHash,
                    serving: self.host.plugins.first { $0.name == name }?.version ?? "",
                    summary: self.canaries.runs.last { $0.candidate.contentHash == build.contentHash }?.summary ?? ""
                ))
        }
    }

    private func adminRefusal() -> Response? {
        if options.token == nil {
            return refuse(
                EddyFailure(
                    .forbidden, "admin requests need the server's bearer token; this server runs with --no-token"))
        }
        if pool == nil {
            return json(
                ErrorReply(
                    "canaries need worker processes: with --workers 0 two builds of a plugin would share "
                        + "the server's process"), status: .conflict)
        }
        return nil
    }

    private func pluginName(_ context: EddyRequestContext) -> String? {
        guard let name = context.parameters.get("name"), PluginHost.isValidPluginName(name) else { return nil }
        return name
    }

    private func badName() -> Response {
        refuse(EddyFailure(.badRequest, "plugin name: \(PluginHost.pluginNameRule)"))
    }

    private func noCanary(_ name: String) -> Response {
        let last = canaries.runs.last { $0.candidate.name == name }
        return json(
            ErrorReply("plugin \(name) has no build in canary" + (last.map { " (last: \($0.summary))" } ?? "")),
            status: .conflict)
    }
}
