@_spi(Host) import EddyHost
import EddyIO

#if canImport(Glibc)
    import Glibc
#endif

/// What `eddy` runs itself and what it hands to `eddy-server`.
///
/// A one-shot `eddy eval` should cost its query, not the rest of the command tree: `eddy` is built
/// from EddyEval alone — no ArgumentParser, no swift-crypto (``HostCrypto`` opens it when a plugin is
/// hashed), no server — and runs a well-formed `eddy eval` line itself. Foundation's essentials and
/// with them Swift's concurrency and string-processing libraries (ArgumentParser needs them) cost every
/// process start that loaded them about a third of a 6 ms `eddy eval` of a 10-row file. Every other
/// command line — the other commands, `eval --help`, an `eval` line with a mistake for ArgumentParser
/// to word, `serve` and its workers — is run by `eddy-server`, the whole command tree, installed
/// beside `eddy`.
package enum EddyFront {
    /// The executable `eddy` hands command lines to, looked for in `eddy`'s own directory.
    package static let serverExecutable = "eddy-server"

    /// Runs `eddy eval` when `arguments` (the command line, the executable first) is a well-formed one,
    /// and leaves with its status; otherwise returns, having run nothing.
    package static func runEval(_ arguments: [String]) {
        guard arguments.count >= 2, arguments[1] == "eval" else { return }
        prepareProcess()
        if let status = EvalSettings.runDirectly(arguments.dropFirst(2)) { leave(status) }
    }

    /// What a process of either executable sets up before running a command: freed memory kept for
    /// the next batch, and the crash report that names a plugin whose code crashed.
    package static func prepareProcess() {
        PluginProbe.keepFreedMemory()
        PluginProbe.installCrashReport(
            hint: "to run without it, remove that plugin's file from the plugin directory "
                + "(eddy plugins lists the files)")
    }

    /// Flushes standard output and ends the process without running `atexit` handlers: a loaded
    /// plugin's destructors and handlers are its code too (the probe process runs them instead).
    package static func leave(_ status: Int32) -> Never {
        Stdout.flush()
        fflush(nil)
        _exit(status)
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
        guard let directory = OwnExecutable.directory else {
            fail(127, "could not be found (/proc/self/exe is not readable, so eddy's own directory is unknown)")
        }
        let path = directory + "/" + serverExecutable
        let shown = escapedForDisplay(path)
        // Opened once and run from that descriptor: what was checked is what runs. Without blocking: a
        // FIFO put there would wait for a writer forever (distrust then refuses it as not a file).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            let reason =
                errno == ELOOP
                ? "a symbolic link, not followed: install the file itself" : String(cString: strerror(errno))
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
    package static func distrust(_ fd: Int32) -> String? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return "cannot be examined: \(String(cString: strerror(errno)))" }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return "not a regular file" }
        // The check a plugin file meets (owner, group- and world-writable bits).
        return PluginHost.trustProblem(st, what: "it")
    }

}
