import Eddy
import EddyHost
import EddyIO
import EddyQuery
import Foundation
import Hummingbird

/// `POST /eval`: a JSON body naming a file, or an uploaded CSV / JSON Lines body with options in the
/// query string.
///
/// JSON body: `{"path": "/data/trips.csv", "where": "…", "select": "…", "format": "json|csv|table",
/// "input_format": "csv|jsonl", "trace": true}`. Upload: `Content-Type: text/csv` (or
/// `application/x-ndjson`) with `?where=…&select=…&format=…&trace=1`.
/// The response always carries the plugin-set fingerprint the evaluation ran with.
enum EvalRequest {
    struct Params {
        var `where`: String?
        var select: String?
        var format: String?
        var inputFormat: String?
        var trace: Bool
        var path: String?
    }

    static func run(server: EddyServer, contentType: String, body: Data, query: Params) -> (HTTPResponse.Status, [String: Any]) {
        var params = query
        var uploaded: String?
        defer { if let uploaded { unlink(uploaded) } }
        if contentType.hasPrefix("application/json") {
            guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                return (.badRequest, ["error": "the body is not a JSON object"])
            }
            params.path = object["path"] as? String ?? params.path
            params.where = object["where"] as? String ?? params.where
            params.select = object["select"] as? String ?? params.select
            params.format = object["format"] as? String ?? params.format
            params.inputFormat = object["input_format"] as? String ?? params.inputFormat
            params.trace = object["trace"] as? Bool ?? params.trace
        } else if !body.isEmpty {
            let isJSONLines = contentType.contains("ndjson") || contentType.contains("jsonl")
            let tmp = NSTemporaryDirectory() + "eddy-upload-\(UUID().uuidString)" + (isJSONLines ? ".jsonl" : ".csv")
            guard FileManager.default.createFile(atPath: tmp, contents: body) else {
                return (.internalServerError, ["error": "cannot store the uploaded body"])
            }
            uploaded = tmp
            params.path = tmp
            if params.inputFormat == nil { params.inputFormat = isJSONLines ? "jsonl" : "csv" }
        }
        guard let path = params.path else {
            return (.badRequest, ["error": "give a file: {\"path\": …} in a JSON body, or upload CSV / JSON Lines"])
        }
        let formatName = params.format ?? "json"
        guard let format = OutputFormat(rawValue: formatName) else {
            return (.badRequest, ["error": "unknown format '\(formatName)'; use json, csv or table"])
        }
        let trace = params.trace ? ExecutionTrace() : nil
        let context = server.session.makeContext(trace: trace)
        var response: [String: Any] = [
            "fingerprint": context.snapshot.fingerprint, "generation": context.snapshot.generation,
            "plugins": context.snapshot.plugins.map { ["name": $0.name, "version": $0.version, "content_hash": $0.contentHash] },
        ]
        do {
            let kind = params.inputFormat
                ?? (path.hasSuffix(".jsonl") || path.hasSuffix(".ndjson") || path.hasSuffix(".json") ? "jsonl" : "csv")
            let reader: any TableReader = kind == "jsonl" ? try JSONLinesReader(path: path) : try CSVReader(path: path)
            let evaluation = try Evaluation(reader: reader, whereText: params.where, selectText: params.select,
                                            context: context, compressor: Compressor(hooks: context.snapshot.compressorHooks))
            var text = ""
            let writer = ResultWriter(format: format, names: evaluation.names) { text += $0 }
            try evaluation.run(into: writer)
            if format == .json, let parsed = try? JSONSerialization.jsonObject(with: Data(text.utf8)) {
                response["result"] = parsed
            } else {
                response["result"] = text
            }
            response["rows_read"] = evaluation.rowsRead
            response["rows_selected"] = evaluation.rowsSelected
            if let trace {
                response["trace"] = trace.events.map {
                    ["step": $0.step.rawValue, "encoding": $0.encoding, "name": $0.name, "owner": $0.owner.description,
                     "depth": $0.depth] as [String: Any]
                }
            }
            return (.ok, response)
        } catch let e as QueryError {
            response["error"] = e.description
            return (.badRequest, response)
        } catch let e as IOError {
            response["error"] = e.description
            return (.badRequest, response)
        } catch let e as EddyError {
            response["error"] = e.description
            if let source = e.source { response["owner"] = source }
            // A kernel that broke its contract or failed is the server's (or a plugin's) fault;
            // overflow, division by zero or a bad cast are the data's.
            let serverSide = e.code == .kernelContract || e.code == .kernelFailed || e.code == .iterationLimit
            return (serverSide ? .internalServerError : .unprocessableContent, response)
        } catch {
            response["error"] = "\(error)"
            return (.internalServerError, response)
        }
    }
}
