import CEddyHost

#if canImport(Glibc)
    import Glibc
#endif

/// What confines plugin code in the process that runs it (a worker, a probe, `eddy eval`), set up
/// before the first plugin byte runs and never undone: `no_new_privs`; Landlock (read-only access to
/// the system libraries, the loaded runtime and the private plugin copies, no write anywhere, no TCP,
/// no signal or abstract socket leaving the process); a seccomp filter (no new program, process,
/// session or socket, no tracing, no signal to another process, no mount, namespace, key, BPF or
/// resource-limit change); resource limits; and, under root, an unprivileged user.
///
/// ``level`` says how much of that this process has: `full`, `partial (what is missing)` or `none`.
public struct Confinement: Sendable, Equatable, CustomStringConvertible {
    public enum Level: String, Sendable { case full, partial, none }

    /// What is missing from full confinement, one phrase each (empty when full).
    public var missing: [String]
    /// Whether the filesystem rules or the seccomp filter hold at all.
    public var anyApplied: Bool

    public var level: Level { missing.isEmpty ? .full : anyApplied ? .partial : .none }

    /// `full`, `partial (…)` or `none (…)`: what `/health`, `/plugins` and `eddy plugins --json` say.
    public var description: String {
        switch level {
        case .full: "full"
        case .partial: "partial (missing: \(missing.joined(separator: "; ")))"
        case .none: "none (\(missing.joined(separator: "; ")))"
        }
    }

    /// The confinement a process asked not to be confined has.
    public static func off(_ why: String) -> Confinement { Confinement(missing: [why], anyApplied: false) }

    /// The test hook: `EDDY_TEST_CONFINEMENT=no-landlock` (and/or `no-seccomp`, comma-separated) makes
    /// this process and the children it starts behave as on a kernel without them. It is read from the
    /// environment the process started with; a worker's environment is its supervisor's, which plugin
    /// code never runs in, so a plugin cannot weaken a running server with it.
    public static let testHook = "EDDY_TEST_CONFINEMENT"

    static func simulated(_ what: String) -> Bool {
        guard let value = getenv(testHook).map({ String(cString: $0) }) else { return false }
        return value.split(separator: ",").contains { $0 == Substring(what) }
    }

    static var landlockABI: Int32 { simulated("no-landlock") ? 0 : eddy_landlock_abi() }
    static var seccompAvailable: Bool { !simulated("no-seccomp") && eddy_seccomp_available() == 1 }

    /// What a child confined with `user` gets on this kernel (the supervisor's answer for its workers
    /// and probes: they apply the same steps when they start).
    /// - Parameter invoker: for `eddy eval`, which runs plugin code as the user who started it.
    public static func expected(user: WorkerUser?, invoker: Bool = false) -> Confinement {
        var missing = kernelGaps(abi: landlockABI, seccomp: seccompAvailable)
        if geteuid() == 0 && (user?.uid ?? 0) == 0 && !invoker {
            missing.append("unprivileged user: plugin code runs as root (--worker-user)")
        }
        return Confinement(missing: missing, anyApplied: landlockABI > 0 || seccompAvailable)
    }

    static func kernelGaps(abi: Int32, seccomp: Bool) -> [String] {
        var missing: [String] = []
        if abi <= 0 {
            missing.append("landlock: not offered by this kernel (files, TCP and signals not restricted)")
        } else {
            if abi < 4 { missing.append("landlock TCP rules: ABI \(abi) < 4") }
            if abi < 6 { missing.append("landlock signal and abstract-socket scopes: ABI \(abi) < 6") }
        }
        if !seccomp { missing.append("seccomp: not offered by this kernel") }
        return missing
    }

    /// The user plugin code runs as when the host runs as root (`--worker-user`, default `nobody`).
    public struct WorkerUser: Sendable, Equatable {
        public var name: String
        public var uid: uid_t
        public var gid: gid_t

        /// Looks `name` (or a numeric uid) up in the user database.
        /// - Throws: ``Failure`` when there is no such user.
        public static func resolve(_ name: String) throws(Failure) -> WorkerUser {
            if let entry = getpwnam(name) {
                return WorkerUser(name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
            }
            if let uid = uid_t(name), let entry = getpwuid(uid) {
                return WorkerUser(name: name, uid: uid, gid: entry.pointee.pw_gid)
            }
            throw Failure(description: "--worker-user \(PluginHost.escaped(name)): no such user")
        }

        /// `UID:GID`, as a child process is told it.
        public var argument: String { "\(uid):\(gid)" }

        /// Parses ``argument``.
        public init?(argument: String) {
            let parts = argument.split(separator: ":")
            guard parts.count == 2, let uid = uid_t(parts[0]), let gid = gid_t(parts[1]) else { return nil }
            self.init(name: argument, uid: uid, gid: gid)
        }

        public init(name: String, uid: uid_t, gid: gid_t) {
            self.name = name
            self.uid = uid
            self.gid = gid
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// What ``apply(_:)`` sets up.
    public struct Plan: Sendable {
        /// Directories and files the process may read (and map executable) beneath, besides the
        /// system's libraries and the objects already loaded.
        public var readPaths: [String]
        /// When this process runs as root: the user to become (nil stays root, and says so).
        public var user: WorkerUser?
        /// RLIMIT_FSIZE: the largest file this process may write (nil leaves it; `eddy eval` writes
        /// its result to standard output, which may be a file of any size). SIGXFSZ is ignored, so a
        /// write past it fails with EFBIG instead of ending the process.
        public var fileSizeLimit: Int?
        /// The process runs plugin code for the user who started it (`eddy eval`): running as root is
        /// that user's choice, not a gap in the confinement.
        public var invoker = false

        /// A worker's or probe's plan.
        public init(readPaths: [String], user: WorkerUser?, fileSizeLimit: Int?) {
            self.readPaths = readPaths
            self.user = user
            self.fileSizeLimit = fileSizeLimit
        }

        /// The plan of a process that runs plugin code for the user who started it (`eddy eval`).
        public init(readPaths: [String], invoker: Bool) {
            self.readPaths = readPaths
            self.invoker = invoker
        }
    }

    /// What every confined process reads: the system's libraries and the dynamic linker's cache, the
    /// CPU list (thread pools size themselves by it), /proc (Dispatch's thread-pool monitor reads
    /// /proc/TID/stat of its threads, and traps when it cannot; another process's environment, memory
    /// and descriptors stay closed: Landlock refuses a confined process ptrace access to any process
    /// outside its domain), and the files of every object loaded now (the program, libEddy.so and the Swift runtime may live
    /// outside /usr, in a build or toolchain directory), with their directories.
    static func systemPaths() -> [String] {
        var paths = [
            "/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
            "/etc/localtime", "/dev/null", "/dev/urandom", "/sys/devices/system/cpu", "/proc",
        ]
        var buffer = [CChar](repeating: 0, count: 1 << 16)
        if eddy_loaded_objects(&buffer, buffer.count) == 0 {
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            for object in text.split(separator: "\n") {
                if let slash = object.lastIndex(of: "/"), slash > object.startIndex {
                    paths.append(String(object[..<slash]))
                }
            }
        }
        if let directory = OwnExecutable.directory, directory != "/" { paths.append(directory) }
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }

    /// Confines this process for good (see the type's summary). Call it with only the calling thread
    /// running: Landlock holds for the thread that sets it up and those it starts afterwards, not for
    /// threads already running (the result then says so). Nothing here throws: what could not be set
    /// up is listed in the result's ``missing``.
    public static func apply(_ plan: Plan) -> Confinement {
        var missing: [String] = []
        let abi = landlockABI
        let seccomp = seccompAvailable
        var problem = [CChar](repeating: 0, count: 1024)
        // The rules first, while this process can still open every path with its own rights (the
        // private copies may lie in a directory only the server's user can search).
        let ruleset =
            abi > 0
            ? eddy_landlock_ruleset(
                (systemPaths() + plan.readPaths.filter(Self.takesRule)).joined(separator: "\n"), &problem, 1024) : -1
        missing += problems(problem)
        // Then the user: the limits below count the new user's processes.
        if geteuid() == 0 && !plan.invoker {
            if let user = plan.user, user.uid != 0 {
                if let problem = drop(to: user) { missing.append(problem) }
            } else {
                missing.append("unprivileged user: plugin code runs as root (--worker-user)")
            }
        }
        missing += limitResources(fileSize: plan.fileSizeLimit)
        let threads = eddy_thread_count()
        let applied = eddy_confine(ruleset, seccomp ? 1 : 0, &problem, problem.count)
        missing += kernelGaps(abi: abi, seccomp: seccomp)
        missing += problems(problem)
        if applied & Int32(EDDY_CONFINED_LANDLOCK_FS) != 0 && threads > 1 {
            missing.append("landlock on \(threads - 1) thread(s) started before confinement")
        }
        let landlocked = applied & Int32(EDDY_CONFINED_LANDLOCK_FS) != 0
        let filtered = applied & Int32(EDDY_CONFINED_SECCOMP) != 0
        if abi > 0 && !landlocked && !missing.contains(where: { $0.hasPrefix("landlock") }) {
            missing.append("landlock: not applied")
        }
        if seccomp && !filtered && !missing.contains(where: { $0.hasPrefix("seccomp") }) {
            missing.append("seccomp: not applied")
        }
        return Confinement(missing: missing, anyApplied: landlocked || filtered)
    }

    /// Keeps what the process that starts confined children (a supervisor) holds from them: Landlock
    /// refuses them ptrace attach (memory) but on this kernel not ptrace read, which opens
    /// `/proc/PID/environ` and `maps` of any process of the same user; a process that is not dumpable
    /// has those owned by root. Nil, or what failed.
    public static func keepSupervisorPrivate() -> String? {
        eddy_make_undumpable() == 0 ? nil : "cannot make the server undumpable: \(errnoText())"
    }

    /// Whether a path to read gets a Landlock rule: a pipe, socket or device (`/dev/stdin`, `<(…)`)
    /// takes none — Landlock's rules are for files and directories, and such an input is read through
    /// what it already is — so it is not reported as a rule that could not be added.
    static func takesRule(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return true }
        let type = st.st_mode & S_IFMT
        return type == S_IFREG || type == S_IFDIR
    }

    /// The '; '-separated phrases a C call left in `buffer`.
    static func problems(_ buffer: [CChar]) -> [String] {
        // Bytes, not String algorithms: their generic machinery costs more to set up on first use (once
        // per process, on every `eddy eval` with plugins) than the few phrases it would split.
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let space = UInt8(ascii: " ")
        return bytes.split(separator: UInt8(ascii: ";")).map { phrase in
            var part = phrase[...]
            while part.first == space { part = part.dropFirst() }
            while part.last == space { part = part.dropLast() }
            return String(decoding: part, as: UTF8.self)
        }
    }

    /// Becomes `user` for good (supplementary groups, group, user); nil, or what failed.
    static func drop(to user: WorkerUser) -> String? {
        var groups = [user.gid]
        guard setgroups(1, &groups) == 0, setgid(user.gid) == 0, setuid(user.uid) == 0 else {
            return "unprivileged user: cannot become uid \(user.uid): \(errnoText())"
        }
        guard getuid() == user.uid, geteuid() == user.uid, setuid(0) != 0 else {
            return "unprivileged user: uid \(user.uid) could become root again"
        }
        return nil
    }

    /// No core files; a bounded number of processes and descriptors; a file-size limit when asked.
    /// Hard limits equal the soft ones, so they cannot be raised again (nor can the seccomp filter
    /// let a change through).
    static func limitResources(fileSize: Int?) -> [String] {
        var failed: [String] = []
        func limit(_ resource: __rlimit_resource_t, _ name: String, _ value: (rlimit) -> rlim_t) {
            var current = rlimit()
            guard getrlimit(resource, &current) == 0 else {
                failed.append("\(name): \(errnoText())")
                return
            }
            let wanted = value(current)
            var next = rlimit(rlim_cur: wanted, rlim_max: wanted)
            if setrlimit(resource, &next) != 0 { failed.append("\(name): \(errnoText())") }
        }
        limit(__rlimit_resource_t(RLIMIT_CORE.rawValue), "RLIMIT_CORE") { _ in 0 }
        // Threads count as processes: Dispatch's pool and the plugins' own threads fit well below this.
        limit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), "RLIMIT_NPROC") { min($0.rlim_max, 8192) }
        limit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), "RLIMIT_NOFILE") { min($0.rlim_cur, 4096) }
        if let fileSize {
            signal(SIGXFSZ, SIG_IGN)
            limit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), "RLIMIT_FSIZE") { min($0.rlim_max, rlim_t(fileSize)) }
        }
        return failed.map { "resource limit \($0)" }
    }
}

extension PluginHost {
    /// Loads a private copy named by its path in this host's copy directory (what a supervisor names to
    /// its workers) through the directory's descriptor, opened when the host was made: no directory
    /// above it is searched, so a worker that became `--worker-user` since still reaches it (the
    /// directory then lets others search it, see ``allowOtherUsersToSearchCopies()``). Any other path
    /// loads as ``load(_:)`` does.
    @_spi(Host) public func loadPrivateCopy(_ path: String) -> PluginReportRow {
        guard Self.directoryName(path) == copies.path else { return load(path) }
        let fd: Int32
        do {
            fd = try copies.openCopy(.init(name: Self.baseName(path), displayPath: path, loadPath: ""))
        } catch {
            return row(path, .rejected, error.description)
        }
        defer { close(fd) }
        return load(descriptor: fd, path: path)
    }

    /// Lets the worker user search the private copy directory (mode 0711): a server running as root
    /// calls it before its workers and probes become `--worker-user`. Nil, or what failed.
    @_spi(Host) public func allowOtherUsersToSearchCopies() -> String? { copies.allowSearch() }
}
