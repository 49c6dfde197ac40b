import EddyCommands

/// `eddy`: runs the commands that need no server itself and hands the rest to `eddy-server`
/// (``EddyFront``), before anything else happens in this process.
@main
enum EddyMain {
    static func main() async {
        let arguments = CommandLine.arguments
        guard EddyFront.runsInProcess(arguments) else { EddyFront.handOff(arguments, argv: CommandLine.unsafeArgv) }
        await EddyEntry.run()
    }
}
