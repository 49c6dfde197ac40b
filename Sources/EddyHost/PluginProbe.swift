import CEddyHost
import EddyIO

#if canImport(Glibc)
    import Glibc
#endif

/// Loads a plugin file in a child process before the host maps it: the child runs the same checks,
/// `dlopen`, handshake and registration, and must then write an explicit success record to a pipe.
/// Anything else — a signal, an `exit()` from plugin code, no answer within the timeout — refuses the
/// file, and the host carries on without ever mapping it.
public struct PluginProbe: Sendable {
    /// The program to run, with `--report-fd 3 --fd 4 --parent PID FILE` appended to `arguments`.
    public let executable: String
    public let arguments: [String]
    /// Seconds the child may take to load and register the plugin before it is killed and the plugin
    /// refused as hung.
    public let timeout: Double
    /// Seconds more it may take once it says it is verifying the plugin's kernels (``verifyingMark``):
    /// a plugin that hangs in registration is refused after ``timeout``, not after the verification's
    /// allowance too.
    public let verifyTimeout: Double

    public init(executable: String, arguments: [String], timeout: Double = 10, verifyTimeout: Double = 0) {
        self.executable = executable
        self.arguments = arguments
        self.timeout = timeout
        self.verifyTimeout = verifyTimeout
    }

    /// This process's own executable with `probe-plugin` (the `eddy` CLI's hidden subcommand).
    public static func selfExecutable(
        timeout: Double = 10, verifyTimeout: Double = 0, extraArguments: [String] = []
    ) -> PluginProbe {
        PluginProbe(
            executable: OwnExecutable.path ?? "eddy", arguments: ["probe-plugin"] + extraArguments, timeout: timeout,
            verifyTimeout: verifyTimeout)
    }

    /// The descriptor on which the child writes its record.
    public static let reportDescriptor: Int32 = 3
    /// The descriptor on which the child finds the plugin file (a verified private copy).
    public static let fileDescriptor: Int32 = 4

    /// What the child reports: `ok KERNELS NAME VERSION VERIFIED` (tab-separated; VERIFIED is how many
    /// inputs `--verify` checked, `-` when it did not run) after a successful load, `rejected REASON`
    /// otherwise.
    public enum Record {
        public static func success(
            kernels: Int, name: String, version: String, verified: VerifiedInputs?, uses: PluginUses? = nil
        ) -> String {
            "ok \(kernels)\t\(clean(name))\t\(clean(version))\t\(verified?.field ?? "-")\t\(uses?.field ?? "-")\n"
        }
        /// Escaped, so no tab or newline can break the record's fields.
        static func clean(_ s: String) -> String { PluginHost.escaped(s) }
        /// `rejected REASON`, then tab-separated the plugin's name and version when its manifest was read.
        public static func rejection(_ reason: String, plugin: String = "", version: String = "") -> String {
            "rejected " + PluginHost.escaped(reason)
                + (plugin.isEmpty ? "" : "\t" + clean(plugin) + "\t" + clean(version)) + "\n"
        }
    }

    public enum Outcome: Equatable {
        /// The child loaded it: the plugin's name and version from its manifest, and how many inputs
        /// it verified the plugin on (nil: not verified).
        case passed(kernels: Int, name: String, version: String, verified: VerifiedInputs?, uses: PluginUses?)
        /// The child refused the file itself (its reason is the host's reason).
        case rejected(String, plugin: String, version: String)
        /// The child crashed, exited without a record, or hung.
        case failed(String)
    }

    /// Runs the child on the plugin file open on `descriptor` (reported as `path`) and waits for its
    /// record, at most `timeout` seconds. The child must then also exit cleanly: a plugin whose
    /// destructors crash at exit is refused here rather than crashing the host when it exits.
    public func check(descriptor: Int32, path: String) -> Outcome {
        var fds: [Int32] = [-1, -1]
        guard eddy_pipe_cloexec(&fds) == 0 else { return .failed("could not start the probe process: \(errnoText())") }
        defer { close(fds[0]) }
        // The child's record comes on descriptor 3, the plugin file is its descriptor 4; its own
        // output is not the host's; its own process group, so that a timeout kills whatever it started.
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(
                executable,
                arguments + [
                    "--report-fd", String(Self.reportDescriptor), "--fd", String(Self.fileDescriptor),
                    "--parent", String(getpid()), path,
                ], descriptors: [(fds[1], Self.reportDescriptor), (descriptor, Self.fileDescriptor)], quiet: true,
                newProcessGroup: true)
            close(fds[1])
        } catch {
            close(fds[1])
            return .failed("could not start the probe process: \(error)")
        }
        var deadline = now() + timeout
        let (record, timedOut) = Self.readRecord(from: fds[0], deadline: &deadline, verifyTimeout: verifyTimeout)
        var hung = timedOut
        var status: Int32 = 0
        if !hung {
            // The pipe closed: the child is exiting (or closed it and carries on; bounded all the same).
            hung = !Self.waitForExit(pid, deadline: deadline, status: &status)
        }
        if hung {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            ChildProcess.reaped(pid)
            let verifying = Self.markedVerifying(record)
            return .failed(
                verifying
                    ? "hung while its kernels were verified: no result within "
                        + "\(Self.seconds(timeout + verifyTimeout)) s (--probe-timeout and twice "
                        + "--verify-time-limit); the probe process was killed"
                    : "hung while loading, registering or verifying: no result within \(Self.seconds(timeout)) s "
                        + "(--probe-timeout); the probe process was killed")
        }
        ChildProcess.reaped(pid)
        return Self.outcome(record: record, status: status)
    }

    /// Whether the record so far starts with the line saying verification began.
    static func markedVerifying(_ record: [UInt8]) -> Bool {
        record.starts(with: Array(verifyingMark.utf8))
    }

    /// The child's record, read until it closes the pipe (it exits), bounded in time and size; hung
    /// when the deadline passes first. The deadline moves `verifyTimeout` seconds on, once, when the
    /// child says it is verifying.
    static func readRecord(from fd: Int32, deadline: inout Double, verifyTimeout: Double = 0) -> (
        record: [UInt8], hung: Bool
    ) {
        var record: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var extended = false
        while true {
            if !extended, verifyTimeout > 0, markedVerifying(record) {
                extended = true
                deadline = max(deadline, now() + verifyTimeout)
            }
            let remaining = deadline - now()
            if remaining <= 0 {
                return (record, true)
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(min(remaining * 1000 + 1, 1000)))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return (record, false) }
            if record.count < 65_536 { record.append(contentsOf: chunk[0..<n]) }
        }
    }

    /// Waits for the child to exit, until `deadline`; false when it has not by then.
    static func waitForExit(_ pid: pid_t, deadline: Double, status: inout Int32) -> Bool {
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { return true }
            if r < 0 && errno != EINTR { return true }
            if now() >= deadline { return false }
            usleep(2_000)
        }
    }

    /// Whether a failure says something about the plugin's bytes that the next probe would find again
    /// (a crash, a hang, plugin code exiting), not about the moment: a child killed from outside
    /// (SIGKILL: the OOM killer, an administrator), one that could not start, or a hand-off that failed
    /// (the wordings ``check(descriptor:path:)`` and ``outcome(record:status:)`` use).
    static func failureLasts(_ reason: String) -> Bool {
        !mentions(reason, "killed by signal \(SIGKILL),") && !reason.utf8.starts(with: "could not start".utf8)
            && !mentions(reason, "before reporting anything")
    }

    /// Whether `part` occurs in `text` (as bytes).
    static func mentions(_ text: String, _ part: String) -> Bool {
        let (hay, needle) = (Array(text.utf8), Array(part.utf8))
        guard hay.count >= needle.count else { return false }
        return (0...(hay.count - needle.count)).contains { hay[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    /// How the child marks, before any report, that the plugin registered and its kernels are about to be
    /// verified (`verifying NAME`): a crash after it is the plugin's code crashing on verification's inputs.
    public static let verifyingMark = "verifying "
    /// How a crash of the plugin's code on verification's inputs is worded (see ``crashedInVerification(_:)``).
    static let crashWhileVerified = "crashed in the probe process while its kernels were verified"

    /// Whether a failure is the plugin's code crashing on verification's inputs: as telling as a wrong
    /// answer (the same code runs on a host's queries, several batches at once), so it is kept as one.
    public static func crashedInVerification(_ reason: String) -> Bool {
        reason.utf8.starts(with: crashWhileVerified.utf8)
    }

    /// What the child's record and exit status say about the plugin.
    static func outcome(record: [UInt8], status: Int32) -> Outcome {
        let signal = status & 0x7f
        let text = String(decoding: record, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let verifying = lines.first?.hasPrefix(verifyingMark) == true
        // The report: the first line that is not the mark.
        let line = lines.first { !$0.hasPrefix(verifyingMark) } ?? ""
        if signal != 0 && signal != 0x7f {
            let name = strsignal(signal).map { String(cString: $0) } ?? "signal"
            if verifying, !line.hasPrefix("ok "), !line.hasPrefix("rejected "), signal != SIGKILL {
                return .failed(
                    "\(crashWhileVerified) (killed by signal \(signal), \(name)); not loaded into the host")
            }
            let when = line.hasPrefix("ok ") ? " at exit, after registering (in a destructor of the plugin)" : ""
            // Swift ends a process on a runtime trap with SIGILL (x86) or SIGTRAP (ARM): say what that means.
            let trap =
                signal == SIGILL || signal == SIGTRAP
                ? " — a Swift runtime trap: a force-unwrap of nil, a failed precondition or fatalError, an "
                    + "arithmetic overflow or an index out of range in the plugin's code" : ""
            return .failed(
                "crashed in the probe process\(when) (killed by signal \(signal), \(name)\(trap)); not loaded into the host"
            )
        }
        let exitStatus = (status >> 8) & 0xff
        if exitStatus == 0, line.hasPrefix("ok ") {
            let fields = line.dropFirst(3).split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if fields.count == 4 || fields.count == 5, let kernels = Int(fields[0]) {
                let verified = VerifiedInputs(field: fields[3])
                let uses = fields.count == 5 ? PluginUses(field: fields[4]) : nil
                return .passed(kernels: kernels, name: fields[1], version: fields[2], verified: verified, uses: uses)
            }
        }
        if line.hasPrefix("rejected ") {
            let f = line.dropFirst(9).split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return .rejected(f.first ?? "", plugin: f.count == 3 ? f[1] : "", version: f.count == 3 ? f[2] : "")
        }
        if record.isEmpty, exitStatus == 126 || exitStatus == 127 {
            // What a failed hand-off exits with: `eddy` starts the probe as `eddy-server` beside it.
            return .failed(
                "the probe process exited with status \(exitStatus) before reporting anything: eddy-server, "
                    + "which runs the probe beside eddy, is \(exitStatus == 127 ? "missing" : "not trusted or not runnable") "
                    + "(`eddy plugins` says why), or plugin code exited the process; not loaded into the host")
        }
        return .failed(
            "the probe process exited with status \(exitStatus) while loading it, without reporting success "
                + "(plugin code must not exit the process); not loaded into the host")
    }

    /// Installs the crash report of this process: a crash while plugin code runs prints one line
    /// naming the plugin and kernel, and `hint` (how to run without it).
    public static func installCrashReport(hint: String) {
        _ = eddy_install_crash_report(hint)
    }

    /// Tunes the process's allocator for batches: freed blocks stay in the heap and are served again,
    /// instead of going back to the kernel and faulting in zeroed pages for every batch.
    public static func keepFreedMemory() {
        eddy_keep_freed_memory()
    }

    /// Called first in the probe child: die with the parent, so a killed host never leaves a probe
    /// spinning. False when the parent is already gone.
    public static func bindToParent(_ parent: Int32) -> Bool {
        eddy_die_with_parent(parent) == 0
    }

    static func seconds(_ t: Double) -> String {
        t == t.rounded() ? String(Int(t)) : String(t)
    }
}
