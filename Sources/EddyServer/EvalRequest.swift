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
}
