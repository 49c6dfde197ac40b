import CEddyHost
import Dispatch
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The supervisor's end of a worker's socket. Replies are read by an event loop (a NIO channel on the
/// socket) into a bounded buffer; requests are written with `sendmsg` on a descriptor of the link's own
/// (``writeDescriptor``, a duplicate: NIO closes its descriptor when the worker closes its end, and a
/// write must never reach whatever reused that number).
///
/// Why an event loop: a request answered on the loop that read the HTTP request costs two wake-ups,
/// the worker's and the loop's when the reply comes — as in-process evaluation costs two (its thread's
/// and the loop's). Waiting on a thread of its own cost one more, and that wake-up (an interrupt to
/// another core, then a queue behind whatever ran there) was most of what isolation cost a small request.
final class WorkerLink: Sendable {
    /// Where requests are written (with the job's descriptor as SCM_RIGHTS); closed by ``close()``.
    let writeDescriptor: Int32
    /// The loop that reads this link's replies.
    let eventLoop: any EventLoop
    private let channel: EventLoopFuture<any Channel>
    private let shared: Shared
    /// The largest frame a reply may be (its payload): past it, bytes are not kept.
    let limit: Int

    /// The state the loop's handler and the waiting side share.
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private struct State {
        var buffer: [UInt8] = []
        /// The worker closed its end (or the channel failed).
        var closed = false
        /// Bytes past what a reply may hold arrived: they were dropped, and the reply is out of protocol.
        var overflowed = false
        /// Something happened since the last ``take()``: bytes, or the end.
        var fresh = false
        var waiter: Waiter?
    }

    private enum Waiter {
        case thread(DispatchSemaphore)
        case task(CheckedContinuation<Void, Never>)
    }

    /// What ``take()`` found.
    enum Step {
        case more
        case done([UInt8])
        case closed
        case tooLarge
        /// Bytes past the reply.
        case trailing
    }

    struct SetupFailure: Error, CustomStringConvertible { var description: String }

    /// Takes `socket` (owned from now on, even when this throws) and reads it on `eventLoop`.
    init(socket: Int32, eventLoop: any EventLoop, limit: Int) throws {
        let copy = fcntl(socket, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socket)
            throw SetupFailure(description: "dup of a worker's socket: \(reason)")
        }
        self.writeDescriptor = copy
        self.eventLoop = eventLoop
        self.limit = limit
        let shared = Shared()
        self.shared = shared
        // Registered asynchronously: this may run on an event loop (the server is made in an async
        // `main` whose tasks run on the loops), where a wait would deadlock. Bytes that come before
        // the registration wait in the socket.
        let future = ClientBootstrap(group: eventLoop)
            .channelOption(.allowRemoteHalfClosure, value: false)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Reader(link: shared, limit: limit))
                }
            }
            .withConnectedSocket(socket)
        self.channel = future
        // The request then fails as with a worker that closed its socket, and the worker is replaced.
        // (Whether the descriptor was taken is not said: it is left open rather than closed twice.)
        future.whenFailure { _ in Self.end(shared) }
    }

    /// Closes both descriptors: the worker sees its socket's end.
    func close() {
        Glibc.close(writeDescriptor)
        channel.whenSuccess { $0.close(promise: nil) }
    }

    /// The reply, when it is all there (and nothing after it); clears "something happened".
    func take() -> Step {
        shared.state.withLock { s in
            s.fresh = false
            guard s.buffer.count >= 4 else { return s.closed ? .closed : .more }
            let expected =
                Int(s.buffer[0]) | Int(s.buffer[1]) << 8 | Int(s.buffer[2]) << 16 | Int(s.buffer[3]) << 24
            guard expected <= limit else { return .tooLarge }
            if s.buffer.count > 4 + expected || s.overflowed { return .trailing }
            guard s.buffer.count == 4 + expected else { return s.closed ? .closed : .more }
            let frame = Array(s.buffer[4...])
            s.buffer.removeAll(keepingCapacity: true)
            return .done(frame)
        }
    }

    /// Whether anything came after the reply just taken: bytes, or the end of the socket (a worker does
    /// neither between requests; plugin code on the socket does).
    var hasMore: Bool { shared.state.withLock { !$0.buffer.isEmpty || $0.closed } }

    /// Waits (on this thread) for bytes or the end, at most `milliseconds`.
    func wait(milliseconds: Int) {
        let semaphore = DispatchSemaphore(value: 0)
        let ready = shared.state.withLock { s -> Bool in
            if s.fresh { return true }
            s.waiter = .thread(semaphore)
            return false
        }
        guard !ready else { return }
        if semaphore.wait(timeout: .now() + .milliseconds(milliseconds)) == .timedOut {
            let stillMine = shared.state.withLock { s -> Bool in
                guard case .thread = s.waiter else { return false }
                s.waiter = nil
                return true
            }
            // Signalled between the timeout and the lock: take that signal.
            if !stillMine { semaphore.wait() }
        }
    }

    /// Waits (suspended) for bytes, the end, or the pool's next tick (see ``tick()``).
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = shared.state.withLock { s -> Bool in
                if s.fresh { return true }
                s.waiter = .task(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Wakes a suspended ``wait()`` without news, so that its caller looks at the worker, the client and
    /// the deadline again.
    func tick() {
        let woken = shared.state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard case .task(let c) = s.waiter else { return nil }
            s.waiter = nil
            return c
        }
        woken?.resume()
    }

    private static func wake(_ shared: Shared, _ change: (inout State) -> Void) {
        let waiter = shared.state.withLock { s -> Waiter? in
            change(&s)
            s.fresh = true
            defer { s.waiter = nil }
            return s.waiter
        }
        switch waiter {
        case .thread(let semaphore): semaphore.signal()
        case .task(let continuation): continuation.resume()
        case nil: break
        }
    }

    private static func end(_ shared: Shared) { wake(shared) { $0.closed = true } }

    /// Appends what the worker sends to the link's buffer — at most a frame's worth and one byte more
    /// (beyond that it is out of protocol anyway; the buffer must not grow with what plugin code writes)
    /// — and wakes the waiter when a read ends.
    private final class Reader: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let link: Shared
        let limit: Int

        init(link: Shared, limit: Int) {
            self.link = link
            self.limit = limit
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Self.unwrapInboundIn(data)
            link.state.withLock { s in
                let room = 4 + limit + 1 - s.buffer.count
                if bytes.readableBytes > room { s.overflowed = true }
                if room > 0 { s.buffer.append(contentsOf: bytes.readableBytesView.prefix(room)) }
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) { WorkerLink.wake(link) { _ in } }

        func channelInactive(context: ChannelHandlerContext) { WorkerLink.end(link) }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            WorkerLink.end(link)
            context.close(promise: nil)
        }
    }
}
