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

/// Uploaded bodies, each written to its own 0600 file in a private 0700 directory that is made for
/// this server and removed when it stops.
final class UploadDirectory: Sendable {
    let path: String

    init() throws {
        let tmp = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        var template = Array("\(tmp)/eddy-uploads-XXXXXX".utf8CString)
        guard
            let made = template.withUnsafeMutableBufferPointer({ buffer in buffer.baseAddress.flatMap { mkdtemp($0) } })
        else {
            throw ServerSetupError(
                "cannot create a private upload directory under \(tmp): \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    /// Puts `body` in an anonymous file (a sealed memfd: no name, nothing on disk) and returns the name
    /// messages give it and the file, open. The name is under this directory but never created, so
    /// removing it after the request is harmless; the file goes with its last descriptor. Creating,
    /// writing and unlinking a file on disk per upload (and its atime update when a worker read it)
    /// cost tens of microseconds of a small request.
    func store(_ body: Data, suffix: String) throws(EddyFailure) -> (path: String, file: OpenedFile) {
        let name = "\(path)/upload-\(UInt64.random(in: 0...UInt64.max))\(suffix)"
        let fd = body.withUnsafeBytes { raw in eddy_sealed_memfd("eddy-upload", raw.baseAddress, raw.count) }
        guard fd >= 0 else {
            throw EddyFailure(
                .internal, "cannot store the uploaded body: \(String(cString: strerror(errno)))")
        }
        return (name, OpenedFile(fd))
    }

    /// Removes the directory and anything left in it.
    func remove() {
        let dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if dirfd >= 0 {
            for name in FileFacts.names(in: dirfd) { unlinkat(dirfd, name, 0) }
            close(dirfd)
        }
        rmdir(path)
    }
}
