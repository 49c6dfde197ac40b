import ArgumentParser
@_spi(Host) import EddyHost
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

    /// The names of ``EddyCommand/inProcess``: the leaf commands ``EddyEntry`` parses on their own, and
    /// `plugins`. Names, not each command's configuration, which would build ten of them on every
    /// start. FrontTests runs `eddy NAME --help` for each in `eddy`'s own process.
    package static let inProcessNames: Set<String> = Set(EddyEntry.directlyParsed.keys).union(["eval", "plugins"])

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

    /// Replaces this process with `eddy-server` and the same command line, byte for byte (`argv` as
    /// this process got it: a path that is not UTF-8 stays what it was), or says why it cannot: exit
    /// 127 when there is no `eddy-server` to run, 126 when the file there is not one this user may
    /// trust (as a shell does for a command it cannot find or cannot run).
    package static func handOff(_ arguments: [String], argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>)
        -> Never
    {
        let command =
            arguments.count >= 2
            ? "`eddy \(escapedForDisplay(String(arguments[1].unicodeScalars.prefix(64))))`" : "`eddy` without a command"
        func fail(_ status: Int32, _ what: String) -> Never {
            let message =
                "eddy: \(command) is run by \(serverExecutable), which \(what); "
                + "it is built with eddy (swift build) and must sit in the same directory\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            _exit(status)
        }
        // Never a bare name: execv would take it relative to the working directory, which anyone
        // may have chosen.
        guard let directory = ownDirectory() else {
            fail(127, "could not be found (/proc/self/exe is not readable, so eddy's own directory is unknown)")
        }
        let path = directory + "/" + serverExecutable
        let shown = escapedForDisplay(path)
        // Opened once and run from that descriptor: what was checked is what runs.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            fail(errno == ENOENT ? 127 : 126, "could not be started (\(shown): \(reason))")
        }
        if let distrust = distrust(fd) { fail(126, "is not run (\(shown): \(distrust))") }
        fexecve(fd, argv, environ)
        // ENOENT here means a script: its interpreter cannot reopen a descriptor closed on exec.
        let reason = errno == ENOENT ? "not a program this system runs directly" : String(cString: strerror(errno))
        fail(126, "could not be started (\(shown): \(reason))")
    }

    /// Why the open file must not be run as this user's `eddy-server`, or nil: it must be a regular
    /// file owned by this user or root that no one else may write (as plugin directories are checked),
    /// so that another user cannot put a program there for `eddy` to run — a lone `eddy` copied into a
    /// shared directory leaves the name free.
    static func distrust(_ fd: Int32) -> String? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return "cannot be examined: \(String(cString: strerror(errno)))" }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return "not a regular file" }
        // The check a plugin file meets (owner, group- and world-writable bits).
        return PluginHost.trustProblem(st, what: "it")
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
