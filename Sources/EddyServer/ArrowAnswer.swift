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
/// base64 (``EvalAnswer/arrow``); ``response(_:)`` and ``response(workerReply:status:)`` unwrap it.
enum ArrowAnswer {
    static let format = "arrow"
    static let mediaType = "application/vnd.apache.arrow.stream"

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

    /// The stream answer of an evaluation, or nil when it holds no stream (JSON then).
    static func response(_ answer: EvalAnswer) -> Response? {
        guard let encoded = answer.arrow, let stream = Data(base64Encoded: encoded) else { return nil }
        var headers = HTTPFields()
        headers[.contentType] = mediaType
        func header(_ name: String, _ value: String) {
            // Values are the server's own (hashes, numbers, plugin names checked at load), but a header
            // must never carry a line break.
            guard let field = HTTPField.Name(name), !value.contains(where: \.isNewline) else { return }
            headers[field] = value
        }
        header("Eddy-Fingerprint", answer.fingerprint)
        header("Eddy-Generation", "\(answer.generation)")
        header("Eddy-Plugins", answer.plugins.map { "\($0.name)@\($0.version)" }.joined(separator: ","))
        if let read = answer.rowsRead { header("Eddy-Rows-Read", "\(read)") }
        if let selected = answer.rowsSelected { header("Eddy-Rows-Selected", "\(selected)") }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: stream)))
    }

    /// A worker's JSON reply to an Arrow request, answered as the stream (nil: an error, or no stream).
    static func response(workerReply body: [UInt8], status: Int) -> Response? {
        guard status == 200, let answer = try? JSONDecoder().decode(EvalAnswer.self, from: Data(body)) else {
            return nil
        }
        return response(answer)
    }
}
