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
    /// Builds the router: `POST /eval`, `GET /plugins`, `GET /kernels`, `GET /health`, `GET /metrics`.
    public func router() -> Router<EddyRequestContext> {
        let router = Router(context: EddyRequestContext.self)
        router.add(middleware: ConnectionActivity(limit: connections))
        router.add(middleware: RequestGuard(options: options))
        router.get("health") { _, _ in self.health() }
        router.get("plugins") { _, _ in self.pluginsAnswer() }
        addCanaryRoutes(to: router)
        router.get("kernels") { _, _ in await self.kernelsResponse() }
        router.get("metrics") { _, _ in self.metricsResponse() }
        router.post("eval") { request, context in try await self.evalResponse(request, context) }
        // A known path asked with another method: 405 naming the one it takes (not a bare 404).
        let other: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch]
        for (path, allowed) in [
            ("health", HTTPRequest.Method.get), ("plugins", .get), ("kernels", .get), ("metrics", .get),
            ("eval", .post), ("plugins/:name/canary", .post), ("plugins/:name/promote", .post),
            ("plugins/:name/rollback", .post),
        ] {
            for method in other where method != allowed {
                router.on(RouterPath(path), method: method) { _, _ in
                    var response = jsonResponse(
                        ErrorReply("\(method.rawValue) is not allowed on /\(path): use \(allowed.rawValue)"),
                        status: .methodNotAllowed)
                    response.headers[.allow] = allowed.rawValue
                    return response
                }
            }
        }
        return router
    }

    /// `GET /health`.
    func health() -> Response {
        self.json(
            HealthReply(
                status: "ok", generation: self.session.kernels.generation, plugins: self.host.plugins.count,
                inFlight: self.metrics.inFlight.load(ordering: .relaxed), connections: self.connections.open,
                confinement: self.confinement.description))
    }

    /// `GET /plugins`: the scan report, each file's canary run, the quarantined builds.
    func pluginsAnswer() -> Response {
        let loaded = self.host.plugins
        let canaries = self.canaryReport()
        let files = self.watcher.report.map { r in
            var row = PluginFileReply(
                file: r.file, status: r.status.rawValue, reason: r.reason, plugin: r.plugin, version: r.version,
                kernels: r.kernels, contentHash: r.contentHash, loadMilliseconds: r.loadMilliseconds)
            if !r.linkTarget.isEmpty { row.linkTarget = r.linkTarget }
            // As `eddy plugins --json` says it. A row of a file rescanned unchanged has none of its own:
            // the build loaded from the file carries what it was verified on.
            let build = loaded.first { $0.file == r.file && $0.contentHash.hasPrefix(r.contentHash) }
            if r.status == .loaded || r.status == .replaced, let verified = r.verified ?? build?.verified {
                row.verifiedInputs = verified.inputs
            }
            // The row of a file whose build is (or was) in canary carries its run; while the build is in
            // canary or once promoted, the run's summary is the row's reason (the load's words go stale).
            guard !r.contentHash.isEmpty, let run = canaries.last(where: { $0.contentHash.hasPrefix(r.contentHash) })
            else { return row }
            row.canary = run
            if r.status == .replaced, run.state == "canary" || run.state == "promoted" { row.reason = run.summary }
            return row
        }
        let quarantined = self.host.quarantined.map { q in
            QuarantinedBuildReply(
                contentHash: q.hash, plugin: q.plugin, cause: q.cause, time: PluginHost.isoTime(q.time))
        }
        return self.json(
            PluginsReply(
                directory: self.watcher.directory, generation: self.session.kernels.generation,
                quarantined: quarantined, workers: self.pool?.count ?? 0, canaries: canaries,
                confinement: self.confinement.description, retainedImages: self.host.retainedImages,
                fingerprint: self.session.kernels.snapshot.fingerprint, files: files))
    }

    /// `GET /kernels`: the registry's keys with their kernels and rules, and who registered each.
    func kernelsResponse() async -> Response {
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
                return self.refuse(EddyFailure(.busy, "server busy; try again"))
            }
            defer { self.slots.release() }
            return await self.offLoop {
                self.runInWorker(pool, .kernels, job: nil, deadline: now() + 10, clientGone: { false })
            }
        }
        return self.json(KernelsReply(self.session.kernels.snapshot))
    }

    /// `GET /metrics`, in Prometheus' text format.
    func metricsResponse() -> Response {
        self.metrics.connectionsSeen(self.connections)
        self.metrics.generation.set(Double(self.session.kernels.generation))
        self.metrics.retainedImages.set(Double(self.host.retainedImages))
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.registry.emitToString())))
    }

    /// `POST /eval`: the parameters and the body read and checked, then
    /// ``evaluate(contentType:body:query:queryNames:channel:)``.
    func evalResponse(_ request: Request, _ context: EddyRequestContext) async throws -> Response {
        var params: EvalRequest.Params
        let query: [(String, String)]
        do throws(EddyFailure) {
            // Decoded as forms encode them (`+` is a space), not only %-escapes.
            query = try EvalRequest.formPairs(request.uri.query)
            params = try EvalRequest.params(fromQuery: query)
        } catch {
            return self.refuse(error)
        }
        let tooLarge = EddyFailure(
            .tooLarge, "the body is larger than \(self.options.maxBodyBytes) bytes (--max-body-bytes)")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > self.options.maxBodyBytes {
            return self.refuse(tooLarge)
        }
        let body: ByteBuffer
        do {
            body = try await self.collectBody(request)
        } catch let e as HTTPError where e.status.code == 413 {
            return self.refuse(tooLarge)
        } catch is BodyTimeout {
            return self.refuse(
                EddyFailure(
                    .bodyTimeout, "the body did not arrive within \(self.options.bodyTimeout) s (--body-timeout)"))
        }
        let contentType = request.headers[.contentType] ?? ""
        params.accept = request.headers[.accept]
        return await self.evaluate(
            contentType: contentType, body: body, query: params,
            queryNames: Set(query.map(\.0)), channel: context.channel)
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
