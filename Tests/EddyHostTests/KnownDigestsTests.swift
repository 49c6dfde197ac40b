import EddyHostTestSupport
import Foundation
import Testing

@testable import EddyHost

#if canImport(Glibc)
    import Glibc
#endif

/// A file's SHA-256 is remembered by its identity (device, inode, size, modification and status-change
/// times) once its status is settled, and found again only while every one of those is unchanged.
@Suite struct KnownDigestsTests {
    static func identity(of path: String) throws -> FileIdentity {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        defer { if fd >= 0 { close(fd) } }
        return try #require(FileIdentity(descriptor: fd))
    }

    /// A copy directory of its own and a file holding `text`.
    static func setUp(_ text: String) -> (
        shadow: ScratchDirectory, copies: PrivateCopies, files: ScratchDirectory, path: String
    ) {
        let shadow = ScratchDirectory()
        let files = ScratchDirectory()
        return (shadow, PrivateCopies(path: shadow.path + "/copies"), files, files.write("p.so", text))
    }

    @Test func aDigestIsFoundOnlyForTheSameSettledFile() throws {
        let (shadow, copies, files, path) = Self.setUp("first bytes")
        let fresh = try Self.identity(of: path)
        // Its status changed a moment ago: a write in the same clock tick would not show, so nothing is kept.
        copies.rememberDigest(String(repeating: "a", count: 64), of: fresh)
        #expect(copies.knownDigest(fresh) == nil)

        usleep(2_100_000)
        let settled = try Self.identity(of: path)
        #expect(settled == fresh)
        let hash = String(repeating: "b", count: 64)
        copies.rememberDigest(hash, of: settled)
        #expect(copies.knownDigest(settled) == hash)
        // Another copy of the directory's records (another process) finds it too.
        #expect(PrivateCopies(path: shadow.path + "/copies").knownDigest(settled) == hash)

        // Other bytes of the same size, the modification time put back: the status-change time moved.
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        #expect(fd >= 0)
        _ = "other bytes".withCString { write(fd, $0, 11) }
        var times = [
            timespec(tv_sec: Int(settled.modified.seconds), tv_nsec: Int(settled.modified.nanoseconds)),
            timespec(tv_sec: Int(settled.modified.seconds), tv_nsec: Int(settled.modified.nanoseconds)),
        ]
        #expect(futimens(fd, &times) == 0)
        close(fd)
        let rewritten = try Self.identity(of: path)
        #expect(rewritten.modified == settled.modified && rewritten.size == settled.size)
        #expect(copies.knownDigest(rewritten) == nil)
        // Replaced by a rename: another inode.
        let other = files.write("q.so", "first bytes")
        #expect(rename(other, path) == 0)
        #expect(copies.knownDigest(try Self.identity(of: path)) == nil)
    }

    @Test func malformedRecordsAreIgnored() throws {
        let (shadow, copies, files, path) = Self.setUp("bytes")
        defer { withExtendedLifetime(files) {} }
        let id = try Self.identity(of: path)
        // Written as a hostile or damaged file would hold them: short, not hex, upper case, extra fields.
        let lines = [
            "\(id.key)\t\(String(repeating: "z", count: 64))",
            "\(id.key)\t\(String(repeating: "A", count: 64))",
            "\(id.key)\tabc",
            "\(id.key)\t\(String(repeating: "c", count: 64))\textra",
            "\(id.key)",
            String(repeating: "\t", count: 5000),
        ]
        try (lines.joined(separator: "\n") + "\n").write(
            toFile: shadow.path + "/copies/" + KnownDigests.file, atomically: false, encoding: .utf8)
        #expect(copies.knownDigest(id) == nil)
        // A key that is a prefix of another's (inode 12 and 123) does not match it.
        let good = String(repeating: "d", count: 64)
        let longer = id.key.replacingOccurrences(of: ":\(id.inode):", with: ":\(id.inode)9:")
        try ("\(longer)\t\(good)\n").write(
            toFile: shadow.path + "/copies/" + KnownDigests.file, atomically: false, encoding: .utf8)
        #expect(copies.knownDigest(id) == nil)
    }
}
