import EddyIO

#if canImport(Glibc)
    import Glibc
#endif

/// What the host enforces about plugin files and the directory they are dropped into.
public struct PluginLoadPolicy: Sendable {
    /// Files larger than this are refused before their bytes are read.
    public var maxFileBytes: Int
    /// Load from a directory (or files) that group or others can write, or that another non-root
    /// user owns, with a warning instead of a refusal.
    public var allowInsecureDirectory: Bool
    /// Seconds that registration inside the host may take before the plugin is refused.
    public var registrationTimeout: Double
    /// Keys whose signatures are trusted (see ``PluginSignature``).
    public var trustedKeys: [PluginSignature.TrustedKey]
    /// Load only plugins signed by a trusted key.
    public var requireSigned: Bool

    public init(
        maxFileBytes: Int = 256 << 20, allowInsecureDirectory: Bool = false, registrationTimeout: Double = 10,
        trustedKeys: [PluginSignature.TrustedKey] = [], requireSigned: Bool = false
    ) {
        self.maxFileBytes = maxFileBytes
        self.allowInsecureDirectory = allowInsecureDirectory
        self.registrationTimeout = registrationTimeout
        self.trustedKeys = trustedKeys
        self.requireSigned = requireSigned
    }
}

/// A plugin file read through one descriptor: the bytes that were checked are the bytes that are
/// hashed, copied and loaded, whatever happens to the path afterwards.
struct PluginFile {
    var bytes: [UInt8]
    /// Where a symbolic link in the plugin directory pointed (empty for a plain file).
    var linkTarget = ""
    /// Set when a trust check failed but `allowInsecureDirectory` let the file through.
    var warning = ""
    /// The file's identity, the same before and after its bytes were read (nil when it changed meanwhile,
    /// or for bytes handed over by descriptor): what its digest is remembered under (``KnownDigests``).
    var identity: FileIdentity?

    struct Refusal: Error {
        var reason: String
        var linkTarget = ""
    }

    /// Why `st` (of a directory or file) lets someone other than this user or root change its
    /// contents, or nil when it does not.
    static func trustProblem(_ st: stat, what: String) -> String? {
        let euid = geteuid()
        if st.st_uid != euid && st.st_uid != 0 {
            return "\(what) is owned by uid \(st.st_uid), not by this user (uid \(euid)) or root"
        }
        let mode = st.st_mode & 0o7777
        if mode & 0o022 != 0 {
            let who = mode & 0o002 != 0 ? "others" : "its group"
            return "\(what) is writable by \(who) (mode 0\(String(mode, radix: 8)))"
        }
        return nil
    }

    /// The directory's own trust problem, if any (nil also when it cannot be examined: opening it
    /// then reports that).
    static func directoryProblem(_ directory: String) -> String? {
        var st = stat()
        guard stat(directory, &st) == 0 else { return nil }
        return trustProblem(st, what: "plugin directory \(PluginHost.escaped(directory))")
    }

    /// Opens and reads `path` (an entry of `directory`), refusing it with the check that failed.
    static func read(_ path: String, directory: String, policy: PluginLoadPolicy) throws(Refusal) -> PluginFile {
        var result = PluginFile(bytes: [])
        func insecure(_ problem: String) throws(Refusal) {
            guard policy.allowInsecureDirectory else {
                throw Refusal(
                    reason: "\(problem): anyone who can change it can run code as this user; "
                        + "fix the permissions (chmod go-w) or pass --allow-insecure-dir",
                    linkTarget: result.linkTarget)
            }
            result.warning = result.warning.isEmpty ? "warning: \(problem)" : result.warning + "; \(problem)"
        }
        if let problem = directoryProblem(directory) { try insecure(problem) }
        var lst = stat()
        guard lstat(path, &lst) == 0 else { throw Refusal(reason: "cannot read: \(errnoText())") }
        var openPath = path
        if (lst.st_mode & S_IFMT) == S_IFLNK {
            // A link is followed only when its target stays inside the plugin directory.
            guard let target = realPath(path), let root = realPath(directory) else {
                throw Refusal(reason: "symbolic link that does not resolve: \(errnoText())")
            }
            result.linkTarget = target
            guard target.hasPrefix(root == "/" ? "/" : root + "/") else {
                throw Refusal(
                    reason: "symbolic link to \(PluginHost.escaped(target)), outside the plugin directory "
                        + "\(PluginHost.escaped(root)); links are followed only inside it",
                    linkTarget: target)
            }
            openPath = target
        }
        // O_NONBLOCK: a FIFO swapped in after the lstat must not block the open.
        let fd = open(openPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw Refusal(reason: "cannot read: \(errnoText())", linkTarget: result.linkTarget) }
        defer { close(fd) }
        var before: FileIdentity?
        do {
            result.bytes = try read(descriptor: fd, policy: policy) { st throws(Refusal) in
                if let problem = trustProblem(st, what: "plugin file") { try insecure(problem) }
                before = FileIdentity(st)
            }
        } catch {
            throw Refusal(reason: error.reason, linkTarget: result.linkTarget)
        }
        if let before, FileIdentity(descriptor: fd) == before { result.identity = before }
        return result
    }

    /// Reads the plugin file open on `fd`: a regular file (checked by `check` too) within the size cap,
    /// its magic checked from the first bytes before the rest is read.
    static func read(
        descriptor fd: Int32, policy: PluginLoadPolicy,
        check: (stat) throws(Refusal) -> Void = { _ in }
    ) throws(Refusal) -> [UInt8] {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Refusal(reason: "cannot read: \(errnoText())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw Refusal(reason: "not a regular file") }
        try check(st)
        let size = Int(st.st_size)
        guard size <= policy.maxFileBytes else {
            throw Refusal(
                reason: "file size check failed: expected at most \(policy.maxFileBytes) bytes "
                    + "(--max-plugin-bytes), found \(size)")
        }
        // The magic first: a file that is not ELF is refused after reading 64 bytes, whatever its size.
        var prefix = [UInt8](repeating: 0, count: min(size, ELFInspector.headerSize))
        guard PluginFileIO.readFully(fd, into: &prefix, at: 0) else {
            throw Refusal(reason: "cannot read: \(errnoText())")
        }
        do {
            try ELFInspector.checkMagic(prefix)
        } catch {
            throw Refusal(reason: "\(error.check) check failed: expected \(error.expected), found \(error.found)")
        }
        guard let bytes = PluginFileIO.read(fd, count: size, at: 0) else {
            throw Refusal(reason: "the file changed size while it was read")
        }
        return bytes
    }

}

func errnoText() -> String { String(cString: strerror(errno)) }

extension PluginHost {
    /// Why a file with status `st` could be changed by someone other than this user or root (the
    /// check plugin files and directories meet), or nil.
    @_spi(Host) public static func trustProblem(_ st: stat, what: String) -> String? {
        PluginFile.trustProblem(st, what: what)
    }
}
