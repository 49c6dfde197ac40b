/// What a wrong-answer record (ShadowCheck.swift) or a canary-divergence record (Canary.swift) keeps of
/// the request: the file as the request named it and each expression, at most 16 KiB.
struct RecordedRequest: Codable, Sendable {
    var path: String
    var inputFormat: String
    var format: String
    var `where`: String
    var select: String
    var threads: Int

    enum CodingKeys: String, CodingKey {
        case path, format, `where`, select, threads
        case inputFormat = "input_format"
    }

    init(_ job: EvalRequest.Job) {
        path = job.uploaded ? "upload (not kept)" : job.path
        inputFormat = job.inputFormat
        format = job.format
        `where` = job.where.map { EddyServer.bounded($0, limit: 16 << 10) } ?? ""
        select = job.select.map { EddyServer.bounded($0, limit: 16 << 10) } ?? ""
        threads = job.threads
    }
}

/// A result's digest as a record keeps it (the sums in hexadecimal).
struct RecordedDigest: Codable, Sendable {
    var lines: UInt64
    var bytes: UInt64
    var sumA: String
    var sumB: String

    enum CodingKeys: String, CodingKey {
        case lines, bytes
        case sumA = "sum_a"
        case sumB = "sum_b"
    }
}

/// One answer a record keeps: what it is, its digest and its first 64 KiB.
struct RecordedAnswer: Codable, Sendable {
    var note: String
    var digest: RecordedDigest
    var bodyBytes: Int
    var body: String
    var truncated: Bool

    enum CodingKeys: String, CodingKey {
        case note, digest, body, truncated
        case bodyBytes = "body_bytes"
    }
}

/// `wrong-answer-HASH-TIME.json`: a plugin build a shadow check charged with a wrong answer, and the
/// answers that show it.
struct WrongAnswerRecord: Codable, Sendable {
    var time: String
    /// `name@version`.
    var plugin: String
    var contentHash: String
    var pluginsInvolved: [String]
    var pluginsCharged: [String]
    var request: RecordedRequest
    var answer: RecordedAnswer
    var reference: RecordedAnswer
    var alone: RecordedAnswer

    enum CodingKeys: String, CodingKey {
        case time, plugin, request, answer, reference, alone
        case contentHash = "content_hash"
        case pluginsInvolved = "plugins_involved"
        case pluginsCharged = "plugins_charged"
    }
}

/// `canary-divergence-HASH-TIME.json`: a build in canary whose answer differed from the serving build's.
struct CanaryDivergenceRecord: Codable, Sendable {
    var time: String
    /// `name@version` of the build in canary, and of the serving build.
    var plugin: String
    var contentHash: String
    var previous: String
    var previousContentHash: String
    var request: RecordedRequest
    var canary: RecordedAnswer
    var serving: RecordedAnswer

    enum CodingKeys: String, CodingKey {
        case time, plugin, previous, request, canary, serving
        case contentHash = "content_hash"
        case previousContentHash = "previous_content_hash"
    }
}

/// A crash bundle's `bundle.json`, as ``CrashBundles`` writes it and ``CrashBundle/init(path:)`` reads it
/// back. Read leniently: a field that is absent or of another type reads as nil (a bundle may be older
/// than a field, or edited by hand), and the reader decides what that means.
struct CrashBundleRecord: Codable {
    /// The request that was running, and the server's limits it ran under.
    struct Request: Codable {
        var evalTimeout: Double?
        var workerMemory: Int?
        var inputFormat: String?
        var format: String?
        var threads: Int?
        var compression: JSONValue?
        var `where`: String?
        var select: String?

        enum CodingKeys: String, CodingKey {
            case format, threads, compression, `where`, select
            case evalTimeout = "eval_timeout"
            case workerMemory = "worker_memory"
            case inputFormat = "input_format"
        }

        init() {}

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            evalTimeout = c.lenient(Double.self, .evalTimeout)
            workerMemory = c.lenient(Int.self, .workerMemory)
            inputFormat = c.lenient(String.self, .inputFormat)
            format = c.lenient(String.self, .format)
            threads = c.lenient(Int.self, .threads)
            compression = c.lenient(JSONValue.self, .compression)
            `where` = c.lenient(String.self, .where)
            select = c.lenient(String.self, .select)
        }
    }

    /// The request's file: where it was, its size and hash, and the bundle's copy of an upload.
    struct Input: Codable {
        var uploaded: Bool?
        var path: String?
        var openedPath: String?
        var bytes: Int?
        var sha256: String?
        /// `input`: the file in the bundle holding the uploaded body.
        var body: String?
        var bodyTruncated: Bool?

        enum CodingKeys: String, CodingKey {
            case uploaded, path, bytes, sha256, body
            case openedPath = "opened_path"
            case bodyTruncated = "body_truncated"
        }

        init() {}

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            uploaded = c.lenient(Bool.self, .uploaded)
            path = c.lenient(String.self, .path)
            openedPath = c.lenient(String.self, .openedPath)
            bytes = c.lenient(Int.self, .bytes)
            sha256 = c.lenient(String.self, .sha256)
            body = c.lenient(String.self, .body)
            bodyTruncated = c.lenient(Bool.self, .bodyTruncated)
        }
    }

    /// A plugin build of the set the request ran with.
    struct Build: Codable {
        var name: String?
        var version: String?
        var sha256: String?
        /// The private copy's file name.
        var copy: String?

        init(name: String, version: String, sha256: String, copy: String) {
            self.name = name
            self.version = version
            self.sha256 = sha256
            self.copy = copy
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = c.lenient(String.self, .name)
            version = c.lenient(String.self, .version)
            sha256 = c.lenient(String.self, .sha256)
            copy = c.lenient(String.self, .copy)
        }
    }

    static let format = "eddy-crash-bundle/1"

    var format: String?
    var time: String?
    /// `crash`, `timeout`, `memory` or `divergence` (see ``CrashBundles/kind(cause:timedOut:)``).
    var kind: String?
    var cause: String?
    var site: String?
    var crashLine: String?
    var request: Request?
    var input: Input?
    var plugins: [Build]?

    enum CodingKeys: String, CodingKey {
        case format, time, kind, cause, site, request, input, plugins
        case crashLine = "crash_line"
    }

    init(
        time: String, kind: String, cause: String, site: String, crashLine: String, request: Request, input: Input,
        plugins: [Build]
    ) {
        format = Self.format
        self.time = time
        self.kind = kind
        self.cause = cause
        self.site = site
        self.crashLine = crashLine
        self.request = request
        self.input = input
        self.plugins = plugins
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = c.lenient(String.self, .format)
        time = c.lenient(String.self, .time)
        kind = c.lenient(String.self, .kind)
        cause = c.lenient(String.self, .cause)
        site = c.lenient(String.self, .site)
        crashLine = c.lenient(String.self, .crashLine)
        request = c.lenient(Request.self, .request)
        input = c.lenient(Input.self, .input)
        // As a whole: one element that is not an object drops the list (a build's fields are checked
        // one by one when it is read).
        plugins = c.lenient([Build].self, .plugins)
    }
}

extension KeyedDecodingContainer {
    /// The value under `key`, or nil when it is absent, null or of another type.
    func lenient<T: Decodable>(_ type: T.Type, _ key: Key) -> T? {
        (try? decodeIfPresent(type, forKey: key)) ?? nil
    }
}
