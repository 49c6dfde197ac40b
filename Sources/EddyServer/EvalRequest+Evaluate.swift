import CEddyHost
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
import Foundation
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

extension EvalRequest {
    /// Runs one evaluation with one execution context of `session`; `stop` is asked between batches.
    /// - Parameter file: the job's `.eddy` file when the caller has opened it already.
    /// - Parameter mapFiles: read an `.eddy` file through a mapping (in a worker: a file truncated
    ///   meanwhile faults and ends that worker, whose crash is reported). Otherwise — in the server's own
    ///   process (`--workers 0`) — its segments are read with `pread`, so a truncated file is an error
    ///   naming it, not a SIGBUS that ends the server.
    static func evaluate(
        _ job: Job, session: Session, file: EddyFile? = nil, mapFiles: Bool = false,
        stop: @escaping () -> EvaluationStopped?
    ) -> Evaluated {
        evaluateForCheck(job, session: session, file: file, mapFiles: mapFiles, stop: stop)
    }

    /// The engine's built-in kernels and rules alone, for a shadow check's confirmation.
    static let builtinSession = Session()

    /// An evaluation's answer, why it failed if it did, and what a shadow check needs of it when one
    /// was asked for.
    struct Evaluated {
        var answer: EvalAnswer
        var failure: EddyFailure?
        var evidence: ShadowEvidence?

        /// The status the answer goes with: 200, or the failure's.
        var status: HTTPResponse.Status { failure?.status ?? .ok }
    }

    /// ``evaluate(_:session:file:mapFiles:stop:)`` in a shadow check's role (see ShadowCheck.swift).
    /// - Parameters:
    ///   - check: `.report`: also say which plugin builds' code took part (kernels and rules from an
    ///     execution trace, compressor hooks from `hooks`) and digest the result; `.reference`: evaluate
    ///     with no kernel, rule or compressor hook at all (decode-then-compute; a plugin encoding stored in
    ///     an `.eddy` file still decodes with its plugin's code) and digest the result; `.confirm`: evaluate
    ///     with the engine's built-in kernels and rules only and digest the result; `.alone`: evaluate
    ///     with the built-in kernels and rules and plugin `alone`'s kernels, rules and compressor hooks (no
    ///     other plugin's) and digest the result.
    ///   - alone: the plugin whose code takes part in an `.alone` evaluation, by name.
    ///   - hooks: the compressor hooks wrapped to note their use (a worker keeps them per plugin set); nil:
    ///     the snapshot's own, wrapped for this evaluation when it reports.
    static func evaluateForCheck(
        _ job: Job, session: Session, file: EddyFile? = nil, mapFiles: Bool = false,
        check: WorkerRequest.Check = .none, alone: String = "", hooks: HookWrappers? = nil,
        stop: @escaping () -> EvaluationStopped?
    ) -> Evaluated {
        let format = OutputFormat(rawValue: job.format) ?? .json
        // The trace is how a report learns which plugins' kernels and rules fired.
        let trace = job.trace || check == .report ? ExecutionTrace() : nil
        let context = makeContext(for: check, session: session, alone: alone, trace: trace)
        // Encodings stored in an `.eddy` file are looked up among this session's, plugins' included (a
        // session for one plugin alone keeps every plugin's storages).
        let encodings = check == .confirm ? session.kernels.snapshot : context.snapshot
        let (compressor, hookUse) = makeCompressor(for: check, job: job, context: context, hooks: hooks)
        var answer = EvalAnswer(snapshot: context.snapshot)
        let limit = job.maxResultBytes
        var text = ""
        var tooLarge = false
        do {
            let reader = try openReader(job, file: file, mapFiles: mapFiles, encodings: encodings)
            let limits = Parser.Limits(
                maxLength: job.expressionMaxLength, maxDepth: job.expressionMaxDepth,
                maxTerms: job.expressionMaxTerms)
            let evaluation = try Evaluation(
                reader: reader, whereText: job.where, selectText: job.select, context: context,
                compressor: compressor, limits: limits)
            evaluation.threads = Swift.max(1, Swift.min(job.threads, maxThreads))
            evaluation.shouldStop = {
                if tooLarge {
                    return EvaluationStopped(
                        .resultTooLarge,
                        "the result is larger than \(limit) bytes (--max-result-bytes); "
                            + "narrow it with where/select or aggregate")
                }
                return stop()
            }
            let arrow = job.format == ArrowAnswer.format
            var bytes: [UInt8] = []
            let writer =
                arrow
                ? ResultWriter(
                    arrow: try ArrowStreamWriter(names: evaluation.names, types: evaluation.items.map(\.bound.dtype)) {
                        piece in
                        guard !tooLarge else { return }
                        bytes += piece
                        if bytes.count > limit { tooLarge = true }
                    }, names: evaluation.names)
                : ResultWriter(format: format, names: evaluation.names) { piece in
                    guard !tooLarge else { return }
                    text += piece
                    if text.utf8.count > limit { tooLarge = true }
                }
            try evaluation.run(into: writer)
            if tooLarge, let stopped = evaluation.shouldStop?() { throw stopped }
            if arrow {
                // Crosses from a worker inside the JSON reply; the route answers it as the stream itself.
                text = ArrowAnswer.encode(bytes)
                answer.arrow = text
            } else {
                // The result goes into the answer as JSON text (see RawJSON): the engine's JSON as it is,
                // other formats as one string literal. Foundation's string escaping cost 20 ms.
                answer.result = RawJSON(text: format == .json ? text : ResultWriter.jsonString(text))
            }
            answer.rowsRead = evaluation.rowsRead
            answer.rowsSelected = evaluation.rowsSelected
            let evidence = check == .none ? nil : shadowEvidence(check, hookUse: hookUse, trace: trace, text: text)
            if job.trace, let trace { answer.trace = traceSteps(trace) }
            return Evaluated(answer: answer, evidence: evidence)
        } catch var e as IOError {
            // An upload is named as such, not by its private path.
            if job.uploaded && e.file == job.path { e.file = "upload" }
            return failed(EddyFailure(e), answer)
        } catch {
            return failed(EddyFailure(error), answer)
        }
    }

    /// The execution context a check's evaluation runs with (see ``evaluateForCheck``).
    private static func makeContext(
        for check: WorkerRequest.Check, session: Session, alone: String, trace: ExecutionTrace?
    ) -> ExecutionCtx {
        switch check {
        case .reference: session.makeContext(options: ExecutionOptions(useKernels: false))
        case .confirm: builtinSession.makeContext()
        case .alone: Session.alone(alone, of: session.kernels.snapshot).makeContext()
        case .report, .none: session.makeContext(trace: trace)
        }
    }

    /// The compressor a check's evaluation encodes its input with, and the record of which compressor
    /// hooks ran when the check needs one.
    private static func makeCompressor(
        for check: WorkerRequest.Check, job: Job, context: ExecutionCtx, hooks: HookWrappers?
    ) -> (Compressor, HookUse?) {
        // As `eddy eval --compression`: the request's goal, whichever plugins are loaded (so a shadow check's
        // confirmation and a replay of the request encode the input as the answer did).
        let goal = Compressor.Goal(named: job.compression) ?? .auto
        switch check {
        case .reference:
            // No hook, no encoding at all: the columns stay as parsed.
            return (Compressor(maxDepth: 0, hooks: [], goal: .query), nil)
        case .confirm:
            // The engine's encodings as the answer had them, no hook.
            return (Compressor(hooks: [], goal: goal), nil)
        case .alone:
            return (Compressor(hooks: context.snapshot.compressorHooks, goal: goal), nil)
        case .report, .none:
            let use = hooks?.use ?? (check == .report ? HookUse() : nil)
            use?.reset()
            let hooked =
                hooks?.hooks(for: context.snapshot)
                ?? (use.map { $0.wrapping(context.snapshot.compressorHooks) } ?? context.snapshot.compressorHooks)
            return (Compressor(hooks: hooked, goal: goal), use)
        }
    }

    /// The table the job reads, from the descriptor opened when the request was checked (or the `.eddy`
    /// file the caller opened already).
    private static func openReader(
        _ job: Job, file: EddyFile?, mapFiles: Bool, encodings: KernelSnapshot
    ) throws -> any TableReader {
        // Only the descriptor opened when the request was checked is read: opening the path again
        // would read whatever it names by then.
        guard let opened = job.file else {
            throw IOError(file: job.path, line: 0, column: 0, message: "the request's file is not open")
        }
        // Encodings are looked up in this request's snapshot: a plugin dropped into the directory
        // since the last request reads files written with it.
        let kind = InputFormat(named: job.inputFormat) ?? .csv
        if kind == .eddy, let file { return EddyTableReader(file: file) }
        return try openTable(
            job.path, format: kind, descriptor: opened.descriptor,
            options: TableOptions(
                inferTypes: !Evaluation.readsNoColumn(whereText: job.where, selectText: job.select),
                mapped: mapFiles),
            snapshot: encodings)
    }

    /// What a shadow check compares: the plugin builds whose code took part and the result's digest.
    private static func shadowEvidence(
        _ check: WorkerRequest.Check, hookUse: HookUse?, trace: ExecutionTrace?, text: String
    ) -> ShadowEvidence {
        var owners: Set<String> = hookUse?.take() ?? []
        if check == .report, let trace {
            for event in trace.events where !event.owner.isBuiltin {
                owners.insert("\(event.owner.name)@\(event.owner.version)")
            }
        }
        return ShadowEvidence(owners: owners.sorted(), digest: ResultDigest(text))
    }

    /// The execution trace as the answer shows it.
    private static func traceSteps(_ trace: ExecutionTrace) -> [TraceStep] {
        trace.events.map {
            TraceStep(
                step: $0.step.rawValue, encoding: $0.encoding, name: $0.name, owner: $0.owner.description,
                depth: $0.depth)
        }
    }

    /// An answer that says why the evaluation failed (see ``EddyFailure`` for the status).
    private static func failed(_ failure: EddyFailure, _ answer: EvalAnswer) -> Evaluated {
        var answer = answer
        answer.error = boundedMessage(failure.message)
        answer.owner = failure.owner
        return Evaluated(answer: answer, failure: failure)
    }
}

/// An error message as a reply carries it: at most 16 KiB (cut at a character boundary). A message
/// echoes parts of the request, and a reply past the worker protocol's limits was taken for plugin
/// code writing to the worker's socket.
func boundedMessage(_ text: String) -> String {
    let limit = 16 << 10
    guard text.utf8.count > limit else { return text }
    var bytes = Array(text.utf8.prefix(limit))
    // Back to the start of a UTF-8 sequence (a continuation byte is 0b10xxxxxx).
    while let last = bytes.last, last & 0xC0 == 0x80 { bytes.removeLast() }
    if bytes.last.map({ $0 >= 0xC0 }) == true { bytes.removeLast() }
    return String(decoding: bytes, as: UTF8.self) + "… (\(text.utf8.count) bytes in all)"
}
