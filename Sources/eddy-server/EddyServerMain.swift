import EddyCommands
import EddyServer

/// `eddy-server`: every `eddy` command, the server's among them. `eddy` starts it for the command
/// lines it does not run itself (see `EddyFront`); `eddy serve` starts it again for its workers.
@main
enum EddyServerMain {
    static func main() async {
        EddyCommand.addServerCommands(
            serve: ServeCommand.self, worker: WorkerCommand.self, replay: ReplayCommand.self,
            plugins: [
                PluginsStatusCommand.self, PluginsPromoteCommand.self, PluginsRollbackCommand.self,
                PluginsCanaryCommand.self,
            ])
        if CommandLine.arguments.dropFirst().first == "serve" { EddyServer.runTasksOnEventLoops() }
        await EddyEntry.run()
    }
}
