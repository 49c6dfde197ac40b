import CEddyHost
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
import Foundation
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

extension EvalRequest {
    /// Opens a requested path inside one of the data directories, once, or refuses it (403, 404).
    ///
    /// The file is opened relative to a descriptor of its data directory with `openat2(RESOLVE_BENEATH |
    /// RESOLVE_NO_MAGICLINKS)`: the kernel refuses, atomically, a `..`, an absolute symbolic link or a
    /// relative one that leads out, however the tree is changed meanwhile; a relative link that stays
    /// inside is followed. The descriptor is what the evaluation reads (in a worker too, which is handed
    /// it, never the path): checking a path and opening it again later let another user who can write
    /// to a data subdirectory swap it for a link to `/etc` between the two (issue 27).
    /// - Returns: the path to name in messages — the request's, as the client wrote it: where the data
    ///   directories are on the server is not the client's to learn — and the open file.
    static func open(_ path: String, dataDirectories: [String]) throws(EddyFailure) -> (path: String, file: OpenedFile)
    {
        guard let first = dataDirectories.first else {
            throw EddyFailure(
                .forbidden,
                "this server reads no files by path: start it with --data-dir DIR to allow files "
                    + "under DIR, or upload the data as the request body")
        }
        guard !path.isEmpty, !path.utf8.contains(0) else {
            throw EddyFailure(.badRequest, "field 'path' is empty or has a NUL")
        }
        let shown = escapedForDisplay(path)
        let absolute = path.hasPrefix("/") ? path : first + "/" + path
        func prefix(_ dir: String) -> String { dir == "/" ? "/" : dir + "/" }
        // Judged on the path with its `.` and `..` taken away first, without touching the file system:
        // whether a file outside exists is not told.
        let lexical = lexicallyNormalized(absolute)
        let outside = "\(shown) is not inside a --data-dir of this server"
        guard dataDirectories.contains(where: { lexical.hasPrefix(prefix($0)) }) else {
            throw EddyFailure(.forbidden, outside)
        }
        // The data directory the path starts with (the longest that matches), and the rest beneath it.
        let base =
            path.hasPrefix("/")
            ? dataDirectories.filter { absolute.hasPrefix(prefix($0)) }.max { $0.utf8.count < $1.utf8.count }
            : first
        guard let base else { throw EddyFailure(.forbidden, outside) }
        var rest = Substring(absolute.dropFirst(prefix(base).count))
        while rest.hasPrefix("/") { rest = rest.dropFirst() }
        let directory = eddy_open_directory(base)
        guard directory >= 0 else {
            throw EddyFailure(
                .forbidden,
                "\(shown): cannot open its data directory \(escapedForDisplay(base)): \(String(cString: strerror(errno)))"
            )
        }
        defer { close(directory) }
        var walked: Int32 = 0
        let fd = eddy_open_beneath(directory, rest.isEmpty ? "." : String(rest), &walked)
        guard fd >= 0 else {
            let reason = errno
            // Without openat2 (walked) no link and no `..` is followed at all.
            switch (reason, walked != 0) {
            case (EXDEV, false):
                throw EddyFailure(
                    .forbidden,
                    outside + " (it resolves to a file outside, or through an absolute symbolic link, which is not "
                        + "followed)")
            case (EXDEV, true):
                throw EddyFailure(
                    .forbidden, "\(shown): '..' is not followed on this system (no openat2); name the file without it")
            case (ELOOP, false):
                throw EddyFailure(
                    .forbidden, "\(shown): too many levels of symbolic links, or a /proc link, which is not followed")
            case (ELOOP, true):
                throw EddyFailure(
                    .forbidden,
                    "\(shown): a symbolic link on the way is not followed on this system (no openat2); name the file "
                        + "itself")
            case (ENOENT, _), (ENOTDIR, _):
                throw EddyFailure(.notFound, "\(shown): no such file")
            case (EACCES, _), (EPERM, _):
                throw EddyFailure(.forbidden, "\(shown): permission denied (the server cannot reach it)")
            case (EAGAIN, _):
                throw EddyFailure(
                    .busy, "\(shown): the directories on its path changed while it was opened; try again")
            default:
                throw EddyFailure(.forbidden, "\(shown): cannot open: \(String(cString: strerror(reason)))")
            }
        }
        let file = OpenedFile(fd)
        // A FIFO or a device would block the evaluation's thread where no deadline can reach it (opened
        // with O_NONBLOCK, so the open itself did not wait).
        guard FileKind.of(descriptor: fd) == .regular else {
            throw EddyFailure(.forbidden, "\(shown) is not a regular file")
        }
        return (path, file)
    }
}

/// An absolute path with `.` components dropped and each `..` taking away the component before it,
/// without looking at the file system (a symbolic link is not followed).
func lexicallyNormalized(_ absolute: String) -> String {
    var parts: [Substring] = []
    for part in absolute.split(separator: "/", omittingEmptySubsequences: true) {
        if part == "." { continue }
        if part == ".." {
            _ = parts.popLast()
            continue
        }
        parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
}
