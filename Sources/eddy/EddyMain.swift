import EddyEval

/// `eddy`: runs a well-formed `eddy eval` line itself and hands every other command line to
/// `eddy-server` (``EddyFront``), before anything else happens in this process. Synchronous, and built
/// from EddyEval alone: nothing here loads Swift's concurrency library or Foundation.
@main
enum EddyMain {
    static func main() {
        let arguments = CommandLine.arguments
        EddyFront.runEval(arguments)
        EddyFront.handOff(arguments, argv: CommandLine.unsafeArgv)
    }
}
