import ArgumentParser
import Eddy
import EddyHost

/// `eddy probe-plugin FILE`: loads one plugin file into a throwaway session. The host runs it in a
/// child process before loading a new plugin itself, so that a plugin that crashes kills only this.
struct ProbePluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe-plugin", abstract: "Load one plugin file in this process and exit (used by hosts).",
        shouldDisplay: false)

    @Argument var file: String

    func run() throws {
        let host = PluginHost(session: Session(), probe: nil)
        let row = host.load(file)
        if row.status == .rejected { throw ExitCode(3) }
    }
}
