internal import EddyKernelsC
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A description of one piece of plugin code — a kernel, a rule, a compressor hook, a registration —
/// that the executor marks on the running thread while it runs, so that a crash report can name the
/// plugin and kernel that crashed (see the host's crash handler). Built-in kernels have none.
@_spi(Host)
public final class PluginCallSite: @unchecked Sendable {  // `text` is written once, in init, and only read after
    /// The C string read by the crash handler; it lives as long as this object.
    private let text: UnsafeMutablePointer<CChar>
    /// Whether this site is on the list of sites that have run (see ``recordRuns(to:size:)``).
    private let recorded = Atomic<Bool>(false)

    public init(_ description: String) {
        // The line is written from a signal handler: no control characters in it.
        let clean = String(description.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        guard let copy = strdup(clean) else { fatalError("out of memory") }
        text = copy
    }

    deinit { free(text) }

    /// Runs `body` with this site marked on the current thread.
    @inline(__always)
    public func run<T>(_ body: () throws -> T) rethrows -> T {
        if !recorded.load(ordering: .relaxed), !recorded.exchange(true, ordering: .relaxed) {
            eddy_plugin_call_record(text)
        }
        let previous = eddy_plugin_call_enter(text)
        defer { eddy_plugin_call_leave(previous) }
        return try body()
    }

    /// Copies every mark, from now on, into `page` (shared memory another process reads when this
    /// one dies). Call once, before plugin code runs.
    public static func mirror(to page: UnsafeMutableRawPointer, size: Int) {
        eddy_plugin_call_mirror(page.assumingMemoryBound(to: CChar.self), size)
    }

    /// Lists in `page`, from now on, every site that runs (once each, a line each, when it first
    /// runs; the last byte set to 1 when the page is full): shared memory that tells another process
    /// whose code has run in this one, even after the call returned. Call once, before plugin code runs.
    public static func recordRuns(to page: UnsafeMutableRawPointer, size: Int) {
        eddy_plugin_call_record_runs(page.assumingMemoryBound(to: CChar.self), size)
    }

    /// A site for `kind` ("kernel", "rule", "compressor hook") named `name` of `owner`; nil for built-ins.
    static func of(_ kind: String, _ name: String, _ owner: KernelOwner) -> PluginCallSite? {
        owner.isBuiltin ? nil : PluginCallSite("\(kind) '\(name)' of plugin \(owner.name)@\(owner.version)")
    }
}
