import EddyIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The last good build of each plugin: a build that answered ``cleanRequests`` requests without a
/// fault, kept so that when a newer build of the same plugin is quarantined the host serves that
/// build again instead of the built-ins — for an encoding plugin, the files it wrote stay readable.
///
/// Each is recorded beside the quarantine file (`lastgood.tsv` in the private-copy directory: hash,
/// time, plugin, version, copy name; 0600, never through a link), so that a restarted host falls back
/// too, and its private copy is held (a shared lock, see ``PrivateCopies/Copy/hold``) so that no
/// collection removes it. The newest ``keptPerPlugin`` records of each plugin are held.
public final class LastGoodBuilds: Sendable {
    /// One build recorded as good.
    public struct Record: Sendable, Equatable {
        /// SHA-256 of the plugin file (64 hex digits).
        public var hash: String
        public var plugin: String
        public var version: String
        /// The private copy's file name in the copy directory.
        public var copy: String
        /// Seconds since 1970.
        public var time: Double
        /// The plugin file this build served from (absolute, its directory resolved): a quarantined
        /// build falls back only to a good build of the same file, never to one another directory (a
        /// test tree, another deployment, another vendor's plugin of the same name) recorded under this
        /// user. Nil in records written before it was kept: those are never fallen back to.
        public var file: String? = nil
    }

    /// A fallback the host made: the plugin now served by its last good build, and the build that was
    /// quarantined.
    public struct Fallback: Sendable {
        public var plugin: String
        /// The last good build's version and content hash.
        public var version: String
        public var hash: String
        /// The quarantined build's version and why it was quarantined.
        public var quarantinedVersion: String
        public var cause: String
        /// Set when the fallback could not be made (the built-ins serve the plugin's keys): why.
        public var missed: String? = nil
    }

    /// Requests a build answers (a reply, not a crash, hang or protocol violation) before it is good.
    public static let cleanRequests = 3
    /// Records (and held copies) kept per plugin: the newest and the one before it.
    static let keptPerPlugin = 2
    static let file = "lastgood.tsv"
    /// Past this size the file is rewritten with only the records kept.
    static let limit = 1 << 18

    let directory: String
    private struct State {
        /// Shared locks on the copies of the records kept, by copy name.
        var holds: [String: Int32] = [:]
        /// Clean requests counted per content hash, until it is recorded.
        var served: [String: Int] = [:]
        var recorded: Set<String> = []
        /// Whether ``recorded`` holds the record file's hashes yet (read when first asked, unless held).
        var recordedRead = false
        var observer: (@Sendable (Fallback) -> Void)?
        /// Fallbacks made before anyone observed them (a restarted server's first scan).
        var unobserved: [Fallback] = []
    }
    private let state = Mutex(UncheckedBox(State()))

    /// - Parameter holding: read the record and hold the kept copies now (a host that collects copies);
    ///   false defers reading it to the first question and holds nothing (a one-shot command's host).
    init(directory: String, holding: Bool = true) {
        self.directory = directory
        guard holding else { return }
        let records = self.records()
        state.withLock {
            $0.value.recorded = Set(records.map(\.hash))
            $0.value.recordedRead = true
        }
        holdKept(records)
    }

    /// Reads the record's hashes into ``State/recorded`` when that has not been done.
    private func readRecordedIfNeeded() {
        guard !state.withLock({ $0.value.recordedRead }) else { return }
        let hashes = Set(records().map(\.hash))
        state.withLock { s in
            guard !s.value.recordedRead else { return }
            s.value.recorded.formUnion(hashes)
            s.value.recordedRead = true
        }
    }

    deinit {
        state.withLock { s in for fd in s.value.holds.values { close(fd) } }
    }

    /// Calls `observer` for every fallback from now on, and at once for those made before.
    public func observe(_ observer: @escaping @Sendable (Fallback) -> Void) {
        let pending = state.withLock { s -> [Fallback] in
            s.value.observer = observer
            defer { s.value.unobserved = [] }
            return s.value.unobserved
        }
        for f in pending { observer(f) }
    }

    func announce(_ fallback: Fallback) {
        let observer = state.withLock { s -> (@Sendable (Fallback) -> Void)? in
            if s.value.observer == nil, s.value.unobserved.count < 64 { s.value.unobserved.append(fallback) }
            return s.value.observer
        }
        observer?(fallback)
    }

    /// Whether `hash` is recorded already (the per-request check stops here once it is).
    func isRecorded(_ hash: String) -> Bool {
        readRecordedIfNeeded()
        return state.withLock { $0.value.recorded.contains(hash) }
    }

    /// Counts one clean request for `hash`; true when it has just reached ``cleanRequests`` and is not
    /// recorded yet.
    func countClean(_ hash: String) -> Bool {
        readRecordedIfNeeded()
        return state.withLock { s in
            guard !s.value.recorded.contains(hash) else { return false }
            s.value.served[hash, default: 0] += 1
            guard s.value.served[hash, default: 0] >= Self.cleanRequests else { return false }
            s.value.served[hash] = nil
            s.value.recorded.insert(hash)
            return true
        }
    }

    // MARK: - The record file

    /// The verified copy directory (this user's, no reading or writing for others), or -1.
    private func openDirectory() -> Int32 {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return -1 }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_uid == geteuid(), st.st_mode & 0o066 == 0 else {
            close(fd)
            return -1
        }
        return fd
    }

    /// Every well-formed record, oldest first (none when the file is missing, not a regular file of
    /// this user, or larger than ``limit``).
    public func records() -> [Record] {
        let dirfd = openDirectory()
        guard dirfd >= 0 else { return [] }
        defer { close(dirfd) }
        let fd = openat(dirfd, Self.file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == geteuid(), st.st_size <= Self.limit
        else { return [] }
        guard let bytes = PluginFileIO.read(fd, count: Int(st.st_size), at: 0) else { return [] }
        return bytes.split(separator: UInt8(ascii: "\n")).compactMap { Self.parse(String(decoding: $0, as: UTF8.self)) }
    }

    static func isHexDigit(_ b: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
    }

    static func parse(_ line: String) -> Record? {
        // Split as bytes, not Characters (a tab is one byte; grapheme breaking was most of a start's cost
        // of reading this file).
        let f = line.utf8.split(separator: UInt8(ascii: "\t"), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        guard f.count == 5 || f.count == 6, f[0].utf8.count == 64, f[0].utf8.allSatisfy(Self.isHexDigit),
            let t = Double(f[1]),
            !f[2].isEmpty, isCopyName(f[4])
        else { return nil }
        return Record(
            hash: f[0], plugin: f[2], version: f[3], copy: f[4], time: t, file: f.count == 6 ? f[5] : nil)
    }

    /// A private copy's name as the host makes them (see `PluginHost.copyName`): no path, no hidden file.
    static func isCopyName(_ name: String) -> Bool {
        // ASCII letters, digits and `._-`, checked as bytes (a Unicode property lookup per character
        // was a measurable part of a one-shot's start).
        name.hasSuffix(".so") && !name.hasPrefix(".") && name.utf8.count <= 128
            && name.utf8.allSatisfy { b in
                (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                    || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: ".")
                    || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
            }
    }

    static func line(_ r: Record) -> String {
        ([r.hash, String(Int(r.time)), PluginHost.escaped(r.plugin), PluginHost.escaped(r.version), r.copy]
            + (r.file.map { [PluginHost.escaped($0)] } ?? []))
            .joined(separator: "\t")
    }

    /// Appends `record` (rewriting the file with only the kept records when it is full) and holds the
    /// copies of the records kept.
    func append(_ record: Record) {
        let dirfd = openDirectory()
        guard dirfd >= 0 else { return }
        defer { close(dirfd) }
        var all = records() + [record]
        var st = stat()
        let full =
            fstatat(dirfd, Self.file, &st, AT_SYMLINK_NOFOLLOW) == 0
            && Int(st.st_size) + Self.line(record).utf8.count + 1 > Self.limit
        if full {
            all = Self.kept(all)
            // A new file renamed into place: a reader never sees it half written.
            let tmp = ".tmp-lastgood-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return }
            let text = Array(all.map { Self.line($0) + "\n" }.joined().utf8)
            let ok = PluginFileIO.writeFully(fd, text) && fsync(fd) == 0
            close(fd)
            if !ok || renameat(dirfd, tmp, dirfd, Self.file) != 0 { unlinkat(dirfd, tmp, 0) }
        } else {
            let flags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
            let fd = openat(dirfd, Self.file, flags, 0o600)
            guard fd >= 0 else { return }
            var st = stat()
            if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == geteuid() {
                _ = PluginFileIO.writeFully(fd, Array((Self.line(record) + "\n").utf8))
            }
            close(fd)
        }
        holdKept(all)
    }

    /// The newest ``keptPerPlugin`` records of each plugin, oldest first.
    static func kept(_ records: [Record]) -> [Record] {
        var count: [String: Int] = [:]
        var out: [Record] = []
        for r in records.reversed() {
            count[r.plugin, default: 0] += 1
            if count[r.plugin, default: 0] <= keptPerPlugin { out.append(r) }
        }
        return out.reversed()
    }

    /// Holds the copies of the kept records (and lets go of the others).
    private func holdKept(_ records: [Record]) {
        let wanted = Set(Self.kept(records).map(\.copy))
        let dirfd = openDirectory()
        guard dirfd >= 0 else { return }
        defer { close(dirfd) }
        let have = state.withLock { Set($0.value.holds.keys) }
        var taken: [String: Int32] = [:]
        for name in wanted.subtracting(have) {
            let fd = PrivateCopies.hold(dirfd, name)
            if fd >= 0 { taken[name] = fd }
        }
        let dropped = state.withLock { s -> [Int32] in
            for (name, fd) in taken { s.value.holds[name] = fd }
            var out: [Int32] = []
            for (name, fd) in s.value.holds where !wanted.contains(name) {
                out.append(fd)
                s.value.holds[name] = nil
            }
            return out
        }
        for fd in dropped { close(fd) }
    }

    /// Opens a recorded copy for reading, without following links: a regular file of this user, or -1.
    func openCopy(_ record: Record) -> Int32 {
        let dirfd = openDirectory()
        guard dirfd >= 0 else { return -1 }
        defer { close(dirfd) }
        let fd = openat(dirfd, record.copy, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return -1 }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == geteuid() else {
            close(fd)
            return -1
        }
        return fd
    }
}
