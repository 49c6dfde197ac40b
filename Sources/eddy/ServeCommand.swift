import ArgumentParser
import EddyHost
import EddyServer
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a long-lived host: HTTP API on loopback, plugin directory watched for hot add, replace and remove.",
        discussion: """
            Endpoints: POST /eval, GET /plugins, GET /kernels, GET /health, GET /metrics (Prometheus text).
            POST /eval takes a JSON body {"path": "...", "where": "...", "select": "...", "format": "json",
            "trace": true}, or an uploaded CSV / JSON Lines body with the options in the query string.
            SIGTERM or SIGINT stop the server after in-flight requests finish.
            """
    )

    @Option(help: "Address to listen on.")
    var hostname = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080

    @OptionGroup var plugins: PluginOptions

    @Option(help: "Seconds between safety-net rescans of the plugin directory.")
    var rescan: Double = 2

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "eddy")
        let server = EddyServer(pluginDirectory: plugins.directory, logger: logger, rescanSeconds: rescan,
                                probe: plugins.probe, policy: plugins.policy)
        try await server.run(hostname: hostname, port: port)
    }
}
