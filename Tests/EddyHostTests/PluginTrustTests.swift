import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// The fault table of the trust boundary: each case drives the real `eddy` binary or a real
// `eddy serve`, and checks the status, the message, that the process that should live is alive, and
// that no secret bytes leak into a response.

@Suite struct PluginTrustTests {
    func report(_ dir: String, _ extra: [String] = [], environment: [String: String] = [:]) throws
        -> (Eddy.Result, [String: [String: Any]])
    {
        let r = try Eddy.run(["plugins", "--plugin-dir", dir, "--json"] + extra, environment: environment)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let files = object?["files"] as? [[String: Any]] ?? []
        return (
            r,
            Dictionary(
                files.map { (URL(fileURLWithPath: $0["file"] as? String ?? "").lastPathComponent, $0) },
                uniquingKeysWith: { a, _ in a })
        )
    }

    @Test(arguments: [
        (HostileFixtures.Mode.exit, "without reporting success"),
        (HostileFixtures.Mode.loop, "hung while loading, registering or verifying"),
        (HostileFixtures.Mode.crash, "crashed in the probe process (killed by signal 11"),
        (HostileFixtures.Mode.destructor, "crashed in the probe process at exit, after registering (in a destructor"),
    ])
    func theProbeRefusesPluginsThatExitHangOrCrash(mode: HostileFixtures.Mode, reason: String) throws {
        let dir = ScratchDirectory()
        try dir.copy(try HostileFixtures.build(mode), as: "hostile.so")
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let (r, rows) = try report(dir.path, ["--probe-timeout", "2"])
        #expect(rows["hostile.so"]?["status"] as? String == "rejected")
        #expect(
            (rows["hostile.so"]?["reason"] as? String)?.contains(reason) == true,
            "\(rows["hostile.so"] ?? [:]) \(r.stderr)")
        #expect(rows["delta.so"]?["status"] as? String == "loaded")
        // The host goes on to evaluate, with the good plugin (a query that reads a column: one that
        // reads none loads no plugin).
        let work = ScratchDirectory()
        let e = try Eddy.run([
            "eval", tripsCSV(work, rows: 50), "--plugin-dir", dir.path, "--probe-timeout", "2",
            "--select", "count(fare)", "--format", "csv",
        ])
        #expect(e.status == 0 && e.stdout == "count(fare)\n50\n", "\(e.stderr)")
        #expect(e.stderr.contains("hostile.so rejected"))
    }

    @Test func aPassedProbeIsKeptForTheSameBytesBuildAndProbeCommand() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try dir.copy(try HostileFixtures.build(.crash), as: "crash.so")
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o700)
        let env = ["EDDY_SHADOW_DIR": shadow.path]
        func probe(_ extra: [String] = []) throws -> (delta: String, crash: String, rows: [String: [String: Any]]) {
            let (_, rows) = try report(dir.path, ["--probe-timeout", "5"] + extra, environment: env)
            #expect(rows["delta.so"]?["status"] as? String == "loaded", "\(rows)")
            #expect(rows["crash.so"]?["status"] as? String == "rejected", "\(rows)")
            return (
                rows["delta.so"]?["probe"] as? String ?? "", rows["crash.so"]?["probe"] as? String ?? "", rows
            )
        }
        var r = try probe()
        #expect(r.delta == "ran" && r.crash == "ran", "\(r.rows)")
        // The next host (a new process, the same build) does not start a child for the same bytes;
        // a plugin that failed its probe is probed, and refused, every time.
        r = try probe()
        #expect(r.delta == "passed earlier" && r.crash == "ran", "\(r.rows)")
        #expect((r.rows["crash.so"]?["reason"] as? String)?.contains("crashed in the probe process") == true)
        // Another probe command (here its timeout) is another verdict.
        r = try probe(["--probe-timeout", "7"])
        #expect(r.delta == "ran", "\(r.rows)")
        // Other bytes are probed.
        try dir.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: "delta.so")
        r = try probe()
        #expect(r.delta == "ran", "\(r.rows)")
        // A verdict file that is not a regular file of this user is not read.
        let verdicts = shadow.path + "/probed.tsv"
        let kept = try String(contentsOfFile: verdicts, encoding: .utf8)
        unlink(verdicts)
        let other = ScratchDirectory()
        let elsewhere = other.path + "/verdicts.tsv"
        try kept.write(toFile: elsewhere, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: verdicts, withDestinationPath: elsewhere)
        r = try probe()
        #expect(r.delta == "ran", "\(r.rows)")
        // Another library search path is another verdict (a plugin's own dependencies resolve through it).
        unlink(verdicts)
        _ = try probe()
        let (_, moved) = try report(
            dir.path, ["--probe-timeout", "5"], environment: env.merging(["LD_LIBRARY_PATH": other.path]) { $1 })
        #expect(moved["delta.so"]?["probe"] as? String == "ran", "\(moved)")
        // A FIFO in the verdict file's place is neither read nor written (it would wait for a reader).
        unlink(verdicts)
        #expect(mkfifo(verdicts, 0o600) == 0)
        let started = Date()
        r = try probe()
        #expect(r.delta == "ran" && Date().timeIntervalSince(started) < 20, "\(r.rows)")
        unlink(verdicts)
        // Without the probe (the crashing plugin would take this host down: not here).
        unlink(dir.path + "/crash.so")
        let (_, off) = try report(dir.path, ["--no-probe"], environment: env)
        #expect(off["delta.so"]?["probe"] as? String == "off", "\(off)")
    }

    @Test func registrationInTheHostIsBoundedWithoutTheProbe() throws {
        let dir = ScratchDirectory()
        try dir.copy(try HostileFixtures.build(.loop), as: "loop.so")
        let (_, rows) = try report(dir.path, ["--no-probe", "--probe-timeout", "1"])
        #expect(
            (rows["loop.so"]?["reason"] as? String)?.contains("hung while registering in the host") == true, "\(rows)")
    }

    @Test func aProbeChildDoesNotOutliveItsHost() throws {
        let dir = ScratchDirectory()
        try dir.copy(try HostileFixtures.build(.loop), as: "loop.so")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Eddy.binary)
        p.environment = Eddy.childEnvironment
        p.arguments = ["plugins", "--plugin-dir", dir.path, "--probe-timeout", "120"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        func probes() -> [Int32] {
            let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return all.compactMap(Int32.init).filter { pid in
                let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                return cmd.contains("probe-plugin") && cmd.contains("--parent\u{0}\(p.processIdentifier)")
            }
        }
        var children: [Int32] = []
        for _ in 0..<100 where children.isEmpty {
            usleep(50_000)
            children = probes()
        }
        #expect(!children.isEmpty)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        for _ in 0..<100 where !probes().isEmpty { usleep(50_000) }
        #expect(probes().isEmpty, "the probe child kept running after its host was killed")
    }

    @Test func aServerWithAHangingPluginKeepsServingAndStops() throws {
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path, dataDirs: [], arguments: ["--probe-timeout", "1"])
        try dir.copy(try HostileFixtures.build(.loop), as: "loop.so")
        try server.waitForPlugin("loop.so") { ($0?["reason"] as? String)?.contains("hung") == true }
        let (status, _) = try server.request("GET", "/health")
        #expect(status == 200)
        let started = Date()
        server.stop()
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func insecureDirectoriesAndFilesAreRefusedUnlessAllowed() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        chmod(dir.path, 0o777)
        var (_, rows) = try report(dir.path)
        #expect(
            (rows["delta.so"]?["reason"] as? String)?.contains("is writable by others (mode 0777)") == true, "\(rows)")
        (_, rows) = try report(dir.path, ["--allow-insecure-dir"])
        #expect(rows["delta.so"]?["status"] as? String == "loaded")
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("warning") == true)
        chmod(dir.path, 0o755)
        chmod(dir.path + "/delta.so", 0o666)
        (_, rows) = try report(dir.path)
        #expect(
            (rows["delta.so"]?["reason"] as? String)?.contains("plugin file is writable by others") == true, "\(rows)")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give a file to another user"))
    func aPluginFileOwnedByAnotherUserIsRefused() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        chown(dir.path + "/delta.so", 65534, 65534)
        let (_, rows) = try report(dir.path)
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("owned by uid 65534") == true, "\(rows)")
    }

    @Test func symbolicLinksAreFollowedOnlyInsideTheDirectory() throws {
        let dir = ScratchDirectory()
        let elsewhere = ScratchDirectory()
        try elsewhere.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try FileManager.default.createDirectory(atPath: dir.path + "/versions", withIntermediateDirectories: true)
        try dir.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: "versions/packed-1.so")
        try FileManager.default.createSymbolicLink(
            atPath: dir.path + "/outside.so", withDestinationPath: elsewhere.path + "/delta.so")
        try FileManager.default.createSymbolicLink(
            atPath: dir.path + "/packed.so", withDestinationPath: "versions/packed-1.so")
        let (_, rows) = try report(dir.path)
        #expect(rows["outside.so"]?["status"] as? String == "rejected")
        #expect((rows["outside.so"]?["reason"] as? String)?.contains("outside the plugin directory") == true, "\(rows)")
        #expect((rows["outside.so"]?["link_target"] as? String)?.hasSuffix("/delta.so") == true)
        #expect(rows["packed.so"]?["status"] as? String == "loaded", "\(rows)")
        #expect((rows["packed.so"]?["link_target"] as? String)?.hasSuffix("versions/packed-1.so") == true)
        let text = try Eddy.run(["plugins", "--plugin-dir", dir.path])
        #expect(text.stdout.contains("packed.so -> "))
    }

    @Test func fileNamesWithControlCharactersCannotForgeReportLines() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "evil\nforged  loaded  fake  9.9.9.so")
        let r = try Eddy.run(["plugins", "--plugin-dir", dir.path])
        #expect(r.stdout.contains("evil\\nforged"))
        #expect(!r.stdout.split(separator: "\n").contains { $0.hasPrefix("forged") }, "\(r.stdout)")
        let e = try Eddy.run(["eval", dir.path + "/no\nsuch.csv"])
        #expect(e.stderr.contains("no\\nsuch.csv") && !e.stderr.contains("no\nsuch"), "\(e.stderr)")
    }

    @Test func aHugeSparsePluginFileIsRefusedBeforeItIsRead() throws {
        let dir = ScratchDirectory()
        let path = dir.path + "/huge.so"
        let fd = open(path, O_CREAT | O_WRONLY, 0o644)
        _ = "\u{7F}ELF".withCString { write(fd, $0, 4) }
        ftruncate(fd, 4 << 30)
        close(fd)
        let notELF = dir.write("big-text.so", String(repeating: "x", count: 1000))
        truncate(notELF, 200 << 20)  // under the size cap: refused after reading its first bytes
        let (r, rows) = try report(dir.path)
        #expect(r.status == 1)  // files were refused; the host survived and reported them
        #expect((rows["huge.so"]?["reason"] as? String)?.contains("file size check failed") == true, "\(rows)")
        #expect((rows["big-text.so"]?["reason"] as? String)?.contains("not an ELF file") == true, "\(rows)")
        let work = ScratchDirectory()
        let memory = try Eddy.run([
            "eval", tripsCSV(work, rows: 10), "--plugin-dir", dir.path,
            "--report-memory", "--select", "count(*)",
        ])
        let kib =
            Int(memory.stderr.components(separatedBy: "peak resident memory: ").last?.split(separator: " ").first ?? "")
            ?? 0
        #expect(kib > 0 && kib < 150_000, "a big file was read into memory: \(kib) KiB \(memory.stderr)")
    }

    enum Craft: String, CaseIterable, Sendable {
        case phoffNearIntMax, shoffAllOnes, phnum65535, ptLoadOffsetNearIntMax

        var check: String {
            switch self {
            case .ptLoadOffsetNearIntMax: "loadable segment 0 check failed"
            case .shoffAllOnes: "dynamic segment check failed"  // section headers are never read
            default: "program headers check failed"
            }
        }

        func apply(_ h: inout [UInt8]) {
            switch self {
            case .phoffNearIntMax:
                PluginTrustTests.put(&h, 32, UInt64(Int.max))
                PluginTrustTests.put16(&h, 56, 65535)
            case .shoffAllOnes: PluginTrustTests.put(&h, 40, UInt64.max)
            case .phnum65535: PluginTrustTests.put16(&h, 56, 65535)
            case .ptLoadOffsetNearIntMax:
                PluginTrustTests.put16(&h, 56, 1)
                h += [UInt8](repeating: 0, count: 56)
                PluginTrustTests.put(&h, 64, 1)
                PluginTrustTests.put(&h, 72, UInt64(Int.max) - 7)
                PluginTrustTests.put(&h, 96, 1 << 62)
            }
        }
    }

    @Test(arguments: Craft.allCases)
    func craftedELFHeadersAreRefusedNamingTheCheck(craft: Craft) throws {
        var h = [UInt8](repeating: 0, count: 64)
        h[0...3] = [0x7F, 0x45, 0x4C, 0x46]
        h[4] = 2
        h[5] = 1
        h[6] = 1
        Self.put16(&h, 16, 3)
        Self.put16(&h, 18, 62)
        Self.put(&h, 32, 64)
        Self.put16(&h, 54, 56)
        craft.apply(&h)
        let dir = ScratchDirectory()
        FileManager.default.createFile(atPath: dir.path + "/crafted.so", contents: Data(h))
        let (r, rows) = try report(dir.path)
        #expect(r.status == 1, "\(craft): \(r.stderr)")
        #expect((rows["crafted.so"]?["reason"] as? String)?.contains(craft.check) == true, "\(craft): \(rows)")
    }

    static func put(_ h: inout [UInt8], _ at: Int, _ v: UInt64) {
        for k in 0..<8 { h[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
    }

    static func put16(_ h: inout [UInt8], _ at: Int, _ v: UInt16) {
        h[at] = UInt8(v & 0xFF)
        h[at + 1] = UInt8(v >> 8)
    }

    @Test func swappingThePrivateCopyDirectoryAfterTheChecksPlantsNothing() throws {
        // The host keeps a descriptor of the directory it verified and loads through it: a directory
        // put in its place afterwards (by whoever can write the parent) is never read.
        let parent = ScratchDirectory()
        chmod(parent.path, 0o777)
        let shadow = parent.path + "/shadow"
        let plugins = ScratchDirectory()
        let marker = parent.path + "/PLANTED"
        let server = try Server(
            pluginDir: plugins.path, dataDirs: [], arguments: ["--no-probe", "--workers", "0"],
            environment: ["EDDY_SHADOW_DIR": shadow, "EDDY_TEST_MARKER": marker])
        try FileManager.default.moveItem(atPath: shadow, toPath: shadow + ".verified")
        try FileManager.default.createDirectory(atPath: shadow, withIntermediateDirectories: false)
        let good = try HostileFixtures.build(.good)
        let digest = try sha256Prefix(good)
        try FileManager.default.copyItem(
            atPath: try HostileFixtures.build(.plant), toPath: shadow + "/good-\(digest).so")
        try plugins.copy(good, as: "good.so")
        try server.waitForPlugin("good.so") { $0?["status"] as? String == "loaded" }
        #expect(!FileManager.default.fileExists(atPath: marker), "planted code ran")
        #expect(FileManager.default.fileExists(atPath: shadow + ".verified/good-\(digest).so"))
    }

    @Test func symbolTablesWithEndlessNamesAreCheckedInLinearTime() throws {
        // 20,000 symbols whose names all run into a 4 MB string table without a NUL: reading every
        // name to its end would take minutes.
        var b = [UInt8](repeating: 0, count: 64 + 2 * 56 + 6 * 16 + 20_000 * 24 + 16 + 4_000_000)
        func put(_ at: Int, _ v: UInt64, _ width: Int) {
            for k in 0..<width { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        }
        let phoff = 64, dyn = 64 + 2 * 56, sym = dyn + 6 * 16, hash = sym + 20_000 * 24, str = hash + 16
        b[0...6] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1]
        put(16, 3, 2); put(18, 62, 2); put(20, 1, 4); put(32, UInt64(phoff), 8); put(52, 64, 2); put(54, 56, 2);
        put(56, 2, 2)
        put(phoff, 1, 4); put(phoff + 32, UInt64(b.count), 8); put(phoff + 40, UInt64(b.count), 8)
        put(phoff + 56, 2, 4); put(phoff + 56 + 8, UInt64(dyn), 8); put(phoff + 56 + 16, UInt64(dyn), 8);
        put(phoff + 56 + 32, 96, 8)
        for (k, (tag, value)) in [(5, str), (6, sym), (10, 4_000_000), (4, hash), (1, 0), (0, 0)].enumerated() {
            put(dyn + k * 16, UInt64(tag), 8)
            put(dyn + k * 16 + 8, UInt64(value), 8)
        }
        for s in 0..<20_000 { b[sym + s * 24 + 4] = 0x12; put(sym + s * 24 + 6, 1, 2) }
        put(hash, 1, 4); put(hash + 4, 20_000, 4)
        for k in str..<b.count { b[k] = UInt8(ascii: "A") }
        let dir = ScratchDirectory()
        FileManager.default.createFile(atPath: dir.path + "/names.so", contents: Data(b))
        let (r, rows) = try report(dir.path)
        #expect(r.status == 0)
        #expect(rows["names.so"]?["status"] as? String == "skipped", "\(rows)")
    }

    @Test func aPrivateCopyDirectoryOthersCanWriteIsRefused() throws {
        let dir = try ScratchDirectory().plugins()
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o777)
        let (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("private copy directory") == true, "\(rows)")
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("mode 0777, expected 0700") == true, "\(rows)")
        // A link in its place is refused too.
        let link = ScratchDirectory().path + "-link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: shadow.path)
        defer { unlink(link) }
        let (_, rows2) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": link])
        #expect(
            (rows2["delta.so"]?["reason"] as? String)?.contains("symbolic link or not a directory") == true, "\(rows2)")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give a directory to another user"))
    func aPrivateCopyDirectoryOwnedByAnotherUserIsRefused() throws {
        let dir = try ScratchDirectory().plugins()
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o700)
        chown(shadow.path, 65534, 65534)
        let (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect((rows["delta.so"]?["reason"] as? String)?.contains("owned by uid 65534") == true, "\(rows)")
    }

    @Test func aPlantedPrivateCopyIsNeverLoaded() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o700)
        // First load: learn the private copy's name.
        var (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect(rows["delta.so"]?["status"] as? String == "loaded")
        let copies = try FileManager.default.contentsOfDirectory(atPath: shadow.path).filter { $0.hasSuffix(".so") }
        #expect(copies.count == 1)
        let copy = shadow.path + "/" + (copies.first ?? "")
        // Plant another plugin of the same size under that name, and a victim behind a link.
        var planted = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyFixtureThrowing")))
        let real = try Data(contentsOf: URL(fileURLWithPath: copy))
        planted =
            planted.count >= real.count ? planted.prefix(real.count) : planted + Data(count: real.count - planted.count)
        try planted.write(to: URL(fileURLWithPath: copy))
        (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect(rows["delta.so"]?["status"] as? String == "loaded", "\(rows)")
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: copy)) == real,
            "the planted bytes were replaced by the checked ones")
        let victims = ScratchDirectory()
        let victim = victims.write("victim.txt", "untouched")
        try FileManager.default.removeItem(atPath: copy)
        try FileManager.default.createSymbolicLink(atPath: copy, withDestinationPath: victim)
        (_, rows) = try report(dir.path, environment: ["EDDY_SHADOW_DIR": shadow.path])
        #expect(rows["delta.so"]?["status"] as? String == "loaded", "\(rows)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched")
        var st = stat()
        // Readable by a worker that became --worker-user (only its owner may write it or its directory).
        #expect(lstat(copy, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && st.st_mode & 0o777 == 0o644)
    }
}

/// The first 16 hex digits of a file's SHA-256 (how private copies are named).
func sha256Prefix(_ path: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["sha256sum", path]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return String(text.prefix(16))
}
