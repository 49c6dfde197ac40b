import ArgumentParser
import EddyCommands
import EddyHost
@_spi(Host) import EddyServer

/// `eddy worker`: one evaluation process of `eddy serve` (hidden; the server starts it).
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Evaluate requests for an eddy serve supervisor (started by it).",
        shouldDisplay: false)

    @Option(help: "Descriptor of the socket to the supervisor.")
    var socketFd: Int32

    @Option(help: "Descriptor of the shared page where plugin calls are marked.")
    var blameFd: Int32

    @Option(help: "Size of that page in bytes.")
    var blameSize: Int = 4096

    @Option(help: "The supervisor's process id: this process dies with it.")
    var parent: Int32?

    @Option(help: "Address-space limit in bytes (0: none).")
    var memoryLimit: Int = 0

    @Option(help: "Refuse plugin files larger than this many bytes.")
    var maxPluginBytes: Int = 256 << 20

    @Option(help: "When running as root: the user (UID:GID) to become before loading plugin code.")
    var workerUser: String?

    @Flag(help: "Do not confine this process (eddy serve --no-confine).")
    var noConfine = false

    @Flag(help: "Exit rather than run plugin code with less than full confinement.")
    var requireConfinement = false

    func run() throws {
        var config = WorkerProcess.Configuration(
            socket: socketFd, blamePage: blameFd, blamePageSize: blameSize, parent: parent,
            memoryLimit: memoryLimit, maxPluginBytes: maxPluginBytes)
        config.confine = !noConfine
        config.user = workerUser.flatMap(Confinement.WorkerUser.init(argument:))
        config.requireConfinement = requireConfinement
        WorkerProcess.run(config)
    }
}
