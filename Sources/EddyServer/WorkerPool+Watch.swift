import CDispatch
import CEddyHost
import CNIOLinux
import Dispatch
@_spi(Host) import EddyHost
import EddyIO
import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Watching idle workers, and ending what plugins leave behind.
extension WorkerPool {
    /// An idle worker using more than this share of a core over ``cpuWindow`` seconds is running code
    /// nobody asked for (a thread a kernel left spinning): it is replaced. An idle worker uses next to
    /// nothing; a quarter (not half) still finds a spinner that shares two busy cores with a test suite.
    static let idleCPUShare = 0.25
    static let cpuWindow = 2.0

    /// Starts a thread that, once a second, measures the CPU time of each idle worker (utime + stime
    /// in /proc/PID/stat, every thread of it and of the processes it started) over its idle spell,
    /// replaces one that keeps a core busy while it has no request, or that died while it had none —
    /// calling `charge` with what happened and the builds charged with it (see ``suspects(_:)``) — and
    /// ends processes plugins left behind (see `sweepOrphans`).
    func watch(charge: @escaping @Sendable (_ cause: String, _ suspects: [WorkerRequest.Plugin]) -> Void) {
        guard !watching.exchange(true, ordering: .relaxed) else { return }
        self.charge.withLock { $0 = charge }
        let ticksPerSecond = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        Thread.detachNewThread { [self] in
            // pid -> (answered requests, CPU ticks, time) at the start of the current window.
            var windows: [pid_t: (served: Int, ticks: Int, time: Double)] = [:]
            while !stopping.load(ordering: .relaxed) {
                usleep(1_000_000)
                if stopping.load(ordering: .relaxed) { break }
                reapDeadIdle()
                let workers = idle.withLock { $0 }
                var seen: [pid_t: (served: Int, ticks: Int, time: Double)] = [:]
                let trees = Self.treeTicks(of: Set(workers.map(\.pid)))
                for w in workers {
                    guard let ticks = trees[w.pid] else { continue }
                    let t = now()
                    guard let start = windows[w.pid], start.served == w.served else {
                        seen[w.pid] = (w.served, ticks, t)
                        continue
                    }
                    let elapsed = t - start.time
                    guard elapsed >= Self.cpuWindow else {
                        seen[w.pid] = start
                        continue
                    }
                    let used = Double(ticks - start.ticks) / ticksPerSecond
                    seen[w.pid] = (w.served, ticks, t)
                    guard used > Self.idleCPUShare * elapsed, let spinning = takeIdle(w.pid, served: w.served) else {
                        continue
                    }
                    let suspects = suspects(spinning)
                    _ = killAndReap(spinning)
                    _ = replace(spinning, outcome: .cancelled)
                    seen[w.pid] = nil
                    charge(
                        "an idle worker kept \(Int((100 * used / elapsed).rounded()))% of a core busy for "
                            + "\(Int(elapsed.rounded())) s while it had no request (a thread left running?)", suspects)
                }
                windows = seen
                _ = sweepOrphans()
            }
        }
    }

    /// Reaps and replaces the idle workers that died (a thread a plugin left crashed while the worker
    /// had no request, or something killed it from outside); a crash is charged to the builds whose
    /// code ran in the worker (see ``suspects(_:)``), through the watch's `charge`.
    func reapDeadIdle() {
        let dead = idle.withLock { workers -> [Worker] in
            var gone: [Worker] = []
            workers.removeAll { w in
                guard eddy_has_exited(w.pid) == 1 else { return false }
                gone.append(w)
                return true
            }
            return gone
        }
        for w in dead {
            let site = site(w)
            let cause = Self.describe(killAndReap(w))
            let started = site.flatMap { Self.startedBy($0, among: w.loaded) }
            let suspects = Self.isCrash(cause) ? started.map { [$0] } ?? suspects(w) : []
            _ = replace(w, outcome: .cancelled)
            if !suspects.isEmpty, let charge = charge.withLock({ $0 }) {
                charge(
                    started != nil
                        ? "an idle worker \(cause) on \(site ?? "")" : "an idle worker \(cause) outside plugin code",
                    suspects)
            }
        }
    }

    /// Takes the idle worker `pid` out of the pool if it is still idle in the same spell.
    func takeIdle(_ pid: pid_t, served: Int) -> Worker? {
        idle.withLock { workers in
            guard let k = workers.firstIndex(where: { $0.pid == pid && $0.served == served }) else { return nil }
            let w = workers.remove(at: k)
            busy.withLock { _ = $0.insert(w.pid) }
            return w
        }
    }

    /// The CPU ticks (utime + stime, every thread) of each of `roots` and all its live descendants —
    /// a process a kernel started counts for its worker, in the worker's group or out of it.
    static func treeTicks(of roots: Set<pid_t>) -> [pid_t: Int] {
        guard !roots.isEmpty, let dir = opendir("/proc") else { return [:] }
        defer { closedir(dir) }
        var parent: [pid_t: pid_t] = [:]
        var ticks: [pid_t: Int] = [:]
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = pid_t(name), let stat = processStat(pid) else { continue }
            parent[pid] = stat.parent
            ticks[pid] = stat.cpuTicks
        }
        var total: [pid_t: Int] = [:]
        for (pid, own) in ticks {
            // Up the parent chain to a root, if any (bounded: a chain cannot be longer than the table).
            var at = pid
            for _ in 0...parent.count {
                if roots.contains(at) {
                    total[at, default: 0] &+= own
                    break
                }
                guard let up = parent[at], up > 1, up != at else { break }
                at = up
            }
        }
        return total
    }

    /// The fields of /proc/PID/stat used here.
    struct ProcessStat {
        var parent: pid_t
        var group: pid_t
        var session: pid_t
        var cpuTicks: Int
    }

    static func processStat(_ pid: pid_t) -> ProcessStat? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        // The command name (field 2) is in parentheses and may hold spaces or ')': fields resume after
        // the last ')'.
        guard let close = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buffer[(close + 1)..<n].split(separator: UInt8(ascii: " ")).map {
            String(decoding: $0, as: UTF8.self)
        }
        // state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt, majflt, cmajflt, utime, stime
        guard fields.count > 12, let parent = pid_t(fields[1]), let group = pid_t(fields[2]),
            let session = pid_t(fields[3]), let user = Int(fields[11]), let system = Int(fields[12])
        else { return nil }
        return ProcessStat(parent: parent, group: group, session: session, cpuTicks: user &+ system)
    }

    /// Ends and reaps the children of this process that a plugin left behind: as the subreaper it
    /// inherits the processes of a worker's group when the worker is reaped, and those a plugin started
    /// in a session of their own when their parent ends — whatever process group they moved to. The
    /// children it started itself (workers, probes: see `ChildProcess.isOwn`) are left alone.
    /// Returns how many it ended.
    @discardableResult
    func sweepOrphans() -> Int {
        guard subreaper, let dir = opendir("/proc") else { return 0 }
        defer { closedir(dir) }
        let me = getpid()
        var ended = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            // Workers and probes (started by ChildProcess) end through their own paths; anything else
            // whose parent this process is was adopted: a plugin started it, whatever group it joined.
            guard let pid = pid_t(name), pid != me, let stat = Self.processStat(pid), stat.parent == me,
                !ChildProcess.isOwn(pid)
            else { continue }
            kill(stat.group == pid ? -pid : pid, SIGKILL)
            var status: Int32 = 0
            for _ in 0..<200 where waitpid(pid, &status, WNOHANG) == 0 { usleep(5_000) }
            ended += 1
        }
        return ended
    }
}
