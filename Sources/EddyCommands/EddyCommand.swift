import ArgumentParser
@_spi(Host) import EddyHost

#if canImport(Glibc)
    import Glibc
#endif

/// The `eddy` command tree, carried by `eddy-server`: `eddy` runs a well-formed `eval` line itself
/// (``EddyFront``, without ArgumentParser) and starts `eddy-server` for every other command line.
/// `eddy-server` adds its commands (``addServerCommands(serve:worker:replay:plugins:)``) before parsing.
package struct EddyCommand: AsyncParsableCommand {
    /// The tree without the server's commands (before ``addServerCommands(serve:worker:replay:plugins:)``).
    static let inProcess: [any ParsableCommand.Type] = [
        EvalCommand.self, ConvertCommand.self, InspectCommand.self, PluginsCommand.self, KernelsCommand.self,
        KeygenCommand.self, SignCommand.self, VerifyCommand.self, NewPluginCommand.self, ProbePluginCommand.self,
    ]

    nonisolated(unsafe) static var subcommands: [any ParsableCommand.Type] = inProcess

    /// `eddy-server`'s tree: the in-process commands and the server's, in the order `eddy --help` lists
    /// them; `plugins` are the `eddy plugins` subcommands that talk to a running server.
    package static func addServerCommands(
        serve: any ParsableCommand.Type, worker: any ParsableCommand.Type, replay: any ParsableCommand.Type,
        plugins: [any ParsableCommand.Type]
    ) {
        subcommands = [
            EvalCommand.self, ConvertCommand.self, InspectCommand.self, PluginsCommand.self, KernelsCommand.self,
            serve, KeygenCommand.self, SignCommand.self, VerifyCommand.self, NewPluginCommand.self,
            ProbePluginCommand.self, worker, replay,
        ]
        PluginsCommand.serverSubcommands = plugins
    }

    package static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "eddy",
            abstract: "Eddy: a compressed-array compute engine with hot-pluggable kernels.",
            subcommands: subcommands
        )
    }

    package init() {}
}

/// The entry point of both executables: ArgumentParser's, except for how the process ends. A loaded
/// plugin's destructors and `atexit` handlers are its code too; `exit()` would run them in the host
/// (the probe process runs them instead), so the host flushes its output and leaves with `_exit`.
package enum EddyEntry {
    /// On the main actor, as the `main` that calls it: a nonisolated async function would run on the
    /// global executor, whose threads, started before `eddy eval` confines itself, Landlock would
    /// not cover (and each takes a stack and a malloc arena under `--worker-memory`).
    @MainActor
    package static func run() async -> Never {
        EddyFront.prepareProcess()
        let arguments = CommandLine.arguments
        if arguments.count >= 2, arguments[1] == "eval", let status = EvalSettings.runDirectly(arguments.dropFirst(2)) {
            leave(status)
        }
        do {
            var command: any ParsableCommand
            if let direct = parsedDirectly(arguments) {
                command = direct
            } else {
                command = try EddyCommand.parseAsRoot()
            }
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

    /// The leaf commands ``parsedDirectly(_:)`` parses on their own, by name.
    static let directlyParsed: [String: any ParsableCommand.Type] = [
        "convert": ConvertCommand.self, "inspect": InspectCommand.self,
        "kernels": KernelsCommand.self, "keygen": KeygenCommand.self, "sign": SignCommand.self,
        "verify": VerifyCommand.self, "new-plugin": NewPluginCommand.self, "probe-plugin": ProbePluginCommand.self,
    ]

    /// A well-formed command line of a leaf command, parsed by that command alone; nil for anything
    /// else, which ``EddyCommand/parseAsRoot(_:)`` then parses (and words any error of).
    ///
    /// Parsing at the root builds the argument set of every command in the tree, by reflection, several
    /// times: over half the instructions of a one-shot `eddy eval` of a 10-row file. The command
    /// parsed alone is the same value (`DirectParseTests` compares them); its errors and help would
    /// name it without `eddy`, so any command line it refuses, or that asks for help, is parsed again
    /// the usual way.
    package static func parsedDirectly(_ arguments: [String]) -> (any ParsableCommand)? {
        guard arguments.count >= 2, let type = directlyParsed[arguments[1]] else { return nil }
        let rest = Array(arguments.dropFirst(2))
        guard !rest.contains(where: EvalSettings.meansSomethingAtTheRoot) else { return nil }
        return try? type.parseAsRoot(rest)
    }

    package static func leave(_ status: Int32) -> Never { EddyFront.leave(status) }
}
