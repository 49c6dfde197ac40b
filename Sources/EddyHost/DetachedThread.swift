#if canImport(Glibc)
    import Glibc
#endif

/// A detached thread of a chosen stack size running `body` (Dispatch's pool is for short work; what
/// blocks for long — a plugin's registration, a child's output — gets a thread of its own).
enum DetachedThread {
    private final class Body: @unchecked Sendable {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts the thread; false when none could be had (`body` is then not run).
    static func start(stackSize: Int, _ body: @escaping () -> Void) -> Bool {
        // Allocated rather than `pthread_attr_t()`: that initializer is only visible through CDispatch here.
        let attributes = UnsafeMutablePointer<pthread_attr_t>.allocate(capacity: 1)
        defer { attributes.deallocate() }
        pthread_attr_init(attributes)
        defer { pthread_attr_destroy(attributes) }
        pthread_attr_setdetachstate(attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(attributes, stackSize)
        let retained = Unmanaged.passRetained(Body(body))
        var thread = pthread_t()
        let started = pthread_create(
            &thread, attributes,
            { raw in
                guard let raw else { return nil }
                Unmanaged<Body>.fromOpaque(raw).takeRetainedValue().run()
                return nil
            }, retained.toOpaque())
        if started != 0 { retained.release() }
        return started == 0
    }
}
