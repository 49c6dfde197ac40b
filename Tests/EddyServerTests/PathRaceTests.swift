import EddyHostTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The C helpers of ``PathRaceTests`` in Tests/Fixtures/PathRace, built once with the system's C
/// compiler: `swapper` (the attacker) and `no_openat2.so` (preloaded into the server: openat2 fails
/// with ENOSYS, as on a kernel before 5.6).
enum PathRaceFixtures {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var built: [String: String] = [:]  // guarded by `lock`

    static var swapper: String { get throws { try build("swapper", flags: ["-O2"]) } }
    static var noOpenat2: String { get throws { try build("no_openat2", flags: ["-shared", "-fPIC"], suffix: ".so") } }

    private static func build(_ name: String, flags: [String], suffix: String = "") throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let path = built[name] { return path }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/PathRace/\(name).c").path
        let out = NSTemporaryDirectory() + "eddy-\(name)-\(getpid())\(suffix)"
        try compile(["cc"] + flags + [source, "-o", out], naming: "\(name).c")
        chmod(out, 0o755)
        built[name] = out
        return out
    }
}

@Suite(.serialized) struct PathRaceTests {
    /// Issue 27: the server checked a path, then opened it again (in a worker) — another user who can
    /// write to a data subdirectory swapped it for a link to a directory outside in between, and read
    /// root's files. The file is now opened once, beneath the data directory (openat2
    /// RESOLVE_BENEATH), and that descriptor is what is read: during 10 s of swaps, with workers and
    /// in the server's own process, and without openat2 (the O_NOFOLLOW walk), no response carries
    /// the secret.
    @Test(
        .enabled(if: geteuid() == 0, "plays another user (uid 65534): run as root"),
        arguments: [("2", false), ("0", false), ("2", true)])
    func aDirectorySwappedForALinkOutsideWhileRequestsArriveLeaksNothing(workers: String, withoutOpenat2: Bool)
        throws
    {
        let root = ScratchDirectory()
        chmod(root.path, 0o755)
        let data = root.path + "/data"
        let outside = root.path + "/outside"
        let uploads = data + "/uploads"
        for dir in [data, outside, uploads, uploads + "/a"] { mkdir(dir, 0o755) }
        // Root's secret, outside the data directory, readable by root only.
        let secret = ScratchDirectory.write(at: outside + "/secret", "name,value\n\(secretMarker),1\n")
        chmod(secret, 0o600)
        // The subdirectory another user may write to: theirs, with an innocent file of the same name
        // and two links to the directory outside (absolute, and relative leading out by `..`).
        _ = ScratchDirectory.write(at: uploads + "/a/secret", "name,value\nharmless,1\n")
        symlink(outside, uploads + "/abs")
        symlink("../../outside", uploads + "/rel")
        for path in [uploads, uploads + "/a", uploads + "/a/secret", uploads + "/abs", uploads + "/rel"] {
            lchown(path, 65534, 65534)
        }
        let swapper = Process()
        swapper.executableURL = URL(fileURLWithPath: try PathRaceFixtures.swapper)
        swapper.arguments = [uploads, "65534", "11", "a", "abs", "rel"]
        let swapperOut = Pipe()
        swapper.standardOutput = swapperOut

        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [data], arguments: ["--workers", workers],
            environment: withoutOpenat2 ? ["LD_PRELOAD": try PathRaceFixtures.noOpenat2] : [:])
        let body = #"{"path": "uploads/a/secret", "select": "name", "format": "csv"}"#
        let before = try RawHTTP.post(port: server.port, body: body)
        #expect(before.status == 200 && before.body.contains("harmless"), "\(before)")

        struct Counts {
            var harmless = 0, refused = 0, leaks = 0, other: [String] = []
        }
        let counts = Mutex(Counts())
        try swapper.run()
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            while Date().timeIntervalSince(started) < 10 {
                guard let r = try? RawHTTP.post(port: server.port, body: body) else { continue }
                counts.withLock { c in
                    if r.body.contains(secretMarker) {
                        c.leaks += 1
                    } else if r.status == 200 && r.body.contains("harmless") {
                        c.harmless += 1
                    } else if r.status == 403 || r.status == 404 {
                        c.refused += 1
                    } else if c.other.count < 5 {
                        c.other.append("\(r.status) \(r.body.prefix(300))")
                    }
                }
            }
        }
        swapper.waitUntilExit()
        let swaps = String(decoding: swapperOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let c = counts.withLock { $0 }
        print(
            "path race, --workers \(workers)\(withoutOpenat2 ? " without openat2" : ""): \(c.harmless) harmless, "
                + "\(c.refused) refused, \(c.leaks) leaks, \(swaps.trimmingCharacters(in: .whitespacesAndNewlines)) swaps"
        )
        #expect(swapper.terminationStatus == 0)
        #expect(c.leaks == 0, "the secret outside the data directory was served \(c.leaks) times")
        // Both sides of the race were reached: the real directory and the links in its place.
        #expect(c.harmless > 0 && c.refused > 0, "\(c.harmless) harmless, \(c.refused) refused")
        #expect(c.other.isEmpty, "\(c.other)")
        #expect(server.process.isRunning)
    }

    /// What `RESOLVE_BENEATH` follows: a relative link that stays inside; not an absolute link (even one
    /// back inside), a link out, a `..` out, or a `/proc` link. Messages name the path asked for.
    @Test(arguments: ["2", "0"])
    func linksInsideADataDirectoryAreFollowedOnlyWhenRelativeAndInside(workers: String) throws {
        let root = ScratchDirectory()
        let data = root.path + "/data"
        mkdir(data, 0o755)
        mkdir(data + "/sub", 0o755)
        mkdir(root.path + "/outside", 0o755)
        _ = ScratchDirectory.write(at: data + "/sub/x.csv", "name,value\nharmless,1\n")
        _ = ScratchDirectory.write(at: root.path + "/outside/s.csv", "name,value\n\(secretMarker),1\n")
        symlink("sub/x.csv", data + "/inside.csv")
        symlink(data + "/sub/x.csv", data + "/absolute-inside.csv")
        symlink("../outside", data + "/out")
        symlink("/proc/self/root" + root.path + "/outside/s.csv", data + "/magic.csv")
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [data], arguments: ["--workers", workers])
        func eval(_ path: String) throws -> (status: Int, body: String) {
            try RawHTTP.post(port: server.port, body: #"{"path": "\#(path)", "select": "name", "format": "csv"}"#)
        }
        for path in ["sub/x.csv", "inside.csv", "sub/../inside.csv", data + "/inside.csv"] {
            let r = try eval(path)
            #expect(r.status == 200 && r.body.contains("harmless"), "\(path): \(r)")
        }
        for path in ["absolute-inside.csv", "out/s.csv", "magic.csv", "sub/../../outside/s.csv"] {
            let r = try eval(path)
            #expect(r.status == 403 && r.body.contains("\(path) is not inside a --data-dir"), "\(path): \(r)")
            #expect(!r.body.contains(secretMarker))
        }
        let missing = try eval("sub/nothing.csv")
        #expect(missing.status == 404 && missing.body.contains("sub/nothing.csv: no such file"), "\(missing)")
        #expect(server.process.isRunning)
    }

    /// On a system without openat2 (ENOSYS: a kernel before 5.6, or a seccomp filter) the path is walked
    /// one component at a time with O_NOFOLLOW: a plain path still reads, no link and no `..` is followed,
    /// and the message says so.
    @Test(arguments: ["2", "0"])
    func withoutOpenat2NoLinkIsFollowed(workers: String) throws {
        let root = ScratchDirectory()
        let data = root.path + "/data"
        mkdir(data, 0o755)
        mkdir(data + "/sub", 0o755)
        _ = ScratchDirectory.write(at: data + "/sub/x.csv", "name,value\nharmless,1\n")
        symlink("sub/x.csv", data + "/inside.csv")
        symlink("sub", data + "/dirlink")
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [data], arguments: ["--workers", workers],
            environment: ["LD_PRELOAD": try PathRaceFixtures.noOpenat2])
        func eval(_ path: String) throws -> (status: Int, body: String) {
            try RawHTTP.post(port: server.port, body: #"{"path": "\#(path)", "select": "name", "format": "csv"}"#)
        }
        for path in ["sub/x.csv", "./sub//x.csv", data + "/sub/x.csv"] {
            let r = try eval(path)
            #expect(r.status == 200 && r.body.contains("harmless"), "\(path): \(r)")
        }
        for path in ["inside.csv", "dirlink/x.csv"] {
            let r = try eval(path)
            #expect(r.status == 403 && r.body.contains("a symbolic link on the way is not followed"), "\(path): \(r)")
        }
        let dots = try eval("sub/../sub/x.csv")
        #expect(dots.status == 403 && dots.body.contains("'..' is not followed"), "\(dots)")
        let missing = try eval("sub/nothing.csv")
        #expect(missing.status == 404 && missing.body.contains("no such file"), "\(missing)")
    }
}
