import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /eval` answering an Arrow IPC stream: asked for with `Accept: application/vnd.apache.arrow.stream`
/// (or `"format": "arrow"`), the body is the stream `eddy eval --format arrow` writes — types, nulls and
/// strings as pyarrow, polars and DuckDB read them — and what a JSON answer says beside its result goes
/// in headers: `Eddy-Fingerprint`, `Eddy-Generation`, `Eddy-Plugins` (`name@version`, comma-separated),
/// `Eddy-Rows-Read`, `Eddy-Rows-Selected`. An error is JSON, as ever.
///
/// Inside the server the stream travels in the evaluation's object (and a worker's JSON reply) as
/// base64 under ``key``; ``response(_:status:)`` and ``response(workerReply:status:)`` unwrap it.
enum ArrowAnswer {
    static let format = "arrow"
    static let mediaType = "application/vnd.apache.arrow.stream"
    static let key = "\u{0}arrow_result"

    /// Whether an `Accept` header prefers an Arrow stream to JSON: it names the Arrow type with a
    /// quality above 0 and above that of `application/json` (JSON wins a tie: it is the default).
    static func wanted(_ accept: String?) -> Bool {
        guard let accept, accept.utf8.count <= 4096 else { return false }
        var arrow = -1.0
        var json = -1.0
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";")
            guard let first = parts.first else { continue }
            let type = first.trimmingCharacters(in: .whitespaces).lowercased()
            var quality = 1.0
            for parameter in parts.dropFirst() {
                let text = parameter.trimmingCharacters(in: .whitespaces).lowercased()
                if text.hasPrefix("q=") { quality = Double(text.dropFirst(2)).map { min(max($0, 0), 1) } ?? 0 }
            }
            if type == mediaType {
                arrow = max(arrow, quality)
            } else if type == "application/json" {
                json = max(json, quality)
            }
        }
        return arrow > 0 && arrow > json
    }

    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// The stream answer of an evaluation's object, or nil when it holds no stream (JSON then).
    static func response(_ object: [String: Any], status: HTTPResponse.Status) -> Response? {
        guard status == .ok, let encoded = object[key] as? String, let stream = Data(base64Encoded: encoded) else {
            return nil
        }
        var headers = HTTPFields()
        headers[.contentType] = mediaType
        func header(_ name: String, _ value: String) {
            // Values are the server's own (hashes, numbers, plugin names checked at load), but a header
            // must never carry a line break.
            guard let field = HTTPField.Name(name), !value.contains(where: \.isNewline) else { return }
            headers[field] = value
        }
        if let fingerprint = object["fingerprint"] as? String { header("Eddy-Fingerprint", fingerprint) }
        if let generation = object["generation"] { header("Eddy-Generation", "\(generation)") }
        if let plugins = object["plugins"] as? [[String: Any]] {
            header(
                "Eddy-Plugins",
                plugins.compactMap { p in
                    (p["name"] as? String).map { "\($0)@\(p["version"] as? String ?? "")" }
                }.joined(separator: ","))
        }
        if let read = object["rows_read"] { header("Eddy-Rows-Read", "\(read)") }
        if let selected = object["rows_selected"] { header("Eddy-Rows-Selected", "\(selected)") }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: stream)))
    }

    /// A worker's JSON reply to an Arrow request, answered as the stream (nil: an error, or no stream).
    static func response(workerReply body: [UInt8], status: Int) -> Response? {
        guard status == 200, let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        else { return nil }
        return response(object, status: .ok)
    }
}
