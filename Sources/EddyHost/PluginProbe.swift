#if canImport(Glibc)
import Glibc
#endif

/// Loads a plugin file in a child process before the host maps it: the child runs the same checks,
/// `dlopen`, handshake and registration. If the child dies from a signal, the host refuses the file
/// and carries on; otherwise the host loads it itself (and reports its own errors).
public struct PluginProbe: Sendable {
    /// The program to run, with the file's path appended to `arguments`.
    public let executable: String
    public let arguments: [String]

    public init(executable: String, arguments: [String]) {
        self.executable = executable
        self.arguments = arguments
    }

    /// This process's own executable with `probe-plugin` (the `eddy` CLI's hidden subcommand).
    public static var selfExecutable: PluginProbe {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let path = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "eddy"
        return PluginProbe(executable: path, arguments: ["probe-plugin"])
    }

    /// nil when the child survived loading `path`; otherwise how it died.
    public func check(_ path: String) -> String? {
        let argv = [executable] + arguments + [path]
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for p in cArgs { free(p) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The child's own output is not the host's: send it to /dev/null.
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // The child inherits the environment, without Swift's crash backtracer (it takes most of a
        // second to print a backtrace nobody reads).
        var env: [UnsafeMutablePointer<CChar>?] = []
        var e = environ
        while let entry = e.pointee {
            if !String(cString: entry).hasPrefix("SWIFT_BACKTRACE=") { env.append(strdup(entry)) }
            e += 1
        }
        env.append(strdup("SWIFT_BACKTRACE=enable=no"))
        env.append(nil)
        defer { for p in env { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, cArgs, env)
        guard spawned == 0 else { return nil }  // no probe possible: fall back to the host's own checks
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        if signal != 0 && signal != 0x7f {
            let name = strsignal(signal).map { String(cString: $0) } ?? "signal"
            return "killed by signal \(signal), \(name)"
        }
        return nil
    }
}
