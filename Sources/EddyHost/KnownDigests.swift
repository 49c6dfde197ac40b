#if canImport(Glibc)
    import Glibc
#endif

/// A file's identity as the kernel keeps it: device, inode, size, and the times of its last change
/// of contents and of status. Most changes move the status-change time forward (which no one but root,
/// by setting the clock, can move back), and a rename in its place brings another inode; but a write
/// through a shared mapping may leave both times as they were (on tmpfs always, elsewhere until
/// writeback). So an identity is a hint, never proof: a plugin file's remembered digest is used only
/// when the private copy named by it holds exactly the file's bytes (`PluginHost.contentHash`), and a
/// private copy's only in this user's 0700 copy directory, which confined plugin code cannot open for
/// writing (code running unconfined as this user can change anything there, verdicts included).
///
/// The kernel keeps those times at a clock tick's grain, so a write in the same tick as a hash could
/// leave them as they were: a digest is remembered only for a file whose status last changed some
/// seconds before it was hashed (``KnownDigests/settledSeconds``), as git treats "racily clean" files.
struct FileIdentity: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modified: (seconds: Int64, nanoseconds: Int64)
    var changed: (seconds: Int64, nanoseconds: Int64)

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        modified = (Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec))
        changed = (Int64(st.st_ctim.tv_sec), Int64(st.st_ctim.tv_nsec))
    }

    /// The identity of the file open on `fd`; nil when `fstat` fails or it is not a regular file.
    init?(descriptor fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        self.init(st)
    }

    static func == (a: FileIdentity, b: FileIdentity) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size && a.modified == b.modified
            && a.changed == b.changed
    }

    /// The identity as a record key (decimal fields joined by `:`).
    var key: String {
        "\(device):\(inode):\(size):\(modified.seconds).\(modified.nanoseconds):\(changed.seconds).\(changed.nanoseconds)"
    }
}

/// The SHA-256 digests of plugin files and private copies hashed before, by ``FileIdentity``: a
/// one-shot `eddy eval` with unchanged plugins confirms their hashes by comparing each file with its
/// private copy instead of reading them through SHA-256, and so never maps the hashing library
/// (`libEddyCrypto.so` and the Foundation it needs cost about half of loading two small plugins). Kept
/// beside the private copies, as the probe verdicts are (`digests.tsv`, 0600).
enum KnownDigests {
    static let file = "digests.tsv"
    /// Past this size the file is started afresh (a line is about 110 bytes).
    static let limit = 1 << 19
    /// How long before its hash a file's status must have last changed for the digest to be kept.
    static let settledSeconds: Int64 = 2
}

extension PrivateCopies {
    /// The digest remembered for a file with this identity, or nil.
    func knownDigest(_ identity: FileIdentity) -> String? {
        let prefix = identity.key + "\t"
        // Read as bytes (a split into Characters cost more than the rest of the lookup).
        for line in recordLines(KnownDigests.file, startingWith: prefix, limit: KnownDigests.limit).reversed() {
            let hash = line.utf8.dropFirst(prefix.utf8.count)
            guard hash.count == 64, hash.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
                continue
            }
            return String(decoding: hash, as: UTF8.self)
        }
        return nil
    }

    /// Remembers `hash` for a file whose identity was `identity` both before and after its bytes were
    /// hashed (the caller checks), unless its status changed too recently to tell a later write apart.
    func rememberDigest(_ hash: String, of identity: FileIdentity) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        guard identity.changed.seconds <= Int64(now.tv_sec) - KnownDigests.settledSeconds,
            knownDigest(identity) != hash
        else { return }
        appendRecord(KnownDigests.file, identity.key + "\t" + hash, limit: KnownDigests.limit)
    }

    /// The SHA-256 of a file's bytes: remembered for `identity`, or computed by `compute` and remembered.
    /// `identity` (nil: nothing is remembered) must be the file's both before and after the bytes that
    /// `compute` hashes were read.
    func digest<E: Error>(identity: FileIdentity?, compute: () throws(E) -> String) throws(E) -> String {
        if let identity, let known = knownDigest(identity) { return known }
        let hash = try compute()
        if let identity { rememberDigest(hash, of: identity) }
        return hash
    }
}
