import ArgumentParser
@_spi(Host) import EddyHost

/// `eddy keygen --out DIR [--name NAME]`: an Ed25519 key pair for signing plugins.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make an Ed25519 key pair for signing plugins: NAME.key (mode 0600, keep it secret) and NAME.pub.",
        discussion: "Give NAME.pub to the hosts that should trust your plugins: eddy … --trusted-keys DIR."
    )

    @Option(help: ArgumentHelp("Directory to write the two files to.", valueName: "dir"))
    var out: String

    @Option(help: "The key's name: the signer shown in plugin reports.")
    var name = "eddy"

    func run() throws {
        do {
            let (key, pub) = try PluginSignature.generateKeyPair(name: name, directory: out)
            print("wrote \(key) (secret, mode 0600) and \(pub)")
        } catch {
            Stderr.write("eddy: error: \(error)\n")
            throw ExitCode(1)
        }
    }
}
