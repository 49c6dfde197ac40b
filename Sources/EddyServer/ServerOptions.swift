import EddyHost
import EddyIO
@_spi(Host) public import EddyQuery

#if canImport(Glibc)
    import Glibc
#endif

/// What `eddy serve` lets a request do: where it may read files, who may call it, and how much of
/// the machine one request may take. Every limit has a flag on `eddy serve`.
public struct ServerOptions: Sendable {
    /// Roots under which a request's `path` may lie (resolved, links followed); empty: no paths at all.
    public var dataDirectories: [String] = []
    /// Extra names a `Host` header may carry besides the loopback ones (the `--hostname` served).
    public var allowedHosts: [String] = []
    /// Bearer token every request but `/health` must carry; nil: none needed (loopback only).
    public var token: String?
    /// Largest request body, in bytes.
    public var maxBodyBytes = 256 << 20
    /// Seconds to receive a request body once its head has arrived (shorter than `idleTimeout`,
    /// which also closes a connection whose body stalls, without an answer).
    public var bodyTimeout = 20.0
    /// Seconds an idle keep-alive connection, or one whose request head is still incomplete, stays open.
    public var idleTimeout = 30.0
    /// Seconds one evaluation may run (checked between batches).
    public var evalTimeout = 60.0
    /// Evaluations running at once; more wait in a queue of `maxQueue`, and past that get 503.
    public var maxConcurrent = 2
    public var maxQueue = 64
    /// Largest result, in bytes of output text.
    public var maxResultBytes = 64 << 20
    /// Worker processes that evaluate (the server itself never maps plugin code); 0 evaluates in
    /// this process, as before isolation.
    public var workers = 0
    /// Address-space limit of each worker, in bytes (0: none).
    public var workerMemory = 0
    /// Whether workers and probes confine themselves before plugin code runs (`--no-confine` turns it off).
    public var confine = true
    /// The user workers and probes become when the server runs as root (`--worker-user`).
    public var workerUser: Confinement.WorkerUser?
    /// Workers exit rather than run plugin code with less than full confinement (`--require-confinement`).
    public var requireConfinement = false
    /// The share (0…1) of requests in which plugin code took part that are evaluated again without it and
    /// compared (`--shadow-check`); 0: none. See ShadowCheck.swift.
    public var shadowCheck = 0.0
    /// The share (0…1) of requests a new build of an already-loaded plugin serves first, in canary
    /// (`--canary`); 0: a new build replaces the old at once. Per plugin, `POST /plugins/NAME/canary`.
    /// See Canary.swift.
    public var canaryFraction = 0.0
    /// Canary requests answered without a crash, a timeout or a divergence before the build is promoted
    /// (`--canary-requests`).
    public var canaryRequests = 100
    /// The share (0…1) of canary requests also evaluated with the previous build and compared
    /// (`--canary-check`).
    public var canaryCheck = 1.0
    /// Connections held open at once (idle ones make room for new ones; past it, with every one
    /// busy, a new connection is closed at once). See ``ConnectionLimit``.
    public var maxConnections = 1_024
    /// Connections one client that is not on loopback may hold open.
    public var maxConnectionsPerClient = 256
    /// Limits on `where` and `select` expressions.
    public var expressionLimits = Parser.Limits(maxLength: 65_536, maxDepth: 100, maxTerms: 10_000)

    public init() {}

    /// Whether `host` (a name or address, without a port) is this machine's loopback.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h.hasSuffix(".localhost") || h == "::1" || h == "[::1]" || h == "0:0:0:0:0:0:0:1" {
            return true
        }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127"
            && parts.allSatisfy { p in
                !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber)
                    && (Int(p) ?? 256) < 256
            }
    }

    /// Resolves `--data-dir` arguments to real directory paths.
    /// - Throws: a message naming the directory that does not exist or is not one.
    public static func resolveDataDirectories(_ paths: [String]) throws -> [String] {
        try paths.map { path in
            guard let real = realPath(path) else {
                throw ServerSetupError("--data-dir \(escapedForDisplay(path)): \(String(cString: strerror(errno)))")
            }
            guard FileKind.of(real) == .directory else {
                throw ServerSetupError("--data-dir \(escapedForDisplay(path)): not a directory")
            }
            return real
        }
    }

    /// Raises this process's soft descriptor limit to its hard limit (a server that holds connections
    /// should not stop at a shell's default 1,024) and returns the soft limit in force.
    public static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1_024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > UInt64(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// Reads a bearer token from a file that only its owner may read, and that this user (or root)
    /// owns: a 0600 file another user planted under the name (in /tmp, say) holds a token they know.
    public static func readToken(_ path: String) throws -> String {
        let text = try ServerToken.readOwnedPrivateFile(path)
        let token = text.trimmingWhitespace
        guard token.count >= 16, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw ServerSetupError("--token-file \(path): the token must be at least 16 printable ASCII characters")
        }
        return token
    }
}

/// A server that cannot start as configured.
public struct ServerSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

func isRegularFile(_ path: String) -> Bool { FileKind.of(path) == .regular }

/// The system's text for an errno value.
func systemMessage(_ code: Int32) -> String { String(cString: strerror(code)) }

extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
