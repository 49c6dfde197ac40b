// `struct stat` is defined by several C modules this target sees (Glibc, and through Dispatch and NIO
// their own shims); whichever the compiler takes as its home must be imported here.
import CDispatch
import CNIOLinux
import EddyIO

#if canImport(Glibc)
    import Glibc
#endif

/// The bearer token `eddy serve` requires, and the file that holds it for the server's clients.
///
/// Without `--token-file` a server makes a fresh token at every start and keeps it in
/// `serve-<pid>.token` inside a private directory of the user it runs as: `$XDG_RUNTIME_DIR/eddy`
/// when that runtime directory is set and belongs to the user, else `$HOME/.eddy` (the home directory
/// of the effective user when `HOME` is unset). The directory is made mode 0700 if missing and used
/// only if it is owned by the effective user, is not a symbolic link and lets no group or other user
/// in; the file is created exclusively, mode 0600, through a descriptor of that directory (so a
/// directory swapped in afterwards is never written), and removed when the server stops gracefully.
/// A `--token-file` that does not exist yet is created the same way and kept; one that exists is read.
public final class ServerToken: Sendable {
    /// The secret (64 hex digits when made here).
    public let token: String
    /// Where it is kept.
    public let path: String
    /// Whether this start made the file (it was not there before).
    public let created: Bool
    /// The file to remove on a graceful stop: the private directory's descriptor, the name in it and
    /// the identity of the file made (a file put in its place is left alone). Nil for a file kept.
    private let owned: (directory: Int32, name: String, device: UInt64, inode: UInt64)?

    private init(
        token: String, path: String, created: Bool,
        owned: (directory: Int32, name: String, device: UInt64, inode: UInt64)?
    ) {
        self.token = token
        self.path = path
        self.created = created
        self.owned = owned
    }

    /// A fresh token in `serve-<pid>.token` of the private per-user directory (see the type's summary).
    /// - Parameter environment: where `XDG_RUNTIME_DIR` and `HOME` are looked up.
    /// - Throws: ``ServerSetupError`` naming the directory or file and the check that failed.
    public static func makeDefault(environment: (String) -> String? = { getenv($0).map { String(cString: $0) } })
        throws -> ServerToken
    {
        let directory = try privateDirectoryPath(environment: environment)
        let fd = try openPrivateDirectory(directory)
        removeStale(in: fd)
        let name = "serve-\(getpid()).token"
        // The directory is this user's alone: a file of this name is a server with this pid that
        // did not stop gracefully, and that process is gone (the pid is ours now).
        if unlinkat(fd, name, 0) != 0 && errno != ENOENT {
            let code = errno
            close(fd)
            throw ServerSetupError("token file \(escapedForDisplay(directory + "/" + name)): \(systemMessage(code))")
        }
        let token: String
        let identity: (UInt64, UInt64)
        do {
            token = randomToken()
            identity = try writeExclusively(token, directory: fd, name: name, shownAs: directory + "/" + name)
        } catch {
            close(fd)
            throw error
        }
        return ServerToken(
            token: token, path: directory + "/" + name, created: true,
            owned: (fd, name, identity.0, identity.1))
    }

    /// The token of `--token-file PATH`: read from the file when it exists (it must be private, as
    /// ``ServerOptions/readToken(_:)`` checks), else made here and written to a new file, mode 0600,
    /// that is kept after the server stops (the next start reads it).
    /// - Throws: ``ServerSetupError`` naming the file and what is wrong with it.
    public static func fromFile(_ path: String) throws -> ServerToken {
        let token = randomToken()
        do {
            _ = try writeExclusively(token, directory: AT_FDCWD, name: path, shownAs: path)
            return ServerToken(token: token, path: path, created: true, owned: nil)
        } catch is Exists {
            return ServerToken(token: try ServerOptions.readToken(path), path: path, created: false, owned: nil)
        }
    }

    /// Removes the file this start made in the private directory, if it is still that file.
    public func remove() {
        guard let owned else { return }
        var st = stat()
        if fstatat(owned.directory, owned.name, &st, AT_SYMLINK_NOFOLLOW) == 0,
            UInt64(st.st_dev) == owned.device, UInt64(st.st_ino) == owned.inode
        {
            unlinkat(owned.directory, owned.name, 0)
        }
    }

    /// The text of a small regular file, opened without following a link, that the effective user
    /// (or root) owns and no group or other user may read; checked on the descriptor read.
    /// - Throws: ``ServerSetupError`` naming the file and the check that failed.
    static func readOwnedPrivateFile(_ path: String) throws -> String {
        let shown = "--token-file \(escapedForDisplay(path))"
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { throw ServerSetupError("\(shown): \(systemMessage(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size <= 4096 else {
            throw ServerSetupError("\(shown): not a small regular file")
        }
        guard st.st_uid == geteuid() || st.st_uid == 0 else {
            throw ServerSetupError(
                "\(shown): owned by uid \(st.st_uid), not by uid \(geteuid()) that runs the server (or root); "
                    + "another user may know its token")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw ServerSetupError(
                "\(shown): readable by others (mode 0\(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw ServerSetupError("\(shown): cannot read it") }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Making the file

    private struct Exists: Error {}

    /// 32 bytes from the kernel's random source (the standard library's system generator reads
    /// `getrandom(2)` on Linux), as 64 hex digits.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for b in bytes {
            text.append(digits[Int(b >> 4)])
            text.append(digits[Int(b & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Creates `name` (relative to `directory`) exclusively, never through a link, mode 0600 whatever
    /// the umask, and writes the token and a newline. Returns the file's device and inode.
    /// - Throws: `Exists` when something already has that name; ``ServerSetupError`` otherwise.
    private static func writeExclusively(_ token: String, directory: Int32, name: String, shownAs: String) throws
        -> (UInt64, UInt64)
    {
        let fd = openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { throw Exists() }
            throw ServerSetupError(
                "token file \(escapedForDisplay(shownAs)): cannot create it: \(systemMessage(errno))")
        }
        defer { close(fd) }
        var st = stat()
        let bytes = Array((token + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard fchmod(fd, 0o600) == 0, written == bytes.count, fstat(fd, &st) == 0 else {
            let code = errno
            unlinkat(directory, name, 0)
            throw ServerSetupError("token file \(escapedForDisplay(shownAs)): cannot write it: \(systemMessage(code))")
        }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    // MARK: - The private directory

    /// Removes the token files of servers that are gone without a graceful stop (killed, crashed):
    /// `serve-PID.token` whose process no longer exists. A live process keeps its file, even if its
    /// pid was reused (it is this user's private directory: a stale file there harms no one).
    static func removeStale(in directory: Int32) {
        let copy = dup(directory)
        guard copy >= 0, let listing = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return
        }
        defer { closedir(listing) }
        var stale: [String] = []
        while let entry = readdir(listing) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix("serve-"), name.hasSuffix(".token"),
                let pid = Int32(name.dropFirst(6).dropLast(6)), pid > 0, pid != getpid()
            else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { stale.append(name) }
        }
        for name in stale { unlinkat(directory, name, 0) }
    }

    /// `$XDG_RUNTIME_DIR/eddy` when the runtime directory is set, absolute and the user's own;
    /// else `$HOME/.eddy`, with the effective user's home from the password database when `HOME`
    /// is unset, relative or another user's.
    static func privateDirectoryPath(environment: (String) -> String?) throws -> String {
        if let runtime = environment("XDG_RUNTIME_DIR"), runtime.hasPrefix("/") {
            var st = stat()
            if lstat(runtime, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid() {
                return (runtime.hasSuffix("/") ? runtime : runtime + "/") + "eddy"
            }
        }
        // A HOME that is not this user's (sudo keeps the caller's) is not where this user's
        // private files go: the password database's home of the effective user is.
        var home = environment("HOME") ?? ""
        var st = stat()
        if !home.hasPrefix("/") || stat(home, &st) != 0 || st.st_uid != geteuid(),
            let entry = getpwuid(geteuid()), let dir = entry.pointee.pw_dir
        {
            home = String(cString: dir)
        }
        guard home.hasPrefix("/") else {
            throw ServerSetupError(
                "no private directory for the bearer token: neither XDG_RUNTIME_DIR nor HOME is set; "
                    + "give --token-file FILE")
        }
        return (home.hasSuffix("/") ? home : home + "/") + ".eddy"
    }

    /// Makes `path` (mode 0700) if it is missing and opens it, checking that the effective user owns
    /// it, that it is a directory and not a link, and that no group or other user may use it.
    /// - Returns: a descriptor of the directory checked.
    static func openPrivateDirectory(_ path: String) throws -> Int32 {
        let shown = escapedForDisplay(path)
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw ServerSetupError("token directory \(shown): cannot create it: \(systemMessage(errno))")
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            var st = stat()
            // O_DIRECTORY | O_NOFOLLOW says ENOTDIR for a link too: lstat tells them apart.
            let isLink = lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFLNK
            let reason =
                isLink
                ? "it is a symbolic link; remove it (the server makes the directory itself)"
                : code == ENOTDIR ? "not a directory" : systemMessage(code)
            throw ServerSetupError("token directory \(shown): \(reason)")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = errno
            close(fd)
            throw ServerSetupError("token directory \(shown): \(systemMessage(code))")
        }
        guard st.st_uid == geteuid() else {
            close(fd)
            throw ServerSetupError(
                "token directory \(shown): owned by uid \(st.st_uid), not by uid \(geteuid()) that runs the server")
        }
        guard st.st_mode & 0o077 == 0 else {
            close(fd)
            throw ServerSetupError(
                "token directory \(shown): mode 0\(String(st.st_mode & 0o777, radix: 8)) lets other users in; "
                    + "chmod 700 it")
        }
        return fd
    }
}
