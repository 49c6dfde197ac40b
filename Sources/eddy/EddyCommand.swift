import ArgumentParser
@_spi(Host) import EddyHost
import EddyServer

#if canImport(Glibc)
    import Glibc
#endif

struct EddyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eddy",
        abstract: "Eddy: a compressed-array compute engine with hot-pluggable kernels.",
        subcommands: [
            EvalCommand.self, ConvertCommand.self, InspectCommand.self, PluginsCommand.self, KernelsCommand.self,
            ServeCommand.self, KeygenCommand.self,
            SignCommand.self, VerifyCommand.self, NewPluginCommand.self, ProbePluginCommand.self, WorkerCommand.self,
            ReplayCommand.self,
        ]
    )
}

/// The entry point: ArgumentParser's, except for how the process ends. A loaded plugin's
/// destructors and `atexit` handlers are its code too; `exit()` would run them in the host (the
/// probe process runs them instead), so the host flushes its output and leaves with `_exit`.
@main
enum EddyMain {
    static func main() async {
        if CommandLine.arguments.dropFirst().first == "serve" { EddyServer.runTasksOnEventLoops() }
        PluginProbe.keepFreedMemory()
        PluginProbe.installCrashReport(
            hint: "to run without it, remove that plugin's file from the plugin directory "
                + "(eddy plugins lists the files)")
        do {
            var command = try EddyCommand.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            leave(0)
        } catch {
            let code = EddyCommand.exitCode(for: error)
            let message = EddyCommand.fullMessage(for: error)
            if !message.isEmpty {
                if code == .success { print(message) } else { Stderr.write(message + "\n") }
            }
            leave(code.rawValue)
        }
    }

    static func leave(_ status: Int32) -> Never {
        Stdout.flush()
        fflush(nil)
        _exit(status)
    }
}
