import ArgumentParser

@main
struct EddyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eddy",
        abstract: "Eddy: a compressed-array compute engine with hot-pluggable kernels.",
        subcommands: [EvalCommand.self, PluginsCommand.self, KernelsCommand.self, ServeCommand.self, ProbePluginCommand.self]
    )
}
