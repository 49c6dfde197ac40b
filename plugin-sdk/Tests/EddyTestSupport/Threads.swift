import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A flag one thread sets and others poll (a stop signal for tests that race threads).
public final class Flag: Sendable {
    private let state = Atomic<Bool>(false)
    public init() {}
    /// Whether ``set()`` has been called.
    public var isSet: Bool { state.load(ordering: .acquiring) }
    /// Sets the flag.
    public func set() { state.store(true, ordering: .releasing) }
}

/// A counter threads increment.
public final class Counter: Sendable {
    private let state = Atomic<Int>(0)
    public init() {}
    /// The count now.
    public var value: Int { state.load(ordering: .acquiring) }
    /// Adds one; the new count.
    @discardableResult public func increment() -> Int { state.add(1, ordering: .acquiringAndReleasing).newValue }
}

/// A joinable POSIX thread running a closure (a real thread, not a task: tests that race threads
/// against the registry or a server need them).
public final class TestThread: @unchecked Sendable {
    // Written once in init before the thread starts; read only by join on the creating thread.
    private var thread = pthread_t()

    /// Starts a thread running `body`.
    public init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(
            &thread, nil,
            { raw in
                guard let raw else { return nil }
                Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
                return nil
            }, box)
    }

    /// Waits for the thread to end.
    public func join() { pthread_join(thread, nil) }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
