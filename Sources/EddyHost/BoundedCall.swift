import CEddyHost
import EddyIO
import Glibc
import Synchronization

/// Runs code that may never return (a plugin's registration) on a thread of its own, and waits for
/// it at most a given time. On a timeout the thread is abandoned: it cannot be stopped, but the
/// caller goes on and the late result is dropped. (A C latch, not a DispatchSemaphore: Dispatch's
/// Swift overlay links Swift's concurrency library, which `eddy` no longer loads.)
enum BoundedCall {
    private final class Slot<T: Sendable>: Sendable {
        let value = Mutex<T?>(nil)
    }

    /// The value of `body`, or nil if it did not return within `seconds`.
    static func run<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () -> T) -> T? {
        let slot = Slot<T>()
        // No latch or no thread to be had: run it here, unbounded, rather than refuse every plugin.
        guard let latch = eddy_latch_create() else { return body() }
        // The thread only signals and releases its reference: the latch outlives whichever side ends last.
        let shared = UncheckedBox(latch)
        // Plugin code gets the stack size of a main thread, not a worker thread's 512 KiB.
        let started = DetachedThread.start(stackSize: 8 << 20) {
            let value = body()
            slot.value.withLock { $0 = value }
            eddy_latch_signal(shared.value)
            eddy_latch_release(shared.value)
        }
        guard started else {
            eddy_latch_release(latch)
            eddy_latch_release(latch)
            return body()
        }
        let done = eddy_latch_wait(latch, max(0, min(seconds, 86_400))) == 1
        eddy_latch_release(latch)
        return done ? slot.value.withLock { $0 } : nil
    }
}
