import Dispatch
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Prometheus
import Synchronization

/// Whether an evaluation's client went away, cheap enough to ask between batches: the channel's own
/// flag every time, the kernel's TCP state (a hop to the channel's event loop, tens of microseconds)
/// at most every 50 ms, so that short requests never pay for it.
final class LivenessCheck: Sendable {
    let channel: any Channel
    private let lastTCPCheck: Mutex<Double>

    init(_ channel: any Channel) {
        self.channel = channel
        lastTCPCheck = Mutex(now())
    }

    func clientGone() -> Bool {
        guard channel.isActive else { return true }
        let due = tcpCheckDue()
        return due && EddyServer.clientGone(channel)
    }

    /// Whether the TCP state is due to be asked (50 ms since it last was); if so, now counts as the last time.
    private func tcpCheckDue() -> Bool {
        let t = now()
        return lastTCPCheck.withLock { last in
            guard t - last >= 0.05 else { return false }
            last = t
            return true
        }
    }

    /// ``clientGone()`` from a task on an event loop, which may not wait for a future but may await one:
    /// the TCP state is asked of the connection's loop.
    func clientGoneOnLoop() async -> Bool {
        guard channel.isActive else { return true }
        let due = tcpCheckDue()
        guard due, let socket = channel as? any SocketOptionProvider, let info = try? await socket.getTCPInfo().get()
        else { return false }
        return Int32(info.tcpi_state) != 1  // TCP_ESTABLISHED
    }
}

extension EddyServer {
    /// Whether the client closed its side of the connection. The connection is not read while a
    /// request is being evaluated, so a close is seen in the socket's TCP state (CLOSE_WAIT after the
    /// client's FIN), not as an event. Called from the evaluation's thread, between batches. On any
    /// of the server's event loops (a `count(*)` answered from a footer runs on one, not always the
    /// connection's: a handler that waited for a slot resumes on whichever loop is next) only
    /// `isActive` is asked: NIO traps a wait on a future from any loop of its group.
    static func clientGone(_ channel: any Channel) -> Bool {
        guard channel.isActive else { return true }
        guard MultiThreadedEventLoopGroup.currentEventLoop == nil, !channel.eventLoop.inEventLoop,
            let socket = channel as? any SocketOptionProvider,
            let info = try? socket.getTCPInfo().wait()
        else {
            return false
        }
        return Int32(info.tcpi_state) != 1  // TCP_ESTABLISHED
    }
}
