import Dispatch
import Hummingbird
import NIOCore
import Synchronization

/// How many connections `eddy serve` holds open, in all and per client, so that a flood of idle
/// connections can never take the descriptors the server needs.
///
/// At `ulimit -n 1024`, 1,100 idle connections from one client used to exhaust the descriptors: the
/// listening socket stayed readable, every `accept` failed with EMFILE, and NIO (2.101) retried it
/// at once, so the server spun at 100% CPU while `/health` and `/eval` timed out. Now the cap sits
/// below the descriptor limit (``ServerOptions/reservedDescriptors(workers:maxConcurrent:)`` are
/// kept for workers, plugins and data files), so `accept` succeeds and the connection over the cap
/// is dealt with at once: the idle connection that has been quiet longest makes room for it, as
/// nginx drains idle keep-alive connections when it runs short; when every connection is busy the
/// new one is closed. A client that is not on loopback also has a cap of its own (loopback is every
/// local user at one address, so there only the total counts).
///
/// Busy means a request is being handled (from the router's first middleware until it returns, see
/// ``ConnectionActivity``) or an answer is still being written (``ConnectionTracker``). Bytes read do
/// not make a connection busy — a client that goes on sending a body after its 401 would hold its
/// connection for ever — they only make it recently active, so that a connection whose request is
/// on its way to the router is the last idle one chosen.
final class ConnectionLimit: Sendable {
    let maxTotal: Int
    let maxPerClient: Int

    private struct Entry {
        let channel: any Channel
        /// The remote address, for a client that is not on loopback.
        let client: String?
        /// Requests being handled on it (the router has them; more than one only if pipelined).
        var requests = 0
        /// Whether an answer is still being written, and since when (nanoseconds).
        var writing = false
        var writingSince: UInt64 = 0
        /// When it last read or finished writing (or opened), in nanoseconds.
        var lastActive: UInt64
        /// Busy: a request is being handled or an answer is going out — unless answers have been stuck
        /// for `stalledWrite`: a client that does not read its replies is reclaimable then, whatever
        /// else is in progress on it, since nothing it asks can reach it.
        func busy(at now: UInt64) -> Bool {
            if writing && now &- writingSince >= ConnectionLimit.stalledWrite { return false }
            return requests > 0 || writing
        }
    }

    /// Nanoseconds an answer may take to go out before its connection counts as idle at the cap.
    static let stalledWrite: UInt64 = 5_000_000_000

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var perClient: [String: Int] = [:]
        var closedAtLimit = 0
        var reclaimed = 0
    }

    private let state = Mutex(State())

    init(maxTotal: Int, maxPerClient: Int) {
        self.maxTotal = maxTotal
        self.maxPerClient = maxPerClient
    }

    /// Connections open now.
    var open: Int { state.withLock { $0.entries.count } }

    /// New connections closed because every slot was busy, and idle ones closed to make room.
    var counts: (closedAtLimit: Int, reclaimed: Int) { state.withLock { ($0.closedAtLimit, $0.reclaimed) } }

    enum Admission {
        /// Kept; the idle connection given (if any) is closed to make room.
        case admitted(reclaiming: (any Channel)?)
        /// Over the cap with no idle connection to close: close this one.
        case refused
    }

    /// Counts a new connection in, or says it must be closed.
    func admit(_ channel: any Channel) -> Admission {
        let client = Self.clientKey(channel.remoteAddress)
        let id = ObjectIdentifier(channel)
        return state.withLock { s in
            var reclaim: (any Channel)?
            if let client, s.perClient[client, default: 0] >= maxPerClient {
                guard let victim = Self.longestIdle(s.entries, client: client) else {
                    s.closedAtLimit += 1
                    return .refused
                }
                reclaim = Self.remove(victim, from: &s)
            } else if s.entries.count >= maxTotal {
                guard let victim = Self.longestIdle(s.entries, client: nil) else {
                    s.closedAtLimit += 1
                    return .refused
                }
                reclaim = Self.remove(victim, from: &s)
            }
            if reclaim != nil { s.reclaimed += 1 }
            s.entries[id] = Entry(channel: channel, client: client, lastActive: DispatchTime.now().uptimeNanoseconds)
            if let client { s.perClient[client, default: 0] += 1 }
            return .admitted(reclaiming: reclaim)
        }
    }

    /// Counts a connection out (a second call for the same one does nothing).
    func closed(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        state.withLock { s in _ = Self.remove(id, from: &s) }
    }

    /// A request on this connection reached the router (`+1`) or was answered (`-1`).
    func handling(_ channel: any Channel, _ delta: Int) {
        update(channel) { $0.requests += delta }
    }

    /// Whether an answer is being written on this connection.
    func writing(_ channel: any Channel, _ writing: Bool) {
        let now = DispatchTime.now().uptimeNanoseconds
        update(channel) {
            if writing && !$0.writing { $0.writingSince = now }
            $0.writing = writing
        }
    }

    /// Bytes arrived on this connection.
    func read(_ channel: any Channel) { update(channel) { _ in } }

    private func update(_ channel: any Channel, _ change: (inout Entry) -> Void) {
        let id = ObjectIdentifier(channel)
        let t = DispatchTime.now().uptimeNanoseconds
        state.withLock { s in
            guard var e = s.entries[id] else { return }
            change(&e)
            e.lastActive = t
            s.entries[id] = e
        }
    }

    private static func longestIdle(_ entries: [ObjectIdentifier: Entry], client: String?) -> ObjectIdentifier? {
        var best: (ObjectIdentifier, UInt64)?
        let now = DispatchTime.now().uptimeNanoseconds
        for (id, e) in entries where !e.busy(at: now) && (client == nil || e.client == client) {
            if let b = best, b.1 <= e.lastActive { continue }
            best = (id, e.lastActive)
        }
        return best?.0
    }

    private static func remove(_ id: ObjectIdentifier, from s: inout State) -> (any Channel)? {
        guard let e = s.entries.removeValue(forKey: id) else { return nil }
        if let client = e.client {
            let n = s.perClient[client, default: 1] - 1
            s.perClient[client] = n > 0 ? n : nil
        }
        return e.channel
    }

    /// The address a per-client cap counts under; nil for loopback (and for anything without an IP).
    static func clientKey(_ address: SocketAddress?) -> String? {
        guard let ip = address?.ipAddress else { return nil }
        let v4 = ip.hasPrefix("::ffff:") ? String(ip.dropFirst(7)) : ip
        return ServerOptions.isLoopback(v4) ? nil : ip
    }
}

/// Counts its connection in and out of a ``ConnectionLimit``, says when an answer is being written
/// (from a write until every write handed on has completed) and when bytes arrive (at most every
/// 10 ms). Messages pass through untouched, never unwrapped, so the handler needs none of the HTTP
/// part types.
final class ConnectionTracker: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny

    let limit: ConnectionLimit
    /// Writes handed on whose promise has not completed.
    private var pendingWrites = 0
    private var lastRead: UInt64 = 0

    init(_ limit: ConnectionLimit) { self.limit = limit }

    func channelActive(context: ChannelHandlerContext) {
        switch limit.admit(context.channel) {
        case .admitted(let reclaiming):
            reclaiming?.close(promise: nil)
            context.fireChannelActive()
        case .refused:
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        limit.closed(context.channel)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let t = DispatchTime.now().uptimeNanoseconds
        if t &- lastRead > 10_000_000 {
            lastRead = t
            limit.read(context.channel)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        pendingWrites += 1
        if pendingWrites == 1 { limit.writing(context.channel, true) }
        let done = promise ?? context.eventLoop.makePromise()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        done.futureResult.whenComplete { _ in
            let (handler, context) = loopBound.value
            handler.pendingWrites -= 1
            if handler.pendingWrites == 0 { handler.limit.writing(context.channel, false) }
        }
        context.write(data, promise: done)
    }
}

/// Marks a connection busy while the router handles a request on it: from here, the first
/// middleware, until the response is returned (its writing is ``ConnectionTracker``'s to see).
struct ConnectionActivity: RouterMiddleware {
    typealias Context = EddyRequestContext
    let limit: ConnectionLimit

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let channel = context.channel
        limit.handling(channel, 1)
        defer { limit.handling(channel, -1) }
        return try await next(request, context)
    }
}

extension ServerOptions {
    /// Descriptors kept back from connections: the listening socket, the event loops, the plugin
    /// watcher, the private-copy and upload directories, a socket and pipes per worker, files open
    /// per evaluation, and headroom for the connections accepted before they are counted.
    public static func reservedDescriptors(workers: Int, maxConcurrent: Int) -> Int {
        128 + 8 * max(workers, 0) + 8 * max(maxConcurrent, 0)
    }

    /// The default cap on connections: what the descriptor limit leaves after the reserve, at most
    /// 4,096 (each connection also costs memory).
    public static func defaultMaxConnections(descriptorLimit: Int, workers: Int, maxConcurrent: Int) -> Int {
        min(4_096, descriptorLimit - reservedDescriptors(workers: workers, maxConcurrent: maxConcurrent))
    }
}
