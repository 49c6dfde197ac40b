@_spi(Host) import EddyHost
import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Plugins that try, while registering, one thing confinement refuses (Tests/Fixtures/HostileC/confined.c),
/// one build per attempt, built once per test run.
enum ConfinedFixtures {
    static let attempts = [
        "kill-parent", "kill-other", "read-secret", "read-token", "write-outside", "unlink-records", "fork", "setsid",
        "exec", "tcp", "rlimit", "chmod", "renice", "affinity", "ioprio", "stderr", "proc-memory",
    ]

    /// Attempts refused in `eddy serve` only: its workers run as another user (the tests run as root) and
    /// it is not dumpable; `eddy eval` runs plugin code as its caller, who may read their own processes'
    /// environments (Landlock leaves ptrace read access open).
    static let serverOnly = ["proc-environ"]

    private static let lock = NSLock()
    nonisolated(unsafe) private static var built: [String: String] = [:]  // guarded by `lock`

    /// The plugin file of `attempt` (one of ``attempts``).
    static func build(_ attempt: String) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let path = built[attempt] { return path }
        let number = ((attempts + serverOnly).firstIndex(of: attempt) ?? 0) + 1
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/HostileC/confined.c").path
        let out = NSTemporaryDirectory() + "eddy-confined-\(getpid())-\(attempt).so"
        try compile(
            [
                "cc", "-shared", "-fPIC", "-DATTEMPT=\(number)", "-DATTEMPT_NAME=\"\(attempt)\"", source,
                "-L" + PluginFiles.buildDirectory, "-Wl,--no-as-needed", "-lEddy", "-o", out,
            ], naming: "confined.c (\(attempt))")
        built[attempt] = out
        return out
    }

    /// A plugin directory holding the builds of `attempts`.
    static func directory(_ attempts: [String]) throws -> ScratchDirectory {
        let dir = ScratchDirectory()
        for attempt in attempts {
            try FileManager.default.copyItem(atPath: try build(attempt), toPath: dir.path + "/lib\(attempt).so")
        }
        return dir
    }
}

/// What the hostile plugins aim at: a secret and a token file outside every directory the host reads,
/// a path to create, another process, a loopback listener, and the private-copy directory's records.
final class HostileTargets {
    let root = ScratchDirectory()
    let copies: String
    let secret: String
    let token: String
    let written: String
    let bystander = Process()
    let listener: Int32
    let listenerPort: Int

    init() throws {
        copies = root.path + "/copies"
        mkdir(copies, 0o700)
        secret = root.write("shadow", "root:$6$\(secretMarker):19000:0:99999:7:::\n")
        chmod(secret, 0o600)
        // A token file as `--token-file` keeps one (the server reads it: private, and long enough).
        token = root.write("token", String(repeating: "7", count: 64) + "\n")
        chmod(token, 0o600)
        written = root.path + "/written-by-plugin"
        // The records a plugin must not remove (a quarantine line of another build, a probe verdict).
        FileManager.default.createFile(
            atPath: copies + "/quarantine.tsv", contents: Data("\(String(repeating: "0", count: 64))\t0\tx@1\tx\n".utf8)
        )
        FileManager.default.createFile(atPath: copies + "/probed.tsv", contents: Data())
        chmod(copies + "/quarantine.tsv", 0o600)
        chmod(copies + "/probed.tsv", 0o600)
        bystander.executableURL = URL(fileURLWithPath: "/bin/sleep")
        bystander.arguments = ["300"]
        // Not the test's output: a bystander left behind would hold swift test's pipe open until it ends.
        bystander.standardOutput = FileHandle.nullDevice
        bystander.standardError = FileHandle.nullDevice
        try bystander.run()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        listener = fd
        guard bound else { throw EddyTestError("cannot listen on loopback") }
        listenerPort = Int(UInt16(bigEndian: addr.sin_port))
        _ = fcntl(listener, F_SETFL, O_NONBLOCK)
    }

    deinit {
        // terminate() left it running here (three bystanders outlived their tests): kill it and wait.
        if bystander.isRunning {
            kill(bystander.processIdentifier, SIGKILL)
            bystander.waitUntilExit()
        }
        close(listener)
    }

    /// What the plugins read their targets from (a worker's environment is its supervisor's).
    func environment(signal: Int32) -> [String: String] {
        [
            "EDDY_SHADOW_DIR": copies, "EDDY_HOSTILE_SECRET": secret, "EDDY_HOSTILE_TOKEN": token,
            "EDDY_HOSTILE_WRITE": written, "EDDY_HOSTILE_PID": String(bystander.processIdentifier),
            "EDDY_HOSTILE_PORT": String(listenerPort), "EDDY_HOSTILE_SIGNAL": String(signal),
        ]
    }

    /// The damage a plugin that was not refused would have left, one line each (empty: none).
    var damage: [String] {
        var found: [String] = []
        if !bystander.isRunning { found.append("the bystander process was killed") }
        if FileManager.default.fileExists(atPath: written) { found.append("a file was created outside") }
        for record in ["quarantine.tsv", "probed.tsv"]
        where !FileManager.default.fileExists(atPath: copies + "/" + record) {
            found.append("\(record) was removed")
        }
        let accepted = accept(listener, nil, nil)
        if accepted >= 0 {
            close(accepted)
            found.append("a TCP connection reached the loopback listener")
        }
        return found
    }
}

/// The kernel here offers everything full confinement takes (Landlock ABI 6 and seccomp).
let fullConfinementOffered = Confinement.expected(user: .init(name: "test", uid: 65534, gid: 65534)).level == .full

@Suite(.serialized) struct ConfinementTests {
    /// Lines "hostile-NAME: refused: …" in `text`, by attempt, and any "NOT REFUSED" line.
    static func refusals(_ text: String) -> (refused: Set<String>, notRefused: [String]) {
        var refused = Set<String>()
        var notRefused: [String] = []
        for line in text.split(separator: "\n") {
            guard let start = line.range(of: "hostile-") else { continue }
            let rest = line[start.upperBound...]
            if rest.contains("NOT REFUSED") { notRefused.append(String(line)) }
            if let colon = rest.range(of: ": refused: ") { refused.insert(String(rest[..<colon.lowerBound])) }
        }
        return (refused, notRefused)
    }

    @Test(.enabled(if: fullConfinementOffered))
    func everyHostileAttemptIsRefusedInTheProbeAndTheWorkersAndTheServerLives() throws {
        let targets = try HostileTargets()
        let attempts = ConfinedFixtures.attempts + ConfinedFixtures.serverOnly
        let plugins = try ConfinedFixtures.directory(attempts)
        let server = try Server(
            pluginDir: plugins.path, arguments: ["--token-file", targets.token, "--workers", "2"],
            environment: targets.environment(signal: SIGKILL))
        defer { server.stop() }
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 300)
        let (status, health) = try server.request("GET", "/health")
        #expect(status == 200 && health["confinement"] as? String == "full", "\(health)")
        // Each build registered in its probe process: its attempt was refused there.
        let (_, listing) = try server.request("GET", "/plugins")
        #expect(listing["confinement"] as? String == "full")
        let rows = listing["files"] as? [[String: Any]] ?? []
        #expect(rows.count == attempts.count)
        for row in rows {
            #expect(row["status"] as? String == "loaded", "\(row)")
        }
        // Each worker loads every build (registering again) before it evaluates: the requests succeed,
        // the next one too, and the answers are right.
        for _ in 0..<3 {
            let (s, body) = try server.eval(csv, select: "count(*)")
            #expect(s == 200, "\(body)")
            #expect((body["result"] as? [[String: Any]])?.first?["count(*)"] as? Int == 300, "\(body)")
        }
        #expect(server.process.isRunning)
        // The workers' standard error is the server's: every attempt was refused there, with EPERM or EACCES.
        let (refused, notRefused) = Self.refusals(server.logText)
        #expect(notRefused.isEmpty, "\(notRefused)")
        #expect(refused == Set(attempts), "\(server.logText)")
        #expect(targets.damage.isEmpty, "\(targets.damage)")
        // A worker's standard error reaches the log a line at a time, prefixed and escaped: the line the
        // stderr attempt forged (with a screen-clearing escape) cannot pass for the server's.
        let forged = server.logText.split(separator: "\n").filter { $0.contains("FORGED-LOG-LINE") }
        #expect(!forged.isEmpty, "\(server.logText)")
        for line in forged {
            #expect(line.hasPrefix("[worker ") && !line.contains("\u{1b}") && line.contains("\\u{1b}"), "\(line)")
        }
        #expect(try String(contentsOfFile: targets.secret, encoding: .utf8).contains(secretMarker))
    }

    @Test(.enabled(if: fullConfinementOffered))
    func evalConfinesItselfBeforeThePluginsCodeRunsAndNoConfineDoesNot() throws {
        let targets = try HostileTargets()
        let plugins = try ConfinedFixtures.directory(ConfinedFixtures.attempts)
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 300)
        // These builds register nothing, so a query maps none of them (no kernel of theirs could run):
        // their code does not run in `eddy eval` at all.
        let skipped = try Eddy.run(
            ["eval", csv, "--plugin-dir", plugins.path, "--select", "count(fare)", "--format", "csv", "--explain"],
            environment: targets.environment(signal: SIGCONT))
        #expect(skipped.status == 0 && skipped.stdout == "count(fare)\n300\n", "\(skipped.stderr)")
        #expect(Self.refusals(skipped.stderr).refused.isEmpty && Self.refusals(skipped.stderr).notRefused.isEmpty)
        #expect(skipped.stderr.contains("== plugins not loaded for this query"), "\(skipped.stderr)")
        // `eddy plugins` maps every build, as `eval` maps the ones its query uses (the same loader):
        // confined first. SIGCONT: were the attempt on this test process let through, it would do no harm.
        let r = try Eddy.run(
            ["plugins", "--plugin-dir", plugins.path], environment: targets.environment(signal: SIGCONT))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("17 loaded"), "\(r.stdout)")
        let (refused, notRefused) = Self.refusals(r.stderr)
        #expect(notRefused.isEmpty, "\(notRefused)")
        #expect(refused == Set(ConfinedFixtures.attempts), "\(r.stderr)")
        #expect(!r.stderr.contains("rejected") && !r.stderr.contains("confinement"), "\(r.stderr)")
        #expect(targets.damage.isEmpty, "\(targets.damage)")

        // The same plugin under --no-confine: its code runs with this user's rights, and the file appears.
        let writer = try ConfinedFixtures.directory(["write-outside"])
        let open = try Eddy.run(
            ["eval", csv, "--plugin-dir", writer.path, "--select", "count(fare)", "--format", "csv", "--no-confine"],
            environment: targets.environment(signal: SIGCONT))
        #expect(open.stderr.contains("hostile-write-outside: NOT REFUSED"), "\(open.stderr)")
        #expect(FileManager.default.fileExists(atPath: targets.written))
    }

    @Test(.enabled(if: fullConfinementOffered))
    func convertConfinesItselfAndACommitterPutsTheFileInPlace() throws {
        let targets = try HostileTargets()
        let plugins = try ConfinedFixtures.directory(ConfinedFixtures.attempts)
        for file in try FileManager.default.contentsOfDirectory(atPath: PluginFiles.buildDirectory)
        where file.hasPrefix("libEddyPlugin") && file.hasSuffix(".so") {
            try FileManager.default.copyItem(
                atPath: PluginFiles.buildDirectory + "/" + file, toPath: plugins.path + "/" + file)
        }
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 300)
        let out = work.path + "/trips.eddy"
        // Twice: the second run replaces the first run's file (a rename over it, by the committer).
        for _ in 0..<2 {
            let r = try Eddy.run(
                ["convert", csv, out, "--plugin-dir", plugins.path], environment: targets.environment(signal: SIGCONT))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.hasPrefix("wrote \(out): 300 rows"), "\(r.stdout)")
            let (refused, notRefused) = Self.refusals(r.stderr)
            #expect(notRefused.isEmpty, "\(notRefused)")
            #expect(refused == Set(ConfinedFixtures.attempts), "\(r.stderr)")
            #expect(!r.stderr.contains("rejected") && !r.stderr.contains("confinement"), "\(r.stderr)")
            #expect(targets.damage.isEmpty, "\(targets.damage)")
        }
        // The file is whole, written with the delta plugin's encoding, and answers as the CSV does.
        let inspect = try Eddy.run(["inspect", out, "--plugin-dir", plugins.path])
        #expect(inspect.stdout.contains("ext.delta"), "\(inspect.stdout)")
        let viaFile = try Eddy.run(
            ["eval", out, "--plugin-dir", plugins.path, "--select", "count(*), sum(fare)", "--format", "csv"],
            environment: targets.environment(signal: SIGCONT))
        let viaCSV = try Eddy.run(["eval", csv, "--select", "count(*), sum(fare)", "--format", "csv"])
        #expect(viaFile.status == 0 && viaFile.stdout == viaCSV.stdout, "\(viaFile.stdout) \(viaFile.stderr)")
        // A conversion that fails leaves no file and no temporary behind (the committer removes it).
        let bad = work.write("bad.csv", "a,b\n1,2\n3\n")
        let failed = try Eddy.run(
            ["convert", bad, work.path + "/bad.eddy", "--plugin-dir", plugins.path],
            environment: targets.environment(signal: SIGCONT))
        #expect(failed.status == 1 && failed.stderr.contains("expected 2 fields"), "\(failed.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: work.path).filter { $0.hasPrefix("bad.eddy") }
        #expect(left.isEmpty, "\(left)")
        // --no-confine: the plugin's code runs with this user's rights, and the file appears.
        let writer = try ConfinedFixtures.directory(["write-outside"])
        let open = try Eddy.run(
            ["convert", csv, work.path + "/open.eddy", "--plugin-dir", writer.path, "--no-confine"],
            environment: targets.environment(signal: SIGCONT))
        #expect(open.stderr.contains("hostile-write-outside: NOT REFUSED"), "\(open.stderr)")
        #expect(FileManager.default.fileExists(atPath: targets.written))
    }

    @Test(.enabled(if: fullConfinementOffered))
    func withoutLandlockTheServerSaysWhatIsMissingAndSeccompStillRefuses() throws {
        let targets = try HostileTargets()
        let plugins = try ConfinedFixtures.directory(["fork", "exec", "tcp", "kill-parent", "chmod", "stderr"])
        var environment = targets.environment(signal: SIGKILL)
        environment[Confinement.testHook] = "no-landlock"
        let server = try Server(pluginDir: plugins.path, arguments: ["--workers", "1"], environment: environment)
        defer { server.stop() }
        let (_, health) = try server.request("GET", "/health")
        let level = health["confinement"] as? String ?? ""
        #expect(level.hasPrefix("partial (missing: landlock: not offered"), "\(health)")
        let (_, listing) = try server.request("GET", "/plugins")
        #expect(listing["confinement"] as? String == level)
        #expect(server.logText.contains("plugin code runs without full confinement"), "\(server.logText)")
        let work = ScratchDirectory()
        let (s, body) = try server.eval(tripsCSV(work, rows: 300), select: "count(*)")
        #expect(s == 200, "\(body)")
        let (refused, notRefused) = Self.refusals(server.logText)
        #expect(
            notRefused.isEmpty && refused == ["fork", "exec", "tcp", "kill-parent", "chmod", "stderr"],
            "\(server.logText)")
        #expect(server.process.isRunning)

        // eddy plugins --json says what eval would run plugin code with.
        let report = try Eddy.run(["plugins", "--json", "--plugin-dir", plugins.path], environment: environment)
        #expect(
            report.stdout.contains("\"confinement\": \"partial (missing: landlock: not offered"), "\(report.stdout)")
        let full = try Eddy.run(["plugins", "--json", "--plugin-dir", plugins.path])
        #expect(full.stdout.contains("\"confinement\": \"full\""), "\(full.stdout)")
    }

    @Test func requireConfinementRefusesToStartWithoutFullConfinement() throws {
        let plugins = ScratchDirectory()
        let r = try Eddy.run(
            ["serve", "--port", "0", "--plugin-dir", plugins.path, "--workers", "1", "--require-confinement"],
            environment: [Confinement.testHook: "no-landlock"], launcher: ["/usr/bin/timeout", "60"])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(
            r.stderr.contains("--require-confinement: plugin code would run with confinement partial"), "\(r.stderr)")
        let inProcess = try Eddy.run(
            ["serve", "--port", "0", "--plugin-dir", plugins.path, "--workers", "0", "--require-confinement"],
            launcher: ["/usr/bin/timeout", "60"])
        #expect(inProcess.status == 2, "\(inProcess.stderr)")
        #expect(inProcess.stderr.contains("--workers 0"), "\(inProcess.stderr)")
    }

    @Test func theTokenAndTheServersEnvironmentAreInNoWorkersCommandLineOrEnvironment() throws {
        let plugins = ScratchDirectory()
        // What an operator exported for something else: no worker (plugin code) gets it.
        let secret = "operator-secret-\(UInt64.random(in: 1...UInt64.max))"
        let server = try Server(
            pluginDir: plugins.path, arguments: ["--workers", "2"], environment: ["OPERATOR_CREDENTIAL": secret])
        defer { server.stop() }
        let token = try #require(server.token)
        let pid = server.process.processIdentifier
        // The server's children: processes whose parent (field 4 of /proc/N/stat) it is.
        let workers = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap {
            name -> Int32? in
            guard let n = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(n)/stat", encoding: .utf8),
                let end = stat.range(of: ") ", options: .backwards)
            else { return nil }
            let fields = stat[end.upperBound...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? n : nil
        }
        #expect(workers.count >= 2, "\(workers)")
        for worker in workers {
            for file in ["cmdline", "environ"] {
                let bytes = FileManager.default.contents(atPath: "/proc/\(worker)/\(file)") ?? Data()
                let text = String(decoding: bytes, as: UTF8.self)
                #expect(!text.contains(token), "worker \(worker) \(file)")
                #expect(!text.contains(secret), "worker \(worker) \(file)")
            }
        }
    }
}
