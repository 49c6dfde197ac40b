import CEddyHost
import EddyIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The per-user directory of private plugin copies that the host `dlopen`s.
///
/// Another local user must not be able to plant code there: the directory is created 0700 and then
/// verified through a descriptor opened without following links (a directory, owned by the effective
/// uid, no access for group or others), or refused with the reason. Every file is created with
/// `O_CREAT | O_EXCL | O_NOFOLLOW` under a random temporary name, written, fsynced and renamed into
/// place, then read back and hashed again; an existing copy is used only after its bytes are verified
/// (compared with the checked file, or hashed, or found unchanged by its identity: ``KnownDigests``).
final class PrivateCopies: Sendable {
    let path: String
    /// The user the directory and its files belong to: this process's when it opened them (a worker
    /// that became another user since still checks for the supervisor's).
    let owner: uid_t
    /// The verified directory, or why it cannot be used.
    private let directory: Result<Int32, Refusal>
    private let counter = Atomic<Int>(0)
    /// Record files read by this instance, by name, with the identity and times they had: a one-shot's
    /// checks ask the digest and verdict records once per plugin file, and a record unchanged since
    /// (the same ``FileIdentity``, as `fstat` on the opened file says) is not read again.
    private let readRecords = Mutex(UncheckedBox([String: (identity: FileIdentity, bytes: [UInt8])]()))

    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    /// `explicit` (or `$EDDY_SHADOW_DIR`), else `$XDG_RUNTIME_DIR/eddy-plugins`, else
    /// `$TMPDIR/eddy-plugins-<euid>` (`/tmp` when `TMPDIR` is unset).
    static func defaultPath(explicit: String?) -> String {
        if let explicit { return explicit }
        if let env = getenv("EDDY_SHADOW_DIR").map({ String(cString: $0) }), !env.isEmpty { return env }
        if let run = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), run.hasPrefix("/") {
            return run + "/eddy-plugins"
        }
        let tmp = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        return "\(tmp)/eddy-plugins-\(geteuid())"
    }

    init(path: String) {
        self.path = path
        self.owner = geteuid()
        directory = Self.openVerified(path)
    }

    deinit {
        if case .success(let fd) = directory { close(fd) }
    }

    private static func openVerified(_ path: String) -> Result<Int32, Refusal> {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            return .failure(
                Refusal(description: "cannot create private copy directory \(PluginHost.escaped(path)): \(errnoText())")
            )
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let why = errno == ELOOP || errno == ENOTDIR ? "it is a symbolic link or not a directory" : errnoText()
            return .failure(Refusal(description: "private copy directory \(PluginHost.escaped(path)) refused: \(why)"))
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            return .failure(Refusal(description: "private copy directory \(PluginHost.escaped(path)): \(errnoText())"))
        }
        let mode = st.st_mode & 0o7777
        var problem: String?
        if st.st_uid != geteuid() {
            problem = "owned by uid \(st.st_uid), expected this user (uid \(geteuid()))"
        } else if mode & 0o066 != 0 {
            // Search (x) alone is allowed: a root server's workers run as another user and open copies
            // by name (see ``allowSearch()``); nobody else can list, add, rename or remove one.
            problem =
                "mode 0\(String(mode, radix: 8)), expected 0700 or 0711 (no reading or writing for group or others)"
        }
        if let problem {
            close(fd)
            return .failure(
                Refusal(
                    description: "private copy directory \(PluginHost.escaped(path)) refused: \(problem); "
                        + "another user could plant code there. Remove it or set EDDY_SHADOW_DIR"))
        }
        return .success(fd)
    }

    /// A stored copy: its name in the directory, the path to show, and the path to load it by,
    /// which goes through the verified directory descriptor (`/proc/self/fd/N/name`), so that
    /// swapping the directory's path for another after the checks changes nothing.
    struct Copy {
        var name: String
        var displayPath: String
        var loadPath: String
        /// A descriptor of the copy holding a shared lock on it (-1: none could be taken): while some
        /// process holds one, no host collects the copy (see ``collect(keeping:)``).
        var hold: Int32 = -1
    }

    private func verifiedDirectory() throws(Refusal) -> Int32 {
        switch directory {
        case .success(let fd): return fd
        case .failure(let refusal): throw refusal
        }
    }

    /// Opens a stored copy for reading (to hand to a probe process), without following links.
    func openCopy(_ copy: Copy) throws(Refusal) -> Int32 {
        let fd = openat(try verifiedDirectory(), copy.name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw Refusal(description: "cannot read private copy \(copy.name): \(errnoText())") }
        return fd
    }

    /// A copy stored here earlier (by this process's checks, a moment ago), held from now on, its bytes
    /// hashed again through the descriptor that holds it and required to be `hash`; it loads through that
    /// descriptor (`/proc/self/fd/N`), so what was hashed is the file mapped, whatever the directory
    /// entry names by then. Between the check and now a probe ran plugin code: where confinement is
    /// partial it could have replaced the copy (see ``PluginHost/load(checked:)``).
    func held(name: String, hash: String) throws(Refusal) -> Copy {
        let dirfd = try verifiedDirectory()
        let full = path + "/" + name
        let fd = Self.hold(dirfd, name)
        guard fd >= 0 else {
            throw Refusal(description: "private copy \(PluginHost.escaped(full)) is gone: \(errnoText())")
        }
        let now: String
        do {
            // Found by the copy's identity when an earlier host hashed it (``KnownDigests``): a copy
            // replaced or written to since has another.
            let identity = FileIdentity(descriptor: fd)
            now = try digest(identity: identity) { () throws(Refusal) -> String in
                let hash = try self.hash(of: fd, name: name)
                guard FileIdentity(descriptor: fd) == identity else {
                    throw Refusal(description: "private copy \(PluginHost.escaped(full)) changed while it was hashed")
                }
                return hash
            }
        } catch {
            close(fd)
            throw error
        }
        guard now == hash else {
            close(fd)
            throw Refusal(
                description: "private copy \(PluginHost.escaped(full)) changed after it was checked "
                    + "(hash \(now.prefix(16)), checked \(hash.prefix(16))); it is not loaded")
        }
        var copy = Copy(name: name, displayPath: full, loadPath: "/proc/self/fd/\(fd)")
        copy.hold = fd
        return copy
    }

    /// Whether the copy `name` exists and holds exactly `bytes`.
    func holds(name: String, _ bytes: [UInt8]) -> Bool {
        guard case .success(let dirfd) = directory else { return false }
        return fileHolds(dirfd, name, bytes) != nil
    }

    /// Stores `bytes` (whose SHA-256 is `hash`) as `name`.
    func store(_ bytes: [UInt8], name: String, hash: String) throws(Refusal) -> Copy {
        let dirfd = try verifiedDirectory()
        let full = path + "/" + name
        var stored = Copy(name: name, displayPath: full, loadPath: "/proc/self/fd/\(dirfd)/\(name)")
        // An existing copy is used once held (so that no collection removes it from now on), still
        // under its name, with the right bytes.
        let held = Self.hold(dirfd, name)
        if held >= 0 {
            // Compared byte for byte with what was read and hashed: as strong as hashing the copy
            // again, and a fraction of its cost on every start of a one-shot `eddy eval`.
            if let identity = fileHolds(dirfd, name, bytes) {
                // Its digest is `hash` then: kept for the host that maps it through the descriptor
                // that holds it (``held(name:hash:)``, after confinement, when nothing can be written).
                if FileIdentity(descriptor: held) == identity { rememberDigest(hash, of: identity) }
                // A copy written 0600 by an older host: readable by a worker of another user now.
                var st = stat()
                if fstat(held, &st) == 0, st.st_mode & 0o044 != 0o044, st.st_uid == geteuid() {
                    fchmod(held, 0o644)
                }
                stored.hold = held
                return stored
            }
            close(held)
        }
        let random = UInt64.random(in: 0...UInt64.max)
        let tmp = ".tmp-\(getpid())-\(counter.add(1, ordering: .relaxed).newValue)-\(String(random, radix: 16))"
        // Readable by all: only who can search the directory reaches it (its owner; a root server's
        // workers, once it allows them), and a worker running as another user must read it.
        let fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw Refusal(description: "cannot write private copy \(PluginHost.escaped(full)): \(errnoText())")
        }
        var ok = PluginFileIO.writeFully(fd, bytes)
        let error = errnoText()
        if ok && fsync(fd) != 0 { ok = false }
        close(fd)
        // Held before it is renamed into place: a collection in another process never sees it unheld.
        // Hashed through that descriptor before it takes its name: a copy named by a hash always had
        // that hash (a host trusts a copy's name when its bytes equal a plugin file's, see
        // `PluginHost.contentHash`).
        let heldNew = ok ? Self.hold(dirfd, tmp) : -1
        func discard() {
            if heldNew >= 0 { close(heldNew) }
            unlinkat(dirfd, tmp, 0)
        }
        guard ok, heldNew >= 0 else {
            discard()
            throw Refusal(
                description: "cannot write private copy \(PluginHost.escaped(full)): \(ok ? errnoText() : error)")
        }
        let written: String
        do {
            written = try self.hash(of: heldNew, name: tmp)
        } catch {
            discard()
            throw error
        }
        guard written == hash else {
            discard()
            throw Refusal(
                description: "private copy \(PluginHost.escaped(full)) changed while it was written "
                    + "(hash \(written.prefix(16)), expected \(hash.prefix(16))); it is not used")
        }
        guard renameat(dirfd, tmp, dirfd, name) == 0 else {
            let why = errnoText()
            discard()
            throw Refusal(description: "cannot write private copy \(PluginHost.escaped(full)): \(why)")
        }
        stored.hold = heldNew
        return stored
    }

    // MARK: - Collection

    /// Opens `name` and takes a shared lock on it, then checks that the name still leads to the file
    /// locked (a collection may have removed it meanwhile). The descriptor, or -1.
    static func hold(_ dirfd: Int32, _ name: String) -> Int32 {
        let fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return -1 }
        var held = stat()
        var named = stat()
        while flock(fd, LOCK_SH) != 0 && errno == EINTR {}
        guard fstat(fd, &held) == 0, fstatat(dirfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0,
            held.st_ino == named.st_ino, held.st_dev == named.st_dev
        else {
            close(fd)
            return -1
        }
        return fd
    }

    /// Removes the stored copies (`*.so`) that no process holds (see ``Copy/hold``) and that are not
    /// in `keep`, and temporary files left by a writer that died more than an hour ago; the quarantine
    /// and probe-verdict records stay. A copy a process has mapped stays mapped (on Linux removing a
    /// file does not unmap it); one a process is about to use is held first. Returns how many went.
    @discardableResult
    func collect(keeping keep: Set<String>) -> Int {
        guard case .success(let dirfd) = directory else { return 0 }
        let dupfd = dup(dirfd)
        guard dupfd >= 0, let dir = fdopendir(dupfd) else {
            if dupfd >= 0 { close(dupfd) }
            return 0
        }
        defer { closedir(dir) }
        // The duplicate shares the directory's read position with the descriptor kept: from the start.
        rewinddir(dir)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var removed = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix(".tmp-") {
                var st = stat()
                if fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFREG,
                    st.st_uid == owner, now.tv_sec - st.st_mtim.tv_sec > 3600
                {
                    if unlinkat(dirfd, name, 0) == 0 { removed += 1 }
                }
                continue
            }
            guard name.hasSuffix(".so"), !keep.contains(name) else { continue }
            let fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var held = stat()
            var named = stat()
            // Only a regular file of this user that nobody holds, and still the one under that name.
            guard fstat(fd, &held) == 0, (held.st_mode & S_IFMT) == S_IFREG, held.st_uid == owner,
                flock(fd, LOCK_EX | LOCK_NB) == 0,
                fstatat(dirfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0, held.st_ino == named.st_ino
            else { continue }
            if unlinkat(dirfd, name, 0) == 0 { removed += 1 }
        }
        return removed
    }

    /// Lets other users search the directory (mode 0711), not list or change it: a server running as
    /// root does so for its workers and probes, which run as `--worker-user` and open copies by name.
    /// The records stay 0600. Nil, or what failed.
    func allowSearch() -> String? {
        guard case .success(let dirfd) = directory else { return nil }
        return fchmod(dirfd, 0o711) == 0 ? nil : "private copy directory \(PluginHost.escaped(path)): \(errnoText())"
    }

    static let quarantineFile = "quarantine.tsv"

    /// Lines of the quarantine file (empty when there is none or the directory is refused).
    func quarantineRecords() -> [String] { recordLines(Self.quarantineFile, limit: 1 << 22) }

    /// Appends one line to the quarantine file (created 0600, never through a link).
    func appendQuarantineRecord(_ line: String) { appendRecord(Self.quarantineFile, line) }

    static let probeVerdictFile = "probed.tsv"
    /// Past this size the verdict file is started afresh (each line is about 200 bytes).
    static let probeVerdictLimit = 1 << 20

    /// Lines of a record file of this user in the directory (none when it is missing, not a regular
    /// file of this user, larger than `limit`, or the directory is refused).
    private func recordLines(_ file: String, limit: Int) -> [String] {
        recordBytes(file, limit: limit).split(separator: UInt8(ascii: "\n")).map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    /// The bytes of a record file, as ``recordLines(_:limit:)`` reads it (empty when refused).
    private func recordBytes(_ file: String, limit: Int) -> [UInt8] {
        guard case .success(let dirfd) = directory else { return [] }
        let fd = openat(dirfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == owner, st.st_size <= limit
        else {
            return []
        }
        let identity = FileIdentity(st)
        if let kept = readRecords.withLock({ $0.value[file] }), kept.identity == identity { return kept.bytes }
        let bytes = PluginFileIO.read(fd, count: Int(st.st_size), at: 0) ?? []
        readRecords.withLock { $0.value[file] = (identity, bytes) }
        return bytes
    }

    /// The lines of a record file that start with `key`, in the file's order. Lines are compared as bytes
    /// (memchr/memcmp) and only those that match become text: every one-shot `eddy eval` with plugins
    /// looks its plugins up here, and most lines are other builds' (a generic split of the file cost
    /// about 0.3 ms per plugin with a few hundred lines in it).
    func recordLines(_ file: String, startingWith key: String, limit: Int) -> [String] {
        let key = Array(key.utf8)
        let bytes = recordBytes(file, limit: limit)
        return bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return [] }
            var found: [String] = []
            var start = 0
            while start < buffer.count {
                let rest = buffer.count - start
                let end =
                    memchr(base + start, Int32(UInt8(ascii: "\n")), rest).map {
                        start + UnsafeRawPointer(base + start).distance(to: UnsafeRawPointer($0))
                    } ?? buffer.count
                if end - start >= key.count, memcmp(base + start, key, key.count) == 0 {
                    found.append(String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<end]), as: UTF8.self))
                }
                start = end + 1
            }
            return found
        }
    }

    /// Appends one line to a record file, started afresh when the line would take it past `limit`.
    func appendRecord(_ file: String, _ line: String, limit: Int) {
        var st = stat()
        let full: Bool = {
            guard case .success(let dirfd) = directory else { return false }
            return fstatat(dirfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0 && Int(st.st_size) + line.utf8.count + 1 > limit
        }()
        appendRecord(file, line, truncating: full)
    }

    /// Appends one line to a record file (created 0600, never through a link); `truncating` starts it afresh.
    private func appendRecord(_ file: String, _ line: String, truncating: Bool = false) {
        guard case .success(let dirfd) = directory else { return }
        // Non-blocking: a FIFO in its place must not wait for a reader; only a regular file of this
        // user is written (truncated only once that is known).
        let flags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
        let fd = openat(dirfd, file, flags, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == owner else { return }
        if truncating && ftruncate(fd, 0) != 0 { return }
        _ = PluginFileIO.writeFully(fd, Array((line + "\n").utf8))
    }

    /// What an earlier probe of these bytes (`hash`) reported under the same host build and probe
    /// command (`host`): the plugin's kernel count, name and version (escaped for display, as the
    /// probe reports them); nil when none passed.
    func probeVerdict(hash: String, host: String) -> (
        kernels: Int, name: String, version: String, verified: VerifiedInputs?, uses: PluginUses?
    )? {
        for line in recordLines(
            Self.probeVerdictFile, startingWith: hash + "\t" + host + "\t", limit: Self.probeVerdictLimit
        ).reversed() {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard (5...7).contains(f.count), f[0] == hash, f[1] == host, let kernels = Int(f[2]), kernels >= 0
            else { continue }
            // A sixth field: how many inputs the probe verified it on (`--verify`; "-" when it did not);
            // a seventh: what the build registered (``PluginUses``; "-" when the probe did not say).
            let verified = f.count >= 6 ? VerifiedInputs(field: f[5]) : nil
            let uses = f.count == 7 ? PluginUses(field: f[6]) : nil
            return (kernels, String(f[3]), String(f[4]), verified, uses)
        }
        return nil
    }

    static let probeRefusalFile = "refused.tsv"
    /// How long a probe's refusal of a build stands for one-shot hosts: a crash in registration is the
    /// same next time, but a probe that timed out on a loaded machine may pass later.
    static let probeRefusalLifetime: Double = 600

    /// A refusal on record: why, the plugin and version it named (escaped) and when (seconds since
    /// the epoch).
    typealias Refused = (reason: String, plugin: String, version: String, at: Double)

    /// What earlier probes of these bytes (`hash`) refused, read in one pass: a wrong answer found by
    /// verification (kept under ``wrongAnswerKey``, for good), and the latest refusal under `host`
    /// within ``probeRefusalLifetime`` of `now` unless a probe passed since (under any key: `eddy plugins`
    /// is another program). A record is only ever a reason to refuse: a forged one cannot make a build load.
    func probeRefusals(hash: String, host: String?, now: Double) -> (wrongAnswer: Refused?, recent: Refused?) {
        var wrong: Refused?
        var recent: Refused?
        var cleared = false
        for line in recordLines(Self.probeRefusalFile, startingWith: hash + "\t", limit: Self.probeVerdictLimit)
            .reversed()
        {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count == 6, f[0] == hash else { continue }
            if f[1] == Self.passedMark {
                cleared = true
                continue
            }
            guard let at = Double(f[2]), at.isFinite else { continue }
            let refused = (String(f[5]), String(f[3]), String(f[4]), at)
            if f[1] == Self.wrongAnswerKey {
                if wrong == nil { wrong = refused }
            } else if !cleared, recent == nil, let host, f[1] == host, at <= now + 1,
                now - at < Self.probeRefusalLifetime
            {
                recent = refused
            }
        }
        return (wrong, recent)
    }

    /// The host field of a line saying the bytes passed a probe after the refusals above it.
    static let passedMark = "*"

    /// Notes that `hash` passed a probe, when a refusal of it is on record (see
    /// ``probeRefusals(hash:host:now:)``).
    func clearProbeRefusals(hash: String, at: Double) {
        guard !recordLines(Self.probeRefusalFile, startingWith: hash + "\t", limit: Self.probeVerdictLimit).isEmpty
        else { return }
        appendRecord(
            Self.probeRefusalFile,
            [hash, Self.passedMark, String(Int(at)), "-", "-", "passed"].joined(separator: "\t"),
            limit: Self.probeVerdictLimit)
    }

    /// The key a wrong answer is kept under: not a host build or probe command (a build that disagreed
    /// with decode-then-compute at `eddy plugins --verify full` must not serve `eddy eval` at quick),
    /// and with no lifetime (waiting does not fix it; new bytes are probed afresh).
    static let wrongAnswerKey = "wrong-answer"

    /// Keeps a probe's refusal of `hash` under `host` (see ``probeRefusals(hash:host:now:)``).
    func recordProbeRefusal(hash: String, host: String, at: Double, plugin: String, version: String, reason: String) {
        let line = [
            hash, host, String(Int(at)), PluginHost.escaped(plugin), PluginHost.escaped(version),
            PluginHost.escaped(reason),
        ].joined(separator: "\t")
        appendRecord(Self.probeRefusalFile, line, limit: Self.probeVerdictLimit)
    }

    /// Keeps a passed probe's report for `hash` under `host` (see ``probeVerdict(hash:host:)``).
    func recordProbeVerdict(
        hash: String, host: String, kernels: Int, name: String, version: String, verified: VerifiedInputs?,
        uses: PluginUses?
    ) {
        let line = [
            hash, host, String(kernels), PluginHost.escaped(name), PluginHost.escaped(version),
            verified?.field ?? "-", uses?.field ?? "-",
        ].joined(separator: "\t")
        appendRecord(Self.probeVerdictFile, line, limit: Self.probeVerdictLimit)
    }

    /// Whether a regular file of this user inside the directory, read without following links, holds
    /// exactly `bytes`: its identity, the same before and after it was read, or nil.
    func fileHolds(_ dirfd: Int32, _ name: String, _ bytes: [UInt8]) -> FileIdentity? {
        let fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == owner, Int(st.st_size) == bytes.count
        else { return nil }
        let same = bytes.withUnsafeBytes { expected -> Bool in
            withUnsafeTemporaryAllocation(byteCount: 1 << 16, alignment: 16) { chunk -> Bool in
                guard let base = chunk.baseAddress else { return false }
                var done = 0
                while true {
                    let n = read(fd, base, chunk.count)
                    if n < 0 && errno == EINTR { continue }
                    guard n >= 0 else { return false }
                    if n == 0 { return done == expected.count }
                    guard n <= expected.count - done, let want = expected.baseAddress,
                        memcmp(base, want + done, n) == 0
                    else { return false }
                    done += n
                }
            }
        }
        let identity = FileIdentity(st)
        return same && FileIdentity(descriptor: fd) == identity ? identity : nil
    }

    /// The SHA-256 of the file open on `fd` (read from its start with `pread`), which must be a regular
    /// file of this user.
    func hash(of fd: Int32, name: String) throws(Refusal) -> String {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == owner else {
            throw Refusal(description: "private copy \(name) is not a regular file of this user")
        }
        let hasher: HostCrypto.SHA256Stream
        do {
            hasher = try HostCrypto.SHA256Stream()
        } catch {
            throw Refusal(description: "cannot hash private copy \(name): \(error)")
        }
        // A 64 KiB buffer, not zeroed: a fresh zeroed MiB per call (two per plugin and start) was about a
        // twentieth of a one-shot `eddy eval` with two small plugins.
        let failed = withUnsafeTemporaryAllocation(byteCount: 1 << 16, alignment: 16) { chunk -> Bool in
            guard let base = chunk.baseAddress else { return true }
            var offset = 0
            while true {
                let n = pread(fd, base, chunk.count, off_t(offset))
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { return true }
                if n == 0 { return false }
                hasher.update(UnsafeRawBufferPointer(start: base, count: n))
                offset += n
            }
        }
        guard !failed else { throw Refusal(description: "cannot read private copy \(name): \(errnoText())") }
        return Self.hex(hasher.finish())
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        // Two table lookups a byte: `String(_:radix:)` per byte cost more than hashing a small plugin.
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(digest.underestimatedCount * 2)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
