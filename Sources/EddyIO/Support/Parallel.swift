import CEddyIO

/// Work spread over the cores through libdispatch's C interface (CEddyIO's parallel.c): what
/// `DispatchQueue.concurrentPerform` and a group on the global queue did, without Dispatch's Swift
/// overlay, which links Swift's concurrency library — loaded, it cost every `eddy` process start
/// about a millisecond, and nothing on the eval path uses it.
package enum Parallel {
    /// Runs `body(i)` for each `i` in `0..<iterations`, on this thread and libdispatch's pool at once;
    /// returns when every one has.
    package static func perform(iterations: Int, _ body: @Sendable (Int) -> Void) {
        guard iterations > 1 else {
            if iterations == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            var work = escapable
            withUnsafeMutablePointer(to: &work) { pointer in
                eddy_parallel_for(iterations, pointer) { context, i in
                    context?.assumingMemoryBound(to: (@Sendable (Int) -> Void).self).pointee(Int(i))
                }
            }
        }
    }

    /// Runs `work` on libdispatch's pool while this thread runs `here`; returns when both are done.
    package static func alongside(_ work: @escaping @Sendable () -> Void, _ here: () -> Void) {
        let box = Unmanaged.passRetained(Work(work))
        guard
            let handle = eddy_background_start(
                box.toOpaque(),
                { context in
                    guard let context else { return }
                    Unmanaged<Work>.fromOpaque(context).takeUnretainedValue().run()
                })
        else {
            // No thread to be had: one after the other, here.
            box.release()
            work()
            here()
            return
        }
        here()
        eddy_background_wait(handle)
        box.release()
    }

    private final class Work: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}

/// A lock and a condition over it (CEddyIO's `eddy_monitor`), for threads that share one evaluation's
/// state: ``wait()`` is called with the lock held and returns with it held.
package final class Monitor: @unchecked Sendable {
    private let monitor: OpaquePointer

    /// Nil when the system cannot make one (the caller then works on one thread).
    package init?() {
        guard let m = eddy_monitor_create() else { return nil }
        monitor = m
    }

    deinit { eddy_monitor_destroy(monitor) }

    package func lock() { eddy_monitor_lock(monitor) }
    package func unlock() { eddy_monitor_unlock(monitor) }
    package func wait() { eddy_monitor_wait(monitor) }
    package func broadcast() { eddy_monitor_broadcast(monitor) }
}
