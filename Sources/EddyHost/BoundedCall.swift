import Dispatch
import Glibc
import Synchronization

/// Runs code that may never return (a plugin's registration) on a thread of its own, and waits for
/// it at most a given time. On a timeout the thread is abandoned: it cannot be stopped, but the
/// caller goes on and the late result is dropped.
enum BoundedCall {
    private final class Job: Sendable {
        let work: @Sendable () -> Void
        let done = DispatchSemaphore(value: 0)
        init(_ work: @escaping @Sendable () -> Void) { self.work = work }
    }

    private final class Slot<T: Sendable>: Sendable {
        let value = Mutex<T?>(nil)
    }

    /// The value of `body`, or nil if it did not return within `seconds`.
    static func run<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () -> T) -> T? {
        let slot = Slot<T>()
        let job = Job {
            let value = body()
            slot.value.withLock { $0 = value }
        }
        // No thread to be had: run it here, unbounded, rather than refuse every plugin.
        guard start(job) else { return body() }
        let nanos = Int(max(0, min(seconds, 86_400)) * 1e9)
        guard job.done.wait(timeout: .now() + .nanoseconds(nanos)) == .success else { return nil }
        return slot.value.withLock { $0 }
    }

    private static func start(_ job: Job) -> Bool {
        // Plugin code gets the stack size of a main thread, not a worker thread's 512 KiB.
        DetachedThread.start(stackSize: 8 << 20) {
            job.work()
            job.done.signal()
        }
    }
}
