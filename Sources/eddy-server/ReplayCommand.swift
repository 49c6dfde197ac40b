import ArgumentParser
@_spi(Host) import Eddy
import EddyCommands
@_spi(Host) import EddyHost
import EddyServer
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run a crash bundle's request again and report whether the crash, hang or memory kill reproduces.",
        discussion: "eddy serve writes a bundle (in $EDDY_BUNDLE_DIR, else ~/.eddy/crash-bundles; its log names "
            + "it) when a worker crashes, overruns --eval-timeout or is killed for memory. The request runs in a "
            + "process of its own (eddy eval) with the bundle's plugin builds — found by hash among the private "
            + "copies, or the files of --plugin-dir — and no quarantine. Exits 0 when it reproduces, 1 when it "
            + "does not, 2 when it cannot run."
    )

    @Argument(help: "The bundle directory.")
    var bundle: String

    @Option(help: "Replay with the plugins in this directory (a fixed build, say) instead of the bundle's builds.")
    var pluginDir: String?

    @Flag(help: "Evaluate in this process, so that a debugger attached to eddy replay stops in the plugin's code.")
    var inProcess = false

    func run() throws {
        let b = try openBundle()
        print("bundle: \(PluginHost.escaped(bundle)) (\(b.kind) at \(b.time))")
        print("  \(PluginHost.escaped(b.crashLine))")
        // A fresh private-copy directory: no quarantine record refuses the builds being replayed.
        let scratch = try Self.scratchDirectory()
        defer { Self.remove(scratch) }
        let plugins = try pluginDirectory(for: b, scratch: scratch)
        Self.warnAboutInput(b)
        let arguments = ["eval"] + b.evalArguments(pluginDir: plugins)
        setenv("EDDY_SHADOW_DIR", scratch + "/copies", 1)
        if inProcess {
            print(
                "replaying in this process (pid \(getpid())): eddy \(Self.shellWords(arguments))"
            )
            Stdout.flush()
            fflush(nil)  // what was printed is out before plugin code can crash this process
            let command = try EvalCommand.parse(Array(arguments.dropFirst()))
            try command.run()
            print("did not reproduce: the evaluation finished")
            throw ExitCode(1)
        }
        print("replaying: eddy \(Self.shellWords(arguments))")
        let outcome = try Self.runIsolated(arguments, timeout: b.evalTimeout, keepOutput: b.kind == "divergence")
        try Self.report(outcome, of: b)
    }

    /// The bundle, with its plugins' names checked before any reaches a path.
    func openBundle() throws -> CrashBundle {
        let b: CrashBundle
        do {
            b = try CrashBundle(path: bundle)
        } catch {
            Stderr.write("eddy: \(error.description)\n")
            throw ExitCode(2)
        }
        // A hostile bundle's plugin name must not reach a path: checked as a manifest's name is.
        for (i, build) in b.plugins.enumerated() where !PluginHost.isValidPluginName(build.name) {
            Stderr.write(
                "eddy: \(PluginHost.escaped(bundle)): plugins[\(i)].name: \(PluginHost.pluginNameRule), found "
                    + "'\(PluginHost.escaped(String(build.name.prefix(140))))'\n")
            throw ExitCode(2)
        }
        return b
    }

    /// The directory the replay loads plugins from: --plugin-dir (saying which of its files are the
    /// bundle's builds), or a copy of the bundle's builds found among the private copies.
    func pluginDirectory(for b: CrashBundle, scratch: String) throws -> String {
        if let pluginDir {
            for build in b.plugins {
                let found = Self.files(in: pluginDir).first { CrashBundle.sha256(ofFile: $0) == build.sha256 }
                print(
                    "  plugin \(PluginHost.escaped(build.name))@\(PluginHost.escaped(build.version)) "
                        + "(\(build.sha256.prefix(16))): "
                        + (found.map { "the same build is \(PluginHost.escaped($0))" }
                            ?? "not in \(PluginHost.escaped(pluginDir)) (replaying with what is there)"))
            }
            return pluginDir
        }
        let plugins = scratch + "/plugins"
        mkdir(plugins, 0o700)
        let copies = PluginHost(session: Session()).shadowDirectory
        for (i, build) in b.plugins.enumerated() {
            let copy = copies + "/" + build.copy
            guard !build.copy.contains("/"), CrashBundle.sha256(ofFile: copy) == build.sha256 else {
                Stderr.write(
                    "eddy: plugin \(PluginHost.escaped(build.name))@\(PluginHost.escaped(build.version)) "
                        + "(sha256 \(build.sha256.prefix(16))) is no longer among the private copies in "
                        + "\(PluginHost.escaped(copies)); give its file with --plugin-dir\n")
                throw ExitCode(2)
            }
            guard
                (try? FileManager.default.copyItem(atPath: copy, toPath: plugins + "/plugin-\(i).so")) != nil
            else {
                Stderr.write("eddy: cannot copy \(PluginHost.escaped(copy)) to \(PluginHost.escaped(plugins))\n")
                throw ExitCode(2)
            }
        }
        return plugins
    }

    /// Warnings about what may make the replay differ from the request: its input changed or cut
    /// short, or a compression goal the bundle could not name.
    static func warnAboutInput(_ b: CrashBundle) {
        if let expected = b.inputSHA256, CrashBundle.sha256(ofFile: b.input) != expected, !b.uploadTruncated {
            print(
                "  warning: \(PluginHost.escaped(b.input)) changed since the bundle was written (its SHA-256 differs)")
        }
        if b.uploadTruncated { print("  warning: the bundle kept only the start of the uploaded body") }
        if let problem = b.compressionProblem, b.inputFormat != "eddy", b.inputFormat != "parquet" {
            // Bundles from before requests named their goal: those servers chose storage compression for a CSV
            // request whenever a loaded plugin had kernels on the engine's encodings.
            print(
                "  warning: the bundle's compression is \(problem); replaying with eddy eval's default (auto), "
                    + "while the server may have encoded the input for storage")
        }
    }

    /// Whether the replay reproduced what the bundle records (exit 1 when not); for a divergence, the
    /// answer the bundle's builds give.
    static func report(_ outcome: (ended: Ended, stderr: String, stdout: String), of b: CrashBundle) throws {
        if b.kind == "divergence" {
            // Nothing crashed: the replay shows what the bundle's builds answer; the server's record (named
            // in the cause) holds the serving build's answer to compare it with.
            print("the answer with the bundle's builds (\(outcome.ended)):")
            print(PluginHost.escaped(String(outcome.stdout.prefix(4000))))
            print("compare it with the other build's answer in the record the cause names")
            if case .exit(0) = outcome.ended { return }
            throw ExitCode(1)
        }
        let reproduced: Bool
        switch (b.kind, outcome.ended) {
        case ("timeout", .timedOut): reproduced = true
        case ("timeout", _): reproduced = false
        case (_, .signal): reproduced = true
        default: reproduced = false
        }
        let lastLine = outcome.stderr.split(separator: "\n").last.map(String.init) ?? ""
        print(
            (reproduced ? "reproduced: " : "did not reproduce: ") + outcome.ended.description
                + (lastLine.isEmpty ? "" : "\n  \(PluginHost.escaped(String(lastLine.prefix(400))))"))
        if !reproduced { throw ExitCode(1) }
    }

    enum Ended: CustomStringConvertible {
        case exit(Int32)
        case signal(Int32)
        case timedOut(Double)

        var description: String {
            switch self {
            case .exit(let s): "the evaluation exited with status \(s)"
            case .signal(let s): "the evaluation crashed with signal \(s) (\(String(cString: strsignal(s))))"
            case .timedOut(let t): "the evaluation did not finish within \(t) s (the bundle's --eval-timeout)"
            }
        }
    }

    /// Runs `eddy ARGUMENTS` in a process of its own, killed after `timeout` seconds.
    /// - Parameter keepOutput: keep the end of its standard output too (else it is discarded).
    static func runIsolated(_ arguments: [String], timeout: Double, keepOutput: Bool = false) throws -> (
        ended: Ended, stderr: String, stdout: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: PluginProbe.selfExecutable().executable)
        process.arguments = arguments
        let output = StderrBuffer()
        let out = Pipe()
        var outputRead: DispatchSemaphore?
        if keepOutput {
            process.standardOutput = out
            outputRead = output.read(out.fileHandleForReading)
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        let err = Pipe()
        process.standardError = err
        let collected = StderrBuffer()
        let errorRead = collected.read(err.fileHandleForReading)
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        let timedOut = process.isRunning
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        // The rest of its output, once the pipes end; bounded, as a process it started may hold them open.
        let settled = DispatchTime.now() + 1
        _ = errorRead.wait(timeout: settled)
        _ = outputRead?.wait(timeout: settled)
        if timedOut { return (.timedOut(timeout), collected.text, output.text) }
        let status = process.terminationStatus
        return (
            process.terminationReason == .uncaughtSignal ? .signal(status) : .exit(status), collected.text, output.text
        )
    }

    /// The child's standard error (or output), at most 64 KiB of its end.
    final class StderrBuffer: @unchecked Sendable {  // guarded by `lock`
        private let lock = NSLock()
        private var data = Data()
        func append(_ d: Data) {
            lock.lock()
            defer { lock.unlock() }
            data.append(d)
            if data.count > 64 << 10 { data = data.suffix(64 << 10) }
        }
        var text: String {
            lock.lock()
            defer { lock.unlock() }
            return String(decoding: data, as: UTF8.self)
        }

        /// Reads `handle` into this buffer until its end, on a thread of its own with blocking reads; the
        /// semaphore is signalled at the end. Not `readabilityHandler`: on Linux that is a libdispatch read
        /// source, and the hangup when the child exits races libdispatch's manager thread against the
        /// source's teardown over freed memory (swift-corelibs-libdispatch#949), a crash of this process.
        func read(_ handle: FileHandle) -> DispatchSemaphore {
            let done = DispatchSemaphore(value: 0)
            Thread {
                var chunk = [UInt8](repeating: 0, count: 16 << 10)
                while true {
                    let n = chunk.withUnsafeMutableBytes { Glibc.read(handle.fileDescriptor, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { break }
                    self.append(Data(chunk[0..<n]))
                }
                done.signal()
            }.start()
            return done
        }
    }

    static func files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter(PluginHost.isCandidate)
            .sorted().map { directory + "/" + $0 }
    }

    static func scratchDirectory() throws -> String {
        let tmp = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        var template = Array("\(tmp)/eddy-replay-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            Stderr.write("eddy: cannot make a scratch directory in \(tmp)\n")
            throw ExitCode(2)
        }
        return String(cString: made)
    }

    static func remove(_ path: String) { try? FileManager.default.removeItem(atPath: path) }
}

extension ReplayCommand {
    /// The command line as a shell would take it back: words of plain characters as they are, others
    /// in single quotes; control characters shown escaped (a bundle's values are a request's).
    static func shellWords(_ words: [String]) -> String {
        let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=:,@%+-".unicodeScalars)
        return words.map { word in
            if !word.isEmpty, word.unicodeScalars.allSatisfy(plain.contains) { return word }
            return "'" + PluginHost.escaped(word).replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}
