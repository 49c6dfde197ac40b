@_spi(Host) import Eddy
import EddyHostTestSupport
@_spi(Host) import EddyQuery
import Foundation
import HTTPTypes
import Testing

@testable import EddyServer

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `eddy eval` and `eddy serve` (in its workers and in its own process) classify a failure one way
/// (``EddyFailure``): the same bad query or file gives the exit status its kind maps to through the CLI
/// and the HTTP status it maps to through the server, and the server's replies decode as the typed
/// replies they are written from.
@Suite(.serialized) struct OnePipelineFailureTests {
    struct Case {
        var name: String
        var file: String
        var predicate: String?
        var select: String
        /// How `eddy eval` classifies it, and how `/eval` does (a file the server cannot find is a 404;
        /// the CLI's open of a missing file is a failed input like any other).
        var cli: EddyFailure.Kind
        var serve: EddyFailure.Kind
        /// What both messages name.
        var names: String
    }

    static func cases(_ work: ScratchDirectory) -> [Case] {
        let trips = work.write("trips.csv", "trip_id,city,fare\n1,Lyon,2.5\n2,Paris,4\n3,Nice,1\n")
        let ragged = work.write("ragged.csv", "trip_id,city,fare\n1,Lyon,2.5\n2,Paris\n")
        let big = work.write("big.csv", "n\n9223372036854775807\n")
        return [
            Case(
                name: "bad expression", file: trips, predicate: "fare >", select: "count(*)", cli: .query,
                serve: .query,
                names: "fare >"),
            Case(
                name: "unknown column", file: trips, predicate: nil, select: "sum(tip)", cli: .query, serve: .query,
                names: "tip"),
            Case(
                name: "malformed input file", file: ragged, predicate: nil, select: "count(city)", cli: .input,
                serve: .input, names: "ragged.csv"),
            Case(
                name: "missing file", file: work.path + "/no-such-file.csv", predicate: nil, select: "count(*)",
                cli: .input, serve: .notFound, names: "no-such-file.csv"),
            Case(
                name: "overflow", file: big, predicate: nil, select: "n + 1", cli: .data, serve: .data,
                names: "overflow"),
        ]
    }

    @Test(arguments: ["1", "0"])
    func theSameFailuresGiveTheMappedExitStatusAndHTTPStatus(workers: String) throws {
        let work = ScratchDirectory()
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [work.path], arguments: ["--workers", workers])
        defer { server.stop() }
        for c in Self.cases(work) {
            var arguments = ["eval", c.file, "--select", c.select]
            if let predicate = c.predicate { arguments += ["--where", predicate] }
            let cli = try Eddy.run(arguments)
            #expect(
                cli.status == EddyFailure(c.cli, "").exitCode, "\(c.name): exit \(cli.status), \(cli.stderr)")
            #expect(cli.stderr.contains("eddy: error: ") && cli.stderr.contains(c.names), "\(c.name): \(cli.stderr)")
            #expect(cli.stdout.isEmpty, "\(c.name): \(cli.stdout)")

            var body: [String: Any] = ["path": c.file, "select": c.select]
            if let predicate = c.predicate { body["where"] = predicate }
            let (status, bytes) = try server.requestBytes("POST", "/eval", json: body)
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(status == EddyFailure(c.serve, "").httpStatus, "\(c.name): \(status) \(text)")
            // Every error reply decodes as one; an evaluation's also says which plugin set it ran with.
            let reply = try JSONDecoder().decode(ErrorReply.self, from: bytes)
            #expect(reply.error.contains(c.names), "\(c.name): \(text)")
            if c.serve != .notFound {
                let answer = try JSONDecoder().decode(EvalAnswer.self, from: bytes)
                #expect(answer.fingerprint == "builtin only" && answer.plugins.isEmpty, "\(c.name): \(text)")
                #expect(answer.result == nil && answer.rowsRead == nil && answer.error == reply.error, "\(text)")
            }
        }
    }

    @Test(arguments: ["1", "0"])
    func answersKernelsHealthAndPluginsDecodeAsTheirTypes(workers: String) throws {
        let work = ScratchDirectory()
        let trips = work.write("trips.csv", "trip_id,city,fare\n1,Lyon,2.5\n2,Paris,4\n3,Lyon,1\n")
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [work.path], arguments: ["--workers", workers])
        defer { server.stop() }

        let (status, bytes) = try server.requestBytes(
            "POST", "/eval",
            json: ["path": trips, "where": "city = 'Lyon'", "select": "trip_id, fare", "trace": true])
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(status == 200, "\(text)")
        let answer = try JSONDecoder().decode(EvalAnswer.self, from: bytes)
        #expect(answer.rowsRead == 3 && answer.rowsSelected == 2 && answer.error == nil, "\(text)")
        #expect(answer.trace?.isEmpty == false, "\(text)")
        // The result is the engine's JSON as it wrote it, last in the object.
        let result = try #require(answer.result)
        struct Row: Decodable, Equatable {
            var trip_id: Int
            var fare: Double
        }
        let rows = try JSONDecoder().decode([Row].self, from: Data(result.text.utf8))
        #expect(rows == [Row(trip_id: 1, fare: 2.5), Row(trip_id: 3, fare: 1)])
        #expect(text.hasSuffix("]\n}") || text.hasSuffix("]}"), "\(text)")
        #expect(text.range(of: "\"result\":").map { text[$0.upperBound...].contains("\"rows_read\"") } == false)

        // /kernels: the same registry whether a worker or the server builds it.
        let (kernelsStatus, kernelsBytes) = try server.requestBytes("GET", "/kernels")
        #expect(kernelsStatus == 200)
        let kernels = try JSONDecoder().decode(KernelsReply.self, from: kernelsBytes)
        let builtin = KernelsReply(Session().kernels.snapshot)
        #expect(kernels.fingerprint == "builtin only")
        // The same keys and kernels; the order of keys follows the order encodings were first met in the
        // process (this test process has met them in other tests' order), so they are compared sorted.
        #expect(kernels.keys.map { "\($0)" }.sorted() == builtin.keys.map { "\($0)" }.sorted())
        #expect(kernels.keys.count == builtin.keys.count && !builtin.keys.isEmpty)

        let (healthStatus, healthBytes) = try server.requestBytes("GET", "/health")
        let health = try JSONDecoder().decode(HealthReply.self, from: healthBytes)
        #expect(healthStatus == 200 && health.status == "ok" && health.plugins == 0)

        let (pluginsStatus, pluginsBytes) = try server.requestBytes("GET", "/plugins")
        let plugins = try JSONDecoder().decode(PluginsReply.self, from: pluginsBytes)
        #expect(pluginsStatus == 200 && plugins.files.isEmpty && plugins.workers == Int(workers))
    }

    @Test func repliesAreWrittenWithSortedKeysAndTheResultLast() throws {
        var answer = EvalAnswer(snapshot: Session().kernels.snapshot)
        answer.rowsRead = 3
        answer.rowsSelected = 1
        answer.result = RawJSON(text: "[\n  {\"b\": 1, \"a\": \"x\"}\n]\n")
        answer.trace = [
            TraceStep(step: "execute-parent", encoding: "eddy.dict", name: "k\"\u{1}", owner: "o", depth: 0)
        ]
        let text = String(decoding: ReplyJSON.encode(answer), as: UTF8.self)
        #expect(
            text
                == "{\"fingerprint\":\"builtin only\",\"generation\":\(answer.generation),\"plugins\":[],"
                + "\"rows_read\":3,\"rows_selected\":1,\"trace\":[{\"depth\":0,\"encoding\":\"eddy.dict\","
                + "\"name\":\"k\\\"\\u0001\",\"owner\":\"o\",\"step\":\"execute-parent\"}],"
                + "\"result\":[\n  {\"b\": 1, \"a\": \"x\"}\n]\n}")
        // A number keeps its type: 2.0 stays a double, as a client's parser reads it.
        let policy = CanaryPolicyReply(plugin: "p", fraction: 2.0, requestsToPromote: 5, note: "n")
        #expect(
            String(decoding: ReplyJSON.encode(policy), as: UTF8.self)
                == "{\"fraction\":2.0,\"note\":\"n\",\"plugin\":\"p\",\"requests_to_promote\":5}")
        // The reply reads back through Foundation's decoder.
        let decoded = try JSONDecoder().decode(EvalAnswer.self, from: Data(text.utf8))
        #expect(decoded.trace == answer.trace && decoded.rowsRead == 3)
        #expect(decoded.result.map { String(decoding: Data($0.text.utf8), as: UTF8.self) } == "[{\"a\":\"x\",\"b\":1}]")
    }

    /// The documented statuses and exit statuses (docs/cli.md, docs/serve.md).
    @Test func failureKindsMapToTheDocumentedStatuses() {
        let expected: [(EddyFailure.Kind, Int, Int32)] = [
            (.query, 400, 2), (.input, 400, 1), (.badRequest, 400, 64), (.data, 422, 1), (.kernel, 500, 1),
            (.forbidden, 403, 1), (.notFound, 404, 1), (.tooLarge, 413, 1), (.deadline, 504, 1),
            (.cancelled, 499, 1), (.busy, 503, 1), (.internal, 500, 1),
        ]
        for (kind, status, exit) in expected {
            let failure = EddyFailure(kind, "m")
            #expect(failure.httpStatus == status && failure.exitCode == exit, "\(kind)")
        }
        #expect(EddyFailure(QueryError("unknown column 'x'", source: "x", position: 0)).kind == .query)
        #expect(EddyFailure(EddyError(.overflow, "i64 overflow")).kind == .data)
        #expect(EddyFailure(EddyError(.kernelFailed, "boom", source: "p@1")).owner == "p@1")
        #expect(EddyFailure(EvaluationStopped(.cancelled, "gone")).status.reasonPhrase == "Client Closed Request")
    }
}
