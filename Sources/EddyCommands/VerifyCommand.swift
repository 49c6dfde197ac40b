import ArgumentParser
@_spi(Host) import EddyHost

/// `eddy verify PLUGIN.so --trusted-keys DIR`: says who signed a plugin and whether that key is trusted.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a plugin's signature against the public keys in a directory (exit 0: signed by a trusted key)."
    )

    @Argument(help: "The plugin .so to check.")
    var plugin: String

    @Option(help: ArgumentHelp("A directory of public keys (NAME.pub) whose signatures are trusted.", valueName: "dir"))
    var trustedKeys: String

    func run() throws {
        let shown = PluginHost.escaped(plugin)
        do {
            let keys = try PluginSignature.readTrustedKeys(trustedKeys)
            switch PluginSignature.verify(try PluginFileIO.read(plugin), trusted: keys) {
            case .signed(_, let fingerprint, let trustedAs?):
                print("\(shown): signed by \(trustedAs) (key \(fingerprint)): trusted")
            case .signed(let signer, let fingerprint, nil):
                Stderr.write(
                    "eddy: error: \(shown): signed by an untrusted key: '\(PluginHost.escaped(signer))' "
                        + "(key \(fingerprint)) is not in \(trustedKeys)\n")
                throw ExitCode(1)
            case .unsigned:
                Stderr.write("eddy: error: \(shown): unsigned\n")
                throw ExitCode(1)
            case .invalid(let reason):
                Stderr.write("eddy: error: \(shown): \(reason)\n")
                throw ExitCode(1)
            }
        } catch let e as PluginSignature.Failure {
            Stderr.write("eddy: error: \(e)\n")
            throw ExitCode(1)
        }
    }
}
