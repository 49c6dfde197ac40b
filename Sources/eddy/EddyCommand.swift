import ArgumentParser

@main
struct EddyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eddy",
        abstract: "Eddy: a compressed-array compute engine with hot-pluggable kernels.",
        subcommands: [EvalCommand.self, PluginsCommand.self, KernelsCommand.self]
    )
}
