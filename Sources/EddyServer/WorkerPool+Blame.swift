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

/// What a worker was running and what it is charged with when it dies.
extension WorkerPool {
    /// The plugin code the worker marked last, or nil. The page is the worker's to write: read at
    /// most its size, control characters dropped.
    func site(_ w: Worker) -> String? {
        let bytes = UnsafeRawBufferPointer(start: w.page, count: Self.pageSize / 2 - Self.hostBytes)
        let text = String(
            decoding: bytes.prefix { $0 != 0 }.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 },
            as: UTF8.self)
        return text.isEmpty ? nil : text
    }

    /// The plugin builds a worker that died (or misbehaved) outside plugin code is charged with: of
    /// those loaded into it since it was spawned, the ones whose kernels, rules or compressor hooks
    /// ran in it (listed by the worker on the page's second half); all of them when none did or the
    /// list is full (their registration ran there too, and could have left a thread).
    /// The list is written in the worker, where plugin code could forge it; it can only narrow the
    /// blame to plugins that were loaded there.
    func suspects(_ w: Worker) -> [WorkerRequest.Plugin] {
        let half = Self.pageSize / 2
        let area = UnsafeRawBufferPointer(start: w.page + half, count: half)
        guard area[half - 1] != 1 else { return w.loaded }
        let lines = area.prefix { $0 != 0 && $0 != 1 }.split(separator: UInt8(ascii: "\n")).map {
            String(decoding: $0, as: UTF8.self)
        }
        let ran = w.loaded.filter { p in
            lines.contains { line in
                (line.hasPrefix("kernel '") || line.hasPrefix("rule '") || line.hasPrefix("compressor hook '"))
                    && line.hasSuffix("' of plugin \(p.name)@\(p.version)")
            }
        }
        return ran.isEmpty ? w.loaded : ran
    }

    /// The build whose code started the thread a crash happened on, when the crash handler named one
    /// ("a thread started in … of plugin NAME@VERSION", see threads.c) and the worker loaded it.
    static func startedBy(_ site: String, among loaded: [WorkerRequest.Plugin]) -> WorkerRequest.Plugin? {
        guard site.hasPrefix("a thread started in ") else { return nil }
        return loaded.first { site.hasSuffix(" of plugin \($0.name)@\($0.version)") }
    }

    /// Bytes at the end of the page's first half that are the host's, not the plugin-call mirror's.
    static let hostBytes = 8

    /// How long the supervisor waits for a reply before it looks at the worker, the client and the
    /// deadline again.
    static let pollMilliseconds = 50

    /// What the worker's crash handler said of its crash (see `eddy_crash_report_engine_flag`): "E", an
    /// abort on a thread doing the engine's own work outside plugin code (a request or a batch: out of
    /// `--worker-memory`, say), for which no plugin is charged, whatever code of theirs ran in the
    /// worker before; "F", a read of a mapped input file cut short under its mapping; else 0.
    func crashFlag(_ w: Worker) -> UInt8 {
        w.page.load(fromByteOffset: Self.pageSize / 2 - 1, as: UInt8.self)
    }

    /// Whether a worker's death is one its plugins can be charged with: a crash or an exit of its own,
    /// not a SIGKILL (sent from outside: the kernel's OOM killer, an operator).
    static func isCrash(_ cause: String) -> Bool {
        (cause.hasPrefix("crashed with signal") && !cause.contains("(SIGKILL")) || cause.hasPrefix("exited with status")
    }

    /// The outcome for a worker that died with `cause`: the plugin code it was running, or when none
    /// was marked, the builds that had run code in it.
    func died(_ w: Worker, cause: String, site: String?) -> Outcome {
        // A mapped input file cut short under a kernel that read it is nobody's code's fault: the
        // request gets the file's error (named by the caller), no plugin is charged.
        let flag = crashFlag(w)
        if flag == UInt8(ascii: "F") {
            return replace(w, outcome: .died(cause: cause, site: nil, suspects: []))
        }
        // A thread plugin code started crashed (the crash handler names who started it): that plugin
        // answers for it, as for any code of its that ran here, and the request may run again.
        if let site, let started = Self.startedBy(site, among: w.loaded) {
            return replace(w, outcome: .died(cause: "\(cause) on \(site)", site: nil, suspects: [started]))
        }
        let engine = site == nil && flag == UInt8(ascii: "E")
        let suspects = site == nil && Self.isCrash(cause) && !engine ? suspects(w) : []
        // An abort in the engine's own work is most often an allocation that the address-space limit
        // refused (the Swift runtime aborts when malloc fails).
        let said =
            engine && cause.contains("(SIGABRT") ? cause + " in the engine's own work (out of --worker-memory?)" : cause
        return replace(w, outcome: .died(cause: said, site: site, suspects: suspects))
    }
}

func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGSEGV: "SIGSEGV"
    case SIGBUS: "SIGBUS"
    case SIGILL: "SIGILL"
    case SIGFPE: "SIGFPE"
    case SIGABRT: "SIGABRT"
    case SIGTRAP: "SIGTRAP"
    case SIGKILL: "SIGKILL"
    default: "signal \(signal)"
    }
}
