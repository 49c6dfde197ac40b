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

        /// The job's expressions as a record or log line names them (`where '…' select '…'`, each cut
        /// to 60 characters; empty without either).
        var shownQuery: String {
            [
                self.where.map { "where '\(shortForDisplay($0, limit: 60))'" },
                select.map { "select '\(shortForDisplay($0, limit: 60))'" },
            ]
            .compactMap { $0 }.joined(separator: " ")
        }
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
}
