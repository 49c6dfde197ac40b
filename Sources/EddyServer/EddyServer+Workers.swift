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
            // A build of the request's plugin set was quarantined after the set was taken (another request
            // crashed it): the worker refuses to load it, or its code failed. The request runs once more
            // with the plugin set as it is now, which no longer holds it.
            if status >= 500, !retried, canary == nil,
                set.contains(where: { host.quarantine(of: $0.contentHash) != nil })
            {
                return runInWorker(pool, op, job: job, deadline: deadline, clientGone: clientGone, retried: true)
            }
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
            return refuse(EddyFailure(.cancelled, "the client closed the connection"))
        case .protocolViolation(let what, let site):
            logger.error("worker replaced: it answered out of protocol", metadata: ["what": "\(what)"])
            if let site, Self.plugin(named: site, in: set) != nil {
                return blame(cause: "wrote to its worker's socket (\(what))", site: site, in: set, status: .badGateway)
            }
            return json(
                ErrorReply(
                    "the evaluation's worker answered out of protocol (\(what)): plugin code wrote to its "
                        + "socket; the worker was replaced and its answer dropped"), status: .badGateway)
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
            return json(ErrorReply(message, cause: cause), status: status)
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
            ErrorReply(
                message, cause: cause, plugin: plugin.name, version: plugin.version, site: site,
                contentHash: plugin.contentHash), status: status)
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
