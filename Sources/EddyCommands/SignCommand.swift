import ArgumentParser
@_spi(Host) import EddyHost

/// `eddy sign PLUGIN.so --key FILE`: appends (or replaces) a signature footer, in place.
struct SignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Sign a plugin file in place (a footer the ELF loader ignores; the file still loads as it is)."
    )

    @Argument(help: "The plugin .so to sign.")
    var plugin: String

    @Option(help: ArgumentHelp("The private key file from eddy keygen.", valueName: "file"))
    var key: String

    func run() throws {
        do {
            let (name, fingerprint) = try PluginSignature.signFile(plugin, keyFile: key)
            print("signed \(PluginHost.escaped(plugin)) as \(name) (key \(fingerprint))")
        } catch {
            Stderr.write("eddy: error: \(error)\n")
            throw ExitCode(1)
        }
    }
}
