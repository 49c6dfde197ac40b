import CEddyHost
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Starts helper processes of the host (the probe, the workers) with `posix_spawn` — never a fork of
/// this threaded process — handing them chosen descriptors and nothing else.
public enum ChildProcess {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The children ``spawn`` started and nobody has reaped yet: any other child of this process is
    /// one a plugin left behind and this process adopted as the subreaper (see the server's sweep).
    private static let children = Mutex<Set<pid_t>>([])

    /// Whether `pid` is a child ``spawn`` started (and not yet marked reaped).
    public static func isOwn(_ pid: pid_t) -> Bool { children.withLock { $0.contains(pid) } }

    /// Marks `pid` reaped (its id may be reused from now on).
    public static func reaped(_ pid: pid_t) { _ = children.withLock { $0.remove(pid) } }

    /// Whether an environment entry (`NAME=value`) reaches a child: the child runs plugin code, so it
    /// gets what locates libraries and sets locale and time, and Eddy's own variables (`EDDY_…`), never
    /// the rest of the server's environment (credentials an operator exported, say).
    static func passes(_ entry: String) -> Bool {
        guard let equals = entry.firstIndex(of: "=") else { return false }
        let name = entry[..<equals]
        if name == "SWIFT_BACKTRACE" { return false }
        return name.hasPrefix("EDDY_") || name.hasPrefix("LC_") || keptNames.contains(String(name))
    }

    static let keptNames: Set<String> = ["PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH"]

    /// Spawns `executable` with `arguments` (argv[0] is added). `descriptors` maps each of this
    /// process's descriptors to the number the child sees (3, 4 …); the environment is this process's
    /// less what ``passes(_:)`` keeps back; standard input and output are
    /// /dev/null, standard error is inherited unless `quiet`. The child runs without Swift's crash
    /// backtracer (it takes most of a second to print a backtrace that the host replaces with its own
    /// report), in a process group of its own if `newProcessGroup`.
    /// - Parameter relayStandardError: the child's standard error goes through a pipe and reaches this
    ///   process's line by line, prefixed `[worker PID] ` and escaped (see `StandardErrorRelay`).
    public static func spawn(
        _ executable: String, _ arguments: [String], descriptors: [(Int32, Int32)],
        quiet: Bool = false, newProcessGroup: Bool = false, relayStandardError: Bool = false
    ) throws(Failure) -> pid_t {
        // Copies numbered above every target first, so that one dup2 cannot overwrite the source of another.
        var sources: [(Int32, Int32)] = []
        defer { for (fd, _) in sources { close(fd) } }
        for (fd, target) in descriptors {
            let copy = eddy_dup_above(fd, 10)
            guard copy >= 0 else { throw Failure(description: "cannot pass descriptor \(fd): \(errnoText())") }
            sources.append((copy, target))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        if quiet { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }
        var relay: [Int32] = [-1, -1]
        if relayStandardError && !quiet {
            guard eddy_pipe_cloexec(&relay) == 0 else {
                throw Failure(description: "cannot make the child's standard error pipe: \(errnoText())")
            }
            posix_spawn_file_actions_adddup2(&actions, relay[1], 2)
        }
        defer { if relay[1] >= 0 { close(relay[1]) } }
        // The read end is the relay's once the child runs; on every earlier way out it is closed here.
        var relayStarted = false
        defer { if relay[0] >= 0 && !relayStarted { close(relay[0]) } }
        for (fd, target) in sources { posix_spawn_file_actions_adddup2(&actions, fd, target) }
        // Nothing else crosses: descriptors without close-on-exec (NIO's sockets and epoll) included.
        let lowest = (descriptors.map(\.1).max() ?? 2) + 1
        guard eddy_spawn_close_from(&actions, Int32(max(3, lowest))) == 0 else {
            throw Failure(description: "cannot prepare the child's descriptors: \(errnoText())")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if newProcessGroup {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        var cArgs: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) }
        cArgs.append(nil)
        defer { for p in cArgs { free(p) } }
        var env: [UnsafeMutablePointer<CChar>?] = []
        var e = environ
        while let entry = e.pointee {
            if Self.passes(String(cString: entry)) { env.append(strdup(entry)) }
            e += 1
        }
        env.append(strdup("SWIFT_BACKTRACE=enable=no"))
        env.append(nil)
        defer { for p in env { free(p) } }
        var pid: pid_t = 0
        // Recorded under the lock it is started under: a sweep never sees it unrecorded.
        let spawned = children.withLock { set in
            let r = posix_spawn(&pid, executable, &actions, &attributes, cArgs, env)
            if r == 0 { set.insert(pid) }
            return r
        }
        guard spawned == 0 else {
            throw Failure(description: "cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        if relay[0] >= 0 {
            relayStarted = true
            StandardErrorRelay.start(fd: relay[0], prefix: "[worker \(pid)] ")
        }
        return pid
    }
}
