import ArgumentParser
import EddyIO

#if canImport(Glibc)
    import Glibc
#endif

/// What `eddy` runs itself and what it hands to `eddy-server`.
///
/// A one-shot `eddy eval` should cost its query, not the server: the server's dependencies
/// (Foundation with ICU, SwiftNIO, Hummingbird) made every process start load and relocate them,
/// about 4 ms of a 13 ms `eddy eval` of a 10-row file. So `eddy` is built without them and runs
/// ``EddyCommand/inProcess`` itself; any other command line — `serve` and its workers, `replay`, the
/// `plugins` subcommands that talk to a server, `help`, `--help` at the top, a mistyped command — is
/// run by `eddy-server`, the same command tree with everything, installed beside `eddy`.
package enum EddyFront {
    /// The executable `eddy` hands command lines to, looked for in `eddy`'s own directory.
    package static let serverExecutable = "eddy-server"

    /// The names of ``EddyCommand/inProcess``, spelled out: reading each command's configuration here
    /// would build ten of them on every start. FrontTests runs `eddy NAME --help` for each in `eddy`'s
    /// own process.
    package static let inProcessNames: Set<String> = [
        "eval", "convert", "inspect", "plugins", "kernels", "keygen", "sign", "verify", "new-plugin", "probe-plugin",
    ]

    /// Whether `eddy` runs `arguments` (its command line, the executable first) in its own process.
    package static func runsInProcess(_ arguments: [String]) -> Bool {
        guard arguments.count >= 2 else { return false }
        let command = arguments[1]
        guard inProcessNames.contains(command) else { return false }
        if command == "plugins" {
            // `eddy plugins --help` lists the server subcommands too, so it is eddy-server's.
            let rest = arguments.dropFirst(2)
            if rest.contains(where: { PluginsCommand.serverSubcommandNames.contains($0) || $0 == "help" }) {
                return false
            }
            if rest.contains(where: { $0 == "-h" || $0 == "--help" || $0 == "--help-hidden" }) { return false }
        }
        return true
    }

    /// Replaces this process with `eddy-server` and the same command line, or says why it cannot
    /// (exit 127, as a shell does for a command it cannot run).
    package static func handOff(_ arguments: [String]) -> Never {
        // Never a bare name: execv would take it relative to the working directory, which anyone
        // may have chosen.
        let path = ownDirectory().map { $0 + "/" + serverExecutable }
        var reason = "/proc/self/exe is not readable, so eddy's own directory is unknown"
        if let path {
            var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
            argv.append(nil)
            execv(path, &argv)
            reason = String(cString: strerror(errno))
        }
        let command =
            arguments.count >= 2
            ? "`eddy \(escapedForDisplay(String(arguments[1].unicodeScalars.prefix(64))))`" : "`eddy` without a command"
        let message =
            "eddy: \(command) is run by \(serverExecutable), which could not be started "
            + "(\(path ?? serverExecutable): \(reason)); "
            + "it is built with eddy (swift build) and must sit in the same directory\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        _exit(127)
    }

    /// The directory of the running executable (`/proc/self/exe`), or nil when it cannot be read.
    static func ownDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
