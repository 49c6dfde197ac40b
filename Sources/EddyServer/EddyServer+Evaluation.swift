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
            return refuse(
                EddyFailure(
                    .busy,
                    "server busy: \(slots.limit) evaluations running and \(slots.queueLimit) waiting "
                        + "(--max-concurrent, --max-queue); try again"))
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
            do throws(EddyFailure) {
                prepared = try EvalRequest.prepare(
                    server: self, contentType: contentType, body: Data(body.readableBytesView), query: query,
                    queryNames: queryNames)
            } catch {
                count(error.status)
                return refuse(error)
            }
        }
        // Only a short select list over a file already open: a loop's thread must not parse or format
        // for long.
        if pool != nil, let job = prepared, job.inputFormat == "eddy", (job.select?.utf8.count ?? 0) <= 1024,
            let evaluated = footerAnswer(job, stop: stop, onlyIfOpen: true)
        {
            count(evaluated.status)
            return answerResponse(evaluated)
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
                continuation.resume(
                    returning: self.evaluateOnThread(
                        parsed, contentType: contentType, body: body, query: query, queryNames: queryNames,
                        deadline: deadline, stop: stop, liveness: liveness))
            }
        }
    }

    /// The thread's part of ``evaluate(contentType:body:query:queryNames:channel:)``: the request parsed
    /// if it was not yet, then answered from a footer, by a worker, or here.
    private func evaluateOnThread(
        _ parsed: EvalRequest.Job?, contentType: String, body: ByteBuffer, query: EvalRequest.Params,
        queryNames: Set<String>, deadline: Double, stop: @escaping @Sendable () -> EvaluationStopped?,
        liveness: LivenessCheck
    ) -> Response {
        let evaluated: EvalRequest.Evaluated
        do throws(EddyFailure) {
            let job: EvalRequest.Job
            if let parsed {
                job = parsed
            } else {
                job = try EvalRequest.prepare(
                    server: self, contentType: contentType, body: Data(body.readableBytesView),
                    query: query, queryNames: queryNames)
            }
            if self.pool != nil, let answer = self.footerAnswer(job, stop: stop) {
                evaluated = answer
            } else if let pool = self.pool {
                let response = self.runInWorker(
                    pool, .eval, job: job, deadline: deadline,
                    clientGone: { liveness.clientGone() })
                self.count(response.status)
                return response
            } else if self.sampledForCheck() {
                let set = self.host.plugins
                let stamp = FileStamp(job)
                evaluated = EvalRequest.evaluateForCheck(job, session: self.session, check: .report, stop: stop)
                if evaluated.failure == nil, let evidence = evaluated.evidence, !evidence.owners.isEmpty {
                    self.queueShadowCheck(
                        job, plugins: set, answer: ReplyJSON.encode(evaluated.answer), evidence: evidence,
                        stamp: stamp)
                }
            } else {
                evaluated = EvalRequest.evaluate(job, session: self.session, stop: stop)
            }
        } catch {
            self.count(error.status)
            return self.refuse(error)
        }
        self.count(evaluated.status)
        return self.answerResponse(evaluated)
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
    ) -> EvalRequest.Evaluated? {
        guard job.inputFormat == "eddy", job.where == nil, !job.trace, !job.uploaded,
            Evaluation.readsNoColumn(whereText: nil, selectText: job.select),
            let opened = job.file,
            let file = try? EddyFile(
                descriptor: opened.descriptor, path: job.path, snapshot: session.kernels.snapshot,
                maxFooterBytes: 4 << 20, onlyIfOpen: onlyIfOpen, mapped: false)
        else { return nil }
        // The supervisor's snapshot names the current plugin set (without their kernels), so the reply's
        // fingerprint and plugins are those a worker would report.
        var evaluated = EvalRequest.evaluate(job, session: session, file: file, stop: stop)
        if evaluated.failure == nil { evaluated.answer.answeredFrom = "footer" }
        return evaluated
    }

    /// Runs blocking work on a thread of its own, off the event loops.
    func offLoop(_ body: @escaping @Sendable () -> Response) async -> Response {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: body()) }
        }
    }
}
