@_spi(Host) import Eddy
@_spi(Host) import EddyHost
import EddyIO
@_spi(Host) import EddyQuery
import HTTPTypes

// MARK: - Errors

/// The body of every error reply: `{"error": …}`, with the kernel's `owner` when a kernel failed and,
/// when a worker was lost, what became of it (`cause`) and the plugin build blamed for it.
package struct ErrorReply: Codable, Sendable, Equatable {
    package var error: String
    package var owner: String?
    package var cause: String?
    package var plugin: String?
    package var version: String?
    /// The plugin call that was running (`in`).
    package var site: String?
    package var contentHash: String?

    package init(
        _ error: String, owner: String? = nil, cause: String? = nil, plugin: String? = nil, version: String? = nil,
        site: String? = nil, contentHash: String? = nil
    ) {
        self.error = error
        self.owner = owner
        self.cause = cause
        self.plugin = plugin
        self.version = version
        self.site = site
        self.contentHash = contentHash
    }

    enum CodingKeys: String, CodingKey {
        case error, owner, cause, plugin, version
        case site = "in"
        case contentHash = "content_hash"
    }
}

extension EddyFailure {
    /// ``httpStatus`` as HTTP types spell it (499 with nginx's reason phrase).
    var status: HTTPResponse.Status {
        kind == .cancelled
            ? .init(code: httpStatus, reasonPhrase: "Client Closed Request") : .init(code: httpStatus)
    }

    /// The reply's body: the message and the owner.
    var reply: ErrorReply { ErrorReply(message, owner: owner) }
}

// MARK: - POST /eval

/// A plugin build as a reply names it.
package struct PluginBuild: Codable, Sendable, Equatable {
    package var name: String
    package var version: String
    package var contentHash: String

    enum CodingKeys: String, CodingKey {
        case name, version
        case contentHash = "content_hash"
    }
}

/// One executor step of an evaluation's trace (`"trace": true`).
package struct TraceStep: Codable, Sendable, Equatable {
    package var step: String
    package var encoding: String
    package var name: String
    package var owner: String
    package var depth: Int
}

/// The answer to `POST /eval`, from the server's own process or a worker's (which sends it as its
/// reply's body): the plugin set it ran with, then the result and its counts, or the error. An Arrow
/// answer's stream crosses from a worker base64-encoded under ``arrow`` and is answered as the stream
/// itself (see ``ArrowAnswer``).
package struct EvalAnswer: Codable, Sendable {
    package var fingerprint: String
    package var generation: Int
    package var plugins: [PluginBuild]
    package var rowsRead: Int?
    package var rowsSelected: Int?
    package var trace: [TraceStep]?
    /// `footer` when the supervisor answered `count(*)` from an `.eddy` file's footer.
    package var answeredFrom: String?
    package var error: String?
    package var owner: String?
    package var result: RawJSON?
    package var arrow: String?

    enum CodingKeys: String, CodingKey {
        case fingerprint, generation, plugins, trace, error, owner, result
        case rowsRead = "rows_read"
        case rowsSelected = "rows_selected"
        case answeredFrom = "answered_from"
        // Never in a reply to a client: a NUL starts no key a client sends or reads.
        case arrow = "\u{0}arrow_result"
    }

    /// An answer about to be filled in, naming the plugin set of `snapshot`.
    init(snapshot: KernelSnapshot) {
        fingerprint = snapshot.fingerprint
        generation = snapshot.generation
        plugins = snapshot.plugins.map {
            PluginBuild(name: $0.name, version: $0.version, contentHash: $0.contentHash)
        }
    }
}

// MARK: - GET /kernels

/// `GET /kernels`: the registry's keys, each with its kernels and rules in the order they are tried and
/// who registered each. The server (`--workers 0`) and a worker build it here, the same way.
package struct KernelsReply: Codable, Sendable {
    package struct Registered: Codable, Sendable, Equatable {
        package var name: String
        package var owner: String
    }
    package struct Key: Codable, Sendable {
        package var parent: String
        package var child: String
        package var kernels: [Registered]
        package var rules: [Registered]
    }
    package var generation: Int
    package var fingerprint: String
    package var keys: [Key]

    /// The keys of `snapshot`; `generation` as the supervisor numbers it (a worker's own differs).
    init(_ snapshot: KernelSnapshot, generation: Int? = nil) {
        self.generation = generation ?? snapshot.generation
        fingerprint = snapshot.fingerprint
        keys = snapshot.entries.map { e in
            Key(
                parent: e.parent.name, child: e.child.name,
                kernels: e.kernels.map { Registered(name: $0.name, owner: $0.owner.description) },
                rules: e.rules.map { Registered(name: $0.name, owner: $0.owner.description) })
        }
    }
}

// MARK: - GET /health

/// `GET /health`.
package struct HealthReply: Codable, Sendable {
    package var status: String
    package var generation: Int
    /// How many plugins are loaded.
    package var plugins: Int
    package var inFlight: Int
    package var connections: Int
    package var confinement: String

    enum CodingKeys: String, CodingKey {
        case status, generation, plugins, connections, confinement
        case inFlight = "in_flight"
    }
}

// MARK: - GET /plugins

/// One build's canary run, as `/plugins` lists it (see Canary.swift).
package struct CanaryRunReply: Codable, Sendable, Equatable {
    package var plugin: String
    package var version: String
    package var contentHash: String
    package var previousVersion: String
    package var previousContentHash: String
    /// `canary`, `promoted`, `rolled back` or `withdrawn`.
    package var state: String
    package var fraction: Double
    package var requestsToPromote: Int
    package var requests: Int
    package var cleanRequests: Int
    package var compared: Int
    package var started: String
    package var cause: String?
    package var ended: String?
    package var summary: String

    enum CodingKeys: String, CodingKey {
        case plugin, version, state, fraction, requests, compared, started, cause, ended, summary
        case contentHash = "content_hash"
        case previousVersion = "previous_version"
        case previousContentHash = "previous_content_hash"
        case requestsToPromote = "requests_to_promote"
        case cleanRequests = "clean_requests"
    }
}

/// One file of the plugin directory's scan report, as `/plugins` lists it (`eddy plugins --json` says the
/// same of a file), with its build's canary run when it has one.
package struct PluginFileReply: Codable, Sendable {
    package var file: String
    package var status: String
    package var reason: String
    package var plugin: String
    package var version: String
    package var kernels: Int
    package var contentHash: String
    package var loadMilliseconds: Double
    package var linkTarget: String?
    package var verifiedInputs: Int?
    package var canary: CanaryRunReply?

    enum CodingKeys: String, CodingKey {
        case file, status, reason, plugin, version, kernels, canary
        case contentHash = "content_hash"
        case loadMilliseconds = "load_ms"
        case linkTarget = "link_target"
        case verifiedInputs = "verified_inputs"
    }
}

/// A quarantined plugin build, as `/plugins` lists it.
package struct QuarantinedBuildReply: Codable, Sendable {
    package var contentHash: String
    package var plugin: String
    package var cause: String
    /// ISO 8601, UTC.
    package var time: String

    enum CodingKeys: String, CodingKey {
        case plugin, cause, time
        case contentHash = "content_hash"
    }
}

/// `GET /plugins`: the live scan report, the quarantined builds and the canary runs.
package struct PluginsReply: Codable, Sendable {
    package var directory: String
    package var generation: Int
    package var quarantined: [QuarantinedBuildReply]
    /// Worker processes (0: evaluations run in the server's own process).
    package var workers: Int
    package var canaries: [CanaryRunReply]
    package var confinement: String
    package var retainedImages: Int
    package var fingerprint: String
    package var files: [PluginFileReply]

    enum CodingKeys: String, CodingKey {
        case directory, generation, quarantined, workers, canaries, confinement, fingerprint, files
        case retainedImages = "retained_images"
    }
}

// MARK: - POST /plugins/NAME/…

/// `POST /plugins/NAME/canary`: the policy the next build of the plugin will meet.
package struct CanaryPolicyReply: Codable, Sendable {
    package var plugin: String
    package var fraction: Double
    package var requestsToPromote: Int
    package var note: String

    enum CodingKeys: String, CodingKey {
        case plugin, fraction, note
        case requestsToPromote = "requests_to_promote"
    }
}

/// `POST /plugins/NAME/promote` and `…/rollback`: what became of the build in canary.
package struct CanaryDecisionReply: Codable, Sendable {
    package var plugin: String
    /// `promoted` or `rolled back`.
    package var state: String
    package var version: String
    package var contentHash: String
    /// The version that serves after a rollback.
    package var serving: String?
    package var summary: String

    enum CodingKeys: String, CodingKey {
        case plugin, state, version, serving, summary
        case contentHash = "content_hash"
    }
}
