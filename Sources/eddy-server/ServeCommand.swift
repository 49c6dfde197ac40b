import ArgumentParser
import EddyCommands
@_spi(Host) import EddyHost
import EddyIO
@_spi(Host) import EddyQuery
@_spi(Host) import EddyServer
import Logging

#if canImport(Glibc)
    import Glibc
#endif

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract:
            "Run a long-lived host: HTTP API on loopback, plugin directory watched for hot add, replace and remove.",
        discussion: """
            Endpoints: POST /eval, GET /plugins, GET /kernels, GET /health, GET /metrics (Prometheus text); \
            admin: POST /plugins/NAME/canary?fraction=F&requests=N, POST /plugins/NAME/promote, \
            POST /plugins/NAME/rollback (see --canary). \
            POST /eval takes a JSON body {"path": "...", "where": "...", "select": "...", "format": "json", \
            "trace": true}, or an uploaded CSV / JSON Lines body with the options in the query string. \
            A path is read only when it lies inside a --data-dir (links resolved); without one, only \
            uploads are evaluated. Requests must name a loopback Host (or --hostname) and come from no \
            foreign Origin.

            Every request but GET /health needs 'Authorization: Bearer TOKEN'. Without --token-file the \
            server makes a fresh token at each start in a private file of the user it runs as, \
            $XDG_RUNTIME_DIR/eddy/serve-PID.token (else ~/.eddy/serve-PID.token), names that file in \
            its log and removes it when it stops. --no-token turns this off (loopback only: then any \
            local user can call the server and read what it can read under --data-dir).

            SIGTERM or SIGINT stop the server after in-flight requests finish.
            """
    )

    @Option(help: "Address to listen on (anything but loopback cannot go with --no-token).")
    var hostname = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080

    @OptionGroup var plugins: PluginOptions

    @Option(help: "Seconds between safety-net rescans of the plugin directory.")
    var rescan: Double = 2

    @Option(
        help: ArgumentHelp(
            "Another name a request's Host header may carry, besides loopback and --hostname (repeatable).",
            valueName: "name"))
    var allowedHost: [String] = []

    @Option(help: ArgumentHelp("A directory whose files requests may read by path (repeatable).", valueName: "dir"))
    var dataDir: [String] = []

    @Option(
        help: ArgumentHelp(
            "A file holding the bearer token every request but /health must send (mode 0600); "
                + "created with a fresh token if it does not exist (default: a new token per start, see below).",
            valueName: "file"))
    var tokenFile: String?

    @Flag(
        help:
            "Require no token (loopback only): any local user can then call the server and read what it can read under --data-dir."
    )
    var noToken = false

    @Option(help: ArgumentHelp("Largest request body accepted, in bytes.", valueName: "bytes"))
    var maxBodyBytes: Int = ServerOptions().maxBodyBytes

    @Option(help: ArgumentHelp("Seconds to receive a request body.", valueName: "seconds"))
    var bodyTimeout: Double = ServerOptions().bodyTimeout

    @Option(
        help: ArgumentHelp(
            "Seconds before an idle connection (or an unfinished request head) is closed.",
            valueName: "seconds"))
    var idleTimeout: Double = ServerOptions().idleTimeout

    @Option(help: ArgumentHelp("Seconds one evaluation may run.", valueName: "seconds"))
    var evalTimeout: Double = ServerOptions().evalTimeout

    @Option(
        help: ArgumentHelp(
            "Worker processes that evaluate, so that a plugin that crashes or hangs takes down only its "
                + "worker (default: cores; 0 evaluates in the server's own process, without crash isolation).",
            valueName: "n"))
    var workers: Int?

    @Option(help: ArgumentHelp("Address-space limit of each worker, in bytes (0: none).", valueName: "bytes"))
    var workerMemory: Int = 8 << 30

    @Option(help: ArgumentHelp("Evaluations running at once (default: cores).", valueName: "n"))
    var maxConcurrent: Int?

    @Option(help: ArgumentHelp("Evaluations waiting for a slot before more get 503.", valueName: "n"))
    var maxQueue: Int = ServerOptions().maxQueue

    @Option(
        help: ArgumentHelp(
            "Connections held open at once; at the cap an idle one is closed to make room, or the new one when "
                + "all are busy (default: what the descriptor limit leaves after a reserve for workers, plugins "
                + "and files, at most 4096).",
            valueName: "n"))
    var maxConnections: Int?

    @Option(
        help: ArgumentHelp(
            "Connections one client that is not on loopback may hold open (default: a quarter of "
                + "--max-connections, at least 16).",
            valueName: "n"))
    var maxConnectionsPerClient: Int?

    @Option(help: ArgumentHelp("Largest result, in bytes of output.", valueName: "bytes"))
    var maxResultBytes: Int = ServerOptions().maxResultBytes

    @Option(help: ArgumentHelp("Longest where/select expression, in characters (Unicode scalars).", valueName: "n"))
    var maxExpressionLength: Int = ServerOptions().expressionLimits.maxLength

    @Option(help: ArgumentHelp("Deepest nesting of an expression (at most 2000).", valueName: "n"))
    var maxExpressionDepth: Int = ServerOptions().expressionLimits.maxDepth

    @Option(
        help: ArgumentHelp(
            "Share (0 to 1) of the requests in which a plugin's kernel or compressor hook took part to evaluate "
                + "again without plugin kernels and hooks, after answering, and compare; a different answer "
                + "quarantines the plugin build (cause 'wrong answer'). 0: off. A check samples; it does not prove.",
            valueName: "rate"))
    var shadowCheck: Double = 0

    @Option(
        help: ArgumentHelp(
            "Share (0 to 1) of requests a new build of an already-loaded plugin serves first, in canary; the rest "
                + "stay on the build it would replace. It is promoted after --canary-requests clean answers; a "
                + "crash, timeout or answer that differs from the serving build's rolls it back (quarantined). "
                + "0: a new build replaces the old at once. Needs --workers 1 or more.",
            valueName: "fraction"))
    var canary: Double = 0

    @Option(
        help: ArgumentHelp(
            "Canary requests answered without a crash, timeout or divergence before the build is promoted.",
            valueName: "n"))
    var canaryRequests: Int = ServerOptions().canaryRequests

    @Option(
        help: ArgumentHelp(
            "Share (0 to 1) of canary requests also evaluated with the serving build and compared.",
            valueName: "rate"))
    var canaryCheck: Double = ServerOptions().canaryCheck

    @Option(
        help: ArgumentHelp(
            "When the server runs as root: the user workers and probes become before loading plugin code.",
            valueName: "user"))
    var workerUser = "nobody"

    @Flag(
        help:
            "Do not confine workers and probes: plugin code then runs with the server's rights (it can read what the server reads and signal it)."
    )
    var noConfine = false

    @Flag(help: "Refuse to start unless plugin code runs under full confinement (see /health's confinement).")
    var requireConfinement = false

    func validate() throws {
        for (name, value) in [
            ("--body-timeout", bodyTimeout), ("--idle-timeout", idleTimeout), ("--eval-timeout", evalTimeout),
        ] {
            guard value > 0, value <= 86_400 else {
                throw ValidationError("\(name) must be between 0 and 86400 seconds")
            }
        }
        for (name, value) in [
            ("--max-body-bytes", maxBodyBytes), ("--max-result-bytes", maxResultBytes),
            ("--max-expression-length", maxExpressionLength), ("--max-expression-depth", maxExpressionDepth),
        ] {
            guard value > 0 else { throw ValidationError("\(name) must be positive") }
        }
        guard bodyTimeout < idleTimeout else {
            throw ValidationError(
                "--body-timeout (\(bodyTimeout)) must be shorter than --idle-timeout (\(idleTimeout)): "
                    + "the idle timeout also closes a connection whose body stalls, without a 408")
        }
        // Deeper nesting than this overflows an evaluation thread's stack whatever the flag says.
        guard maxExpressionDepth <= 2_000 else {
            throw ValidationError("--max-expression-depth must be at most 2000 (deeper expressions overflow the stack)")
        }
        guard shadowCheck >= 0, shadowCheck <= 1 else {
            throw ValidationError("--shadow-check must be a share from 0 to 1 (0.05: one request in twenty)")
        }
        guard canary >= 0, canary <= 1 else {
            throw ValidationError("--canary must be a share from 0 to 1 (0.1: one request in ten)")
        }
        guard canaryCheck >= 0, canaryCheck <= 1 else { throw ValidationError("--canary-check must be from 0 to 1") }
        guard canaryRequests >= 1, canaryRequests <= 10_000_000 else {
            throw ValidationError("--canary-requests must be from 1 to 10000000")
        }
        if canary > 0 && workers == 0 {
            throw ValidationError(
                "--canary needs --workers 1 or more: two builds of one plugin cannot share the server's process")
        }
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
        if let workers, workers < 0 { throw ValidationError("--workers must be 0 or more") }
        guard workerMemory >= 0 else { throw ValidationError("--worker-memory must be 0 or more") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be 0 or more") }
        if let maxConcurrent, maxConcurrent < 1 { throw ValidationError("--max-concurrent must be 1 or more") }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be 1 or more") }
        if let maxConnectionsPerClient, maxConnectionsPerClient < 1 {
            throw ValidationError("--max-connections-per-client must be 1 or more")
        }
        if noToken && tokenFile != nil { throw ValidationError("--no-token cannot go with --token-file") }
        if noConfine && requireConfinement {
            throw ValidationError("--no-confine cannot go with --require-confinement")
        }
        // Isolation learns each plugin through its probe: without one, only in-process evaluation is
        // left, and that must be asked for, not fallen into.
        if plugins.noProbe && workers == nil {
            throw ValidationError(
                "--no-probe turns off worker isolation (the server learns each plugin through its probe and "
                    + "never loads plugin code itself): add --workers 0 to evaluate in the server's own process, "
                    + "where a crashing kernel stops the server, or drop --no-probe")
        }
    }

    func run() async throws {
        let logger = Self.bootstrapLogging()
        // Workers of this user must not read this process's environment or memory map through /proc.
        if let problem = Confinement.keepSupervisorPrivate() { logger.warning("\(problem)") }
        var options = ServerOptions()
        try checkHostname(&options)
        let token: ServerToken?
        do {
            options.dataDirectories = try ServerOptions.resolveDataDirectories(dataDir)
            token = noToken ? nil : try tokenFile.map(ServerToken.fromFile) ?? ServerToken.makeDefault()
        } catch let e as ServerSetupError {
            Stderr.write("eddy: error: \(e)\n")
            throw ExitCode(2)
        }
        // Removed on every way out of here: a graceful stop, or a server that could not start.
        defer { token?.remove() }
        options.token = token?.token
        Self.logToken(token, options, logger)
        try applyLimits(to: &options)
        try applyConfinement(to: &options)
        try await serve(options, logger: logger)
    }

    /// Log lines on standard error, at `info`.
    static func bootstrapLogging() -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = LazyMetadataLogHandler(StreamLogHandler.standardError(label: label))
            handler.logLevel = .info
            return handler
        }
        return Logger(label: "eddy")
    }

    /// A hostname other machines can reach needs the token and is the only one requests may name.
    func checkHostname(_ options: inout ServerOptions) throws {
        if !ServerOptions.isLoopback(hostname) {
            guard !noToken else {
                Stderr.write(
                    "eddy: error: --hostname \(escapedForDisplay(hostname)) is not loopback: other machines could "
                        + "call this server; --no-token is for loopback only\n")
                throw ExitCode(2)
            }
            options.allowedHosts = [hostname]
        }
    }

    /// Says how requests authenticate: with the token in its file, or (--no-token) not at all.
    static func logToken(_ token: ServerToken?, _ options: ServerOptions, _ logger: Logger) {
        if let token {
            logger.info(
                "requests but GET /health need 'Authorization: Bearer <the token in token_file>'",
                metadata: ["token_file": "\(escapedForDisplay(token.path))", "created": "\(token.created)"])
        } else {
            logger.warning(
                Logger.Message(
                    stringLiteral: "--no-token: no bearer token is required, so any local user can call this server "
                        + "and read what it can read under --data-dir"),
                metadata: ["data_dirs": "\(options.dataDirectories.map(escapedForDisplay).joined(separator: ","))"])
        }
    }

    /// The limits the flags set, and the connection limits the descriptor limit leaves room for.
    func applyLimits(to options: inout ServerOptions) throws {
        options.allowedHosts += allowedHost
        options.maxBodyBytes = maxBodyBytes
        options.bodyTimeout = bodyTimeout
        options.idleTimeout = idleTimeout
        options.evalTimeout = evalTimeout
        options.maxConcurrent = maxConcurrent ?? availableCores()
        options.workers = workers ?? availableCores()
        options.workerMemory = workerMemory
        // Connections stay below the descriptor limit, with a reserve for everything else the server
        // opens: past it every accept failed with EMFILE and the server spun (see ConnectionLimit).
        let descriptors = ServerOptions.raiseDescriptorLimit()
        let reserved = ServerOptions.reservedDescriptors(workers: options.workers, maxConcurrent: options.maxConcurrent)
        let room = descriptors - reserved
        guard room >= 1 else {
            Stderr.write(
                "eddy: error: the descriptor limit \(descriptors) (ulimit -n) leaves no room for connections: the "
                    + "server keeps \(reserved) for workers, plugins and files; raise the limit\n")
            throw ExitCode(2)
        }
        if let maxConnections, maxConnections > room {
            Stderr.write(
                "eddy: error: --max-connections \(maxConnections) is more than the descriptor limit \(descriptors) "
                    + "(ulimit -n) allows: the server keeps \(reserved) for workers, plugins and files, so at most "
                    + "\(room)\n")
            throw ExitCode(2)
        }
        options.maxConnections =
            maxConnections
            ?? ServerOptions.defaultMaxConnections(
                descriptorLimit: descriptors, workers: options.workers, maxConcurrent: options.maxConcurrent)
        options.maxConnectionsPerClient = min(
            options.maxConnections, maxConnectionsPerClient ?? max(16, options.maxConnections / 4))
        options.maxQueue = maxQueue
        options.maxResultBytes = maxResultBytes
        options.shadowCheck = shadowCheck
        options.canaryFraction = canary
        options.canaryRequests = canaryRequests
        options.canaryCheck = canaryCheck
        options.expressionLimits.maxLength = maxExpressionLength
        options.expressionLimits.maxDepth = maxExpressionDepth
    }

    /// How plugin code is confined: refused when --require-confinement asks for more than this host gives.
    func applyConfinement(to options: inout ServerOptions) throws {
        options.confine = !noConfine
        options.requireConfinement = requireConfinement
        if geteuid() == 0 && !noConfine {
            do {
                options.workerUser = try Confinement.WorkerUser.resolve(workerUser)
            } catch {
                Stderr.write("eddy: error: \(error)\n")
                throw ExitCode(2)
            }
        }
        let confinement = EddyServer.confinement(options)
        if requireConfinement && confinement.level != .full {
            Stderr.write("eddy: error: --require-confinement: plugin code would run with confinement \(confinement)\n")
            throw ExitCode(2)
        }
    }

    /// Starts the server and runs it until it stops.
    func serve(_ options: ServerOptions, logger: Logger) async throws {
        // Probes confine themselves as workers do (and become the same user).
        let probe = plugins.settings.probe.map {
            PluginProbe(
                executable: $0.executable, arguments: $0.arguments + EddyServer.confinementArguments(options),
                timeout: $0.timeout, verifyTimeout: $0.verifyTimeout)
        }
        let server: EddyServer
        do {
            server = try EddyServer(
                pluginDirectory: plugins.settings.directory, logger: logger, rescanSeconds: rescan,
                probe: probe, policy: try plugins.settings.policy(), options: options,
                verifier: plugins.noProbe ? plugins.settings.verifier : nil)
        } catch let e as ServerSetupError {
            Stderr.write("eddy: error: \(e)\n")
            throw ExitCode(2)
        }
        if server.confinement.level == .full {
            logger.info("plugin code runs confined", metadata: ["confinement": "full"])
        } else {
            logger.warning(
                "plugin code runs without full confinement", metadata: ["confinement": "\(server.confinement)"])
        }
        do {
            try await server.run(hostname: hostname, port: port)
        } catch let e as ServerSetupError {
            Stderr.write("eddy: error: \(e)\n")
            throw ExitCode(2)
        }
    }
}

/// Standard error as `StreamLogHandler` writes it (the same lines), with the logger's metadata kept
/// aside until a line is written. Hummingbird gives every request's logger a request id; the stream
/// handler formats its metadata whenever it is set, so each request paid for text that a server
/// logging at `info` almost never writes.
struct LazyMetadataLogHandler: LogHandler {
    private var stream: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(_ stream: StreamLogHandler) { self.stream = stream }

    var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        // The logger's own metadata first, the line's own over it (as the stream handler merges them).
        if !metadata.isEmpty { event.metadata = metadata.merging(event.metadata ?? [:]) { $1 } }
        stream.log(event: event)
    }
}
