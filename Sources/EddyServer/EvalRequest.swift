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

/// `POST /eval`: a JSON body naming a file under a `--data-dir`, or an uploaded CSV / JSON Lines body
/// with options in the query string.
///
/// JSON body: `{"path": "trips.csv", "where": "…", "select": "…", "format": "json|csv|table|arrow",
/// "input_format": "csv|jsonl", "trace": true, "threads": 2}` — any other field, or a field of the wrong type, is a
/// 400 naming it. Upload: `Content-Type: text/csv` (or `application/x-ndjson`) with
/// `?where=…&select=…&format=…&input_format=…&trace=1&threads=2`. The response always carries the plugin-set
/// fingerprint the evaluation ran with.
enum EvalRequest {
    struct Params {
        var `where`: String?
        var select: String?
        var format: String?
        var inputFormat: String?
        var trace = false
        var path: String?
        var threads: Int?
        /// How batches are encoded (`auto`, `query` or `storage`), as `eddy eval --compression`.
        var compression: String?
        /// The request's `Accept` header: an Arrow stream is answered when it asks for one (see
        /// ``ArrowAnswer/wanted(_:)``) and no `format` says otherwise.
        var accept: String?
    }

    static let queryFields: Set<String> = [
        "where", "select", "format", "input_format", "trace", "path", "threads", "compression",
    ]

    /// The most threads one request may ask for: the cores this process may run on.
    static var maxThreads: Int { availableCores() }

    /// `threads` as given (a decimal count from 1 to ``maxThreads``), or a refusal naming the range.
    static func threads(_ text: String) throws(EddyFailure) -> Int {
        guard text.utf8.count <= 6, let n = Int(text), n >= 1, n <= maxThreads else {
            throw EddyFailure(
                .badRequest,
                "threads must be a whole number from 1 to \(maxThreads) (this server's cores), got '\(shortForDisplay(text, limit: 40))'"
            )
        }
        return n
    }

    /// The name/value pairs of a raw query string, decoded as HTML forms encode them: `+` is a space,
    /// `%XY` a byte; names and values must be UTF-8. A malformed escape is refused.
    static func formPairs(_ raw: String?) throws(EddyFailure) -> [(String, String)] {
        guard let raw, !raw.isEmpty else { return [] }
        func decode(_ part: Substring) throws(EddyFailure) -> String {
            var bytes: [UInt8] = []
            var it = Array(part.utf8)[...]
            while let b = it.popFirst() {
                if b == UInt8(ascii: "+") {
                    bytes.append(UInt8(ascii: " "))
                } else if b == UInt8(ascii: "%") {
                    guard it.count >= 2, let hi = hexValue(it[it.startIndex]), let lo = hexValue(it[it.startIndex + 1])
                    else { throw EddyFailure(.badRequest, "malformed %-escape in the query string") }
                    bytes.append(hi << 4 | lo)
                    it = it.dropFirst(2)
                } else {
                    bytes.append(b)
                }
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw EddyFailure(.badRequest, "the query string is not UTF-8 once decoded")
            }
            return text
        }
        var out: [(String, String)] = []
        for pair in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let eq = pair.firstIndex(of: "=") ?? pair.endIndex
            let value = eq == pair.endIndex ? "" : try decode(pair[pair.index(after: eq)...])
            out.append((try decode(pair[..<eq]), value))
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The options in the query string; an unknown name, or one given twice, is refused.
    static func params(fromQuery query: [(String, String)]) throws(EddyFailure) -> Params {
        var p = Params()
        var seen: Set<String> = []
        for (name, value) in query {
            guard seen.insert(name).inserted else {
                throw EddyFailure(.badRequest, "query parameter '\(escapedForDisplay(name))' is given twice")
            }
            switch name {
            case "where": p.where = value
            case "select": p.select = value
            case "format": p.format = value
            case "input_format": p.inputFormat = value
            case "path": p.path = value
            case "threads": p.threads = try threads(value)
            case "compression": p.compression = value
            case "trace":
                switch value.lowercased() {
                case "1", "true", "yes": p.trace = true
                case "0", "false", "no", "": p.trace = false
                default:
                    throw EddyFailure(.badRequest, "query parameter 'trace' must be 1/true or 0/false, got '\(value)'")
                }
            default:
                throw EddyFailure(
                    .badRequest,
                    "unknown query parameter '\(name)'; known: \(queryFields.sorted().joined(separator: ", "))")
            }
        }
        return p
    }

    /// Reads the JSON body strictly over `params` (from the query): every field known, of its type,
    /// given once — in the body or the query string, not both.
    static func params(fromJSON body: Data, over query: Params, queryNames: Set<String>) throws(EddyFailure) -> Params {
        let fields: [(name: String, value: JSONFieldValue)]
        do {
            fields = try body.withUnsafeBytes { try JSONObjectFields.parse($0) }
        } catch let e as IOError {
            throw EddyFailure(.badRequest, "the body is not a JSON object: \(e.message) (column \(e.column))")
        } catch {
            throw EddyFailure(.badRequest, "the body is not a JSON object")
        }
        var p = query
        var seen = queryNames
        for (name, value) in fields {
            var shown: String { shortForDisplay(name, limit: 64) }
            guard seen.insert(name).inserted else {
                throw EddyFailure(
                    .badRequest,
                    queryNames.contains(name)
                        ? "field '\(shown)' is given in both the query string and the body"
                        : "field '\(shown)' is given twice")
            }
            func string() throws(EddyFailure) -> String? {
                switch value {
                case .string(let s): return s
                case .null: return nil
                default: throw EddyFailure(.badRequest, "field '\(name)' must be a string, got \(value.typeName)")
                }
            }
            switch name {
            case "path": p.path = try string() ?? p.path
            case "where": p.where = try string() ?? p.where
            case "select": p.select = try string() ?? p.select
            case "format": p.format = try string() ?? p.format
            case "input_format": p.inputFormat = try string() ?? p.inputFormat
            case "compression": p.compression = try string() ?? p.compression
            case "threads":
                switch value {
                case .number(let text): p.threads = try threads(text)
                case .null: break
                default: throw EddyFailure(.badRequest, "field 'threads' must be a number, got \(value.typeName)")
                }
            case "trace":
                switch value {
                case .bool(let b): p.trace = b
                case .null: break
                default: throw EddyFailure(.badRequest, "field 'trace' must be true or false, got \(value.typeName)")
                }
            default:
                throw EddyFailure(
                    .badRequest, "unknown field '\(shown)'; known: " + queryFields.sorted().joined(separator: ", "))
            }
        }
        return p
    }

    /// Opens a requested path inside one of the data directories, once, or refuses it (403, 404).
    ///
    /// The file is opened relative to a descriptor of its data directory with `openat2(RESOLVE_BENEATH |
    /// RESOLVE_NO_MAGICLINKS)`: the kernel refuses, atomically, a `..`, an absolute symbolic link or a
    /// relative one that leads out, however the tree is changed meanwhile; a relative link that stays
    /// inside is followed. The descriptor is what the evaluation reads (in a worker too, which is handed
    /// it, never the path): checking a path and opening it again later let another user who can write
    /// to a data subdirectory swap it for a link to `/etc` between the two (issue 27).
    /// - Returns: the path to name in messages — the request's, as the client wrote it: where the data
    ///   directories are on the server is not the client's to learn — and the open file.
    static func open(_ path: String, dataDirectories: [String]) throws(EddyFailure) -> (path: String, file: OpenedFile)
    {
        guard let first = dataDirectories.first else {
            throw EddyFailure(
                .forbidden,
                "this server reads no files by path: start it with --data-dir DIR to allow files "
                    + "under DIR, or upload the data as the request body")
        }
        guard !path.isEmpty, !path.utf8.contains(0) else {
            throw EddyFailure(.badRequest, "field 'path' is empty or has a NUL")
        }
        let shown = escapedForDisplay(path)
        let absolute = path.hasPrefix("/") ? path : first + "/" + path
        func prefix(_ dir: String) -> String { dir == "/" ? "/" : dir + "/" }
        // Judged on the path with its `.` and `..` taken away first, without touching the file system:
        // whether a file outside exists is not told.
        let lexical = lexicallyNormalized(absolute)
        let outside = "\(shown) is not inside a --data-dir of this server"
        guard dataDirectories.contains(where: { lexical.hasPrefix(prefix($0)) }) else {
            throw EddyFailure(.forbidden, outside)
        }
        // The data directory the path starts with (the longest that matches), and the rest beneath it.
        let base =
            path.hasPrefix("/")
            ? dataDirectories.filter { absolute.hasPrefix(prefix($0)) }.max { $0.utf8.count < $1.utf8.count }
            : first
        guard let base else { throw EddyFailure(.forbidden, outside) }
        var rest = Substring(absolute.dropFirst(prefix(base).count))
        while rest.hasPrefix("/") { rest = rest.dropFirst() }
        let directory = eddy_open_directory(base)
        guard directory >= 0 else {
            throw EddyFailure(
                .forbidden,
                "\(shown): cannot open its data directory \(escapedForDisplay(base)): \(String(cString: strerror(errno)))"
            )
        }
        defer { close(directory) }
        var walked: Int32 = 0
        let fd = eddy_open_beneath(directory, rest.isEmpty ? "." : String(rest), &walked)
        guard fd >= 0 else {
            let reason = errno
            // Without openat2 (walked) no link and no `..` is followed at all.
            switch (reason, walked != 0) {
            case (EXDEV, false):
                throw EddyFailure(
                    .forbidden,
                    outside + " (it resolves to a file outside, or through an absolute symbolic link, which is not "
                        + "followed)")
            case (EXDEV, true):
                throw EddyFailure(
                    .forbidden, "\(shown): '..' is not followed on this system (no openat2); name the file without it")
            case (ELOOP, false):
                throw EddyFailure(
                    .forbidden, "\(shown): too many levels of symbolic links, or a /proc link, which is not followed")
            case (ELOOP, true):
                throw EddyFailure(
                    .forbidden,
                    "\(shown): a symbolic link on the way is not followed on this system (no openat2); name the file "
                        + "itself")
            case (ENOENT, _), (ENOTDIR, _):
                throw EddyFailure(.notFound, "\(shown): no such file")
            case (EACCES, _), (EPERM, _):
                throw EddyFailure(.forbidden, "\(shown): permission denied (the server cannot reach it)")
            case (EAGAIN, _):
                throw EddyFailure(
                    .busy, "\(shown): the directories on its path changed while it was opened; try again")
            default:
                throw EddyFailure(.forbidden, "\(shown): cannot open: \(String(cString: strerror(reason)))")
            }
        }
        let file = OpenedFile(fd)
        // A FIFO or a device would block the evaluation's thread where no deadline can reach it (opened
        // with O_NONBLOCK, so the open itself did not wait).
        guard FileKind.of(descriptor: fd) == .regular else {
            throw EddyFailure(.forbidden, "\(shown) is not a regular file")
        }
        return (path, file)
    }

    /// A request checked and ready to evaluate: the file to read (resolved inside a data directory,
    /// or an upload) and the options. It crosses to a worker process as JSON.
    struct Job: Sendable {
        /// The file as the request named it (an upload: its private path, named "upload" in messages):
        /// what messages name it by, never opened (see ``file``).
        var path: String
        var inputFormat: String
        var format: String
        var `where`: String?
        var select: String?
        var trace: Bool
        /// Set when `path` is an uploaded body: errors name it "upload", and it is removed after.
        var uploaded: Bool
        var maxResultBytes: Int
        var expressionMaxLength: Int
        var expressionMaxDepth: Int
        var expressionMaxTerms: Int
        /// Batches evaluated at once (the request's `threads`, default 1: concurrent requests and
        /// workers are the server's parallelism).
        var threads: Int = 1
        /// How batches are encoded: a ``Compressor/Goal`` name (`auto` unless the request named one),
        /// the same rule as `eddy eval --compression` — never chosen by which plugins are loaded.
        var compression: String = "auto"
        /// The file, open: what the evaluation reads (`path` only names it in messages). It crosses
        /// to a worker as a descriptor passed over the socket (SCM_RIGHTS).
        var file: OpenedFile?
    }

    /// Parses, checks and resolves a request into a job (storing an uploaded body), or refuses it.
    static func prepare(
        server: EddyServer, contentType: String, body: Data, query: Params,
        queryNames: Set<String>
    ) throws(EddyFailure) -> Job {
        var params = query
        var uploaded: String?
        var opened: OpenedFile?
        if contentType.lowercased().hasPrefix("application/json") {
            params = try Self.params(fromJSON: body, over: query, queryNames: queryNames)
            if let path = params.path {
                (params.path, opened) = try open(path, dataDirectories: server.options.dataDirectories)
            }
        } else if !body.isEmpty {
            guard params.path == nil else {
                throw EddyFailure(.badRequest, "give a path or upload a body, not both")
            }
            let isJSONLines = contentType.contains("ndjson") || contentType.contains("jsonl")
            let isEddy = body.starts(with: EddyFileFormat.magic)
            let isParquet = body.starts(with: ParquetFile.magic)
            let stored = try server.uploads.store(
                body, suffix: isEddy ? ".eddy" : isParquet ? ".parquet" : isJSONLines ? ".jsonl" : ".csv")
            uploaded = stored.path
            opened = stored.file
            params.path = uploaded
            if params.inputFormat == nil {
                params.inputFormat = isEddy ? "eddy" : isParquet ? "parquet" : isJSONLines ? "jsonl" : "csv"
            }
        } else if let path = params.path {
            (params.path, opened) = try open(path, dataDirectories: server.options.dataDirectories)
        }
        do throws(EddyFailure) {
            guard let path = params.path, let opened else {
                throw EddyFailure(.badRequest, "give a file: {\"path\": …} in a JSON body, or upload CSV / JSON Lines")
            }
            let format = params.format ?? (ArrowAnswer.wanted(params.accept) ? ArrowAnswer.format : "json")
            guard OutputFormat(rawValue: format) != nil || format == ArrowAnswer.format else {
                throw EddyFailure(
                    .badRequest, "unknown format '\(shortForDisplay(format, limit: 64))'; use json, csv, table or arrow"
                )
            }
            let kind: InputFormat
            if let name = params.inputFormat {
                guard let named = InputFormat(named: name) else {
                    throw EddyFailure(.badRequest, InputFormat.unknown(name, option: "input_format"))
                }
                kind = named
            } else {
                kind = InputFormat.of(path: path, descriptor: opened.descriptor)
            }
            let compression = params.compression ?? "auto"
            guard Compressor.Goal(named: compression) != nil else {
                throw EddyFailure(.badRequest, Compressor.Goal.unknown(compression, option: "compression"))
            }
            let limits = server.options.expressionLimits
            return Job(
                path: path, inputFormat: kind.rawValue, format: format, where: params.where, select: params.select,
                trace: params.trace, uploaded: uploaded != nil, maxResultBytes: server.options.maxResultBytes,
                expressionMaxLength: limits.maxLength, expressionMaxDepth: limits.maxDepth,
                expressionMaxTerms: limits.maxTerms, threads: params.threads ?? 1, compression: compression,
                file: opened)
        } catch {
            if let uploaded { unlink(uploaded) }
            throw error
        }
    }

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
        let context: ExecutionCtx
        switch check {
        case .reference: context = session.makeContext(options: ExecutionOptions(useKernels: false))
        case .confirm: context = builtinSession.makeContext()
        case .alone: context = Session.alone(alone, of: session.kernels.snapshot).makeContext()
        case .report, .none: context = session.makeContext(trace: trace)
        }
        // Encodings stored in an `.eddy` file are looked up among this session's, plugins' included (a
        // session for one plugin alone keeps every plugin's storages).
        let encodings = check == .confirm ? session.kernels.snapshot : context.snapshot
        // As `eddy eval --compression`: the request's goal, whichever plugins are loaded (so a shadow check's
        // confirmation and a replay of the request encode the input as the answer did).
        let goal = Compressor.Goal(named: job.compression) ?? .auto
        let compressor: Compressor
        var hookUse: HookUse?
        switch check {
        case .reference:
            // No hook, no encoding at all: the columns stay as parsed.
            compressor = Compressor(maxDepth: 0, hooks: [], goal: .query)
        case .confirm:
            // The engine's encodings as the answer had them, no hook.
            compressor = Compressor(hooks: [], goal: goal)
        case .alone:
            compressor = Compressor(hooks: context.snapshot.compressorHooks, goal: goal)
        case .report, .none:
            let use = hooks?.use ?? (check == .report ? HookUse() : nil)
            use?.reset()
            hookUse = use
            let hooked =
                hooks?.hooks(for: context.snapshot)
                ?? (use.map { $0.wrapping(context.snapshot.compressorHooks) } ?? context.snapshot.compressorHooks)
            compressor = Compressor(hooks: hooked, goal: goal)
        }
        var answer = EvalAnswer(snapshot: context.snapshot)
        let limit = job.maxResultBytes
        var text = ""
        var tooLarge = false
        do {
            // Only the descriptor opened when the request was checked is read: opening the path again
            // would read whatever it names by then.
            guard let opened = job.file else {
                throw IOError(file: job.path, line: 0, column: 0, message: "the request's file is not open")
            }
            // Encodings are looked up in this request's snapshot: a plugin dropped into the directory
            // since the last request reads files written with it.
            let kind = InputFormat(named: job.inputFormat) ?? .csv
            let reader: any TableReader =
                if kind == .eddy, let file {
                    EddyTableReader(file: file)
                } else {
                    try openTable(
                        job.path, format: kind, descriptor: opened.descriptor,
                        options: TableOptions(
                            inferTypes: !Evaluation.readsNoColumn(whereText: job.where, selectText: job.select),
                            mapped: mapFiles),
                        snapshot: encodings)
                }
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
            var evidence: ShadowEvidence?
            if check != .none {
                var owners: Set<String> = hookUse?.take() ?? []
                if check == .report, let trace {
                    for event in trace.events where !event.owner.isBuiltin {
                        owners.insert("\(event.owner.name)@\(event.owner.version)")
                    }
                }
                evidence = ShadowEvidence(owners: owners.sorted(), digest: ResultDigest(text))
            }
            if job.trace, let trace {
                answer.trace = trace.events.map {
                    TraceStep(
                        step: $0.step.rawValue, encoding: $0.encoding, name: $0.name, owner: $0.owner.description,
                        depth: $0.depth)
                }
            }
            return Evaluated(answer: answer, evidence: evidence)
        } catch var e as IOError {
            // An upload is named as such, not by its private path.
            if job.uploaded && e.file == job.path { e.file = "upload" }
            return failed(EddyFailure(e), answer)
        } catch {
            return failed(EddyFailure(error), answer)
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

/// Uploaded bodies, each written to its own 0600 file in a private 0700 directory that is made for
/// this server and removed when it stops.
final class UploadDirectory: Sendable {
    let path: String

    init() throws {
        let tmp = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        var template = Array("\(tmp)/eddy-uploads-XXXXXX".utf8CString)
        guard
            let made = template.withUnsafeMutableBufferPointer({ buffer in buffer.baseAddress.flatMap { mkdtemp($0) } })
        else {
            throw ServerSetupError(
                "cannot create a private upload directory under \(tmp): \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    /// Puts `body` in an anonymous file (a sealed memfd: no name, nothing on disk) and returns the name
    /// messages give it and the file, open. The name is under this directory but never created, so
    /// removing it after the request is harmless; the file goes with its last descriptor. Creating,
    /// writing and unlinking a file on disk per upload (and its atime update when a worker read it)
    /// cost tens of microseconds of a small request.
    func store(_ body: Data, suffix: String) throws(EddyFailure) -> (path: String, file: OpenedFile) {
        let name = "\(path)/upload-\(UInt64.random(in: 0...UInt64.max))\(suffix)"
        let fd = body.withUnsafeBytes { raw in eddy_sealed_memfd("eddy-upload", raw.baseAddress, raw.count) }
        guard fd >= 0 else {
            throw EddyFailure(
                .internal, "cannot store the uploaded body: \(String(cString: strerror(errno)))")
        }
        return (name, OpenedFile(fd))
    }

    /// Removes the directory and anything left in it.
    func remove() {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(dir)
        }
        rmdir(path)
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

/// An absolute path with `.` components dropped and each `..` taking away the component before it,
/// without looking at the file system (a symbolic link is not followed).
func lexicallyNormalized(_ absolute: String) -> String {
    var parts: [Substring] = []
    for part in absolute.split(separator: "/", omittingEmptySubsequences: true) {
        if part == "." { continue }
        if part == ".." {
            _ = parts.popLast()
            continue
        }
        parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
}
