import EddyHostTestSupport
import EddyIO
import EddyQuery
import Foundation
import HTTPTypes
import NIOCore
import NIOPosix
import Testing

@testable import EddyServer

/// The server's check that a client is still there, asked from where `eddy serve` asks it: an
/// evaluation's thread, the connection's own event loop, and another loop of the same group (a
/// handler that waited for an evaluation slot resumes on whichever loop is next). NIO traps a wait
/// on a future from any loop of a group, so the TCP state is read only off the loops.
@Suite struct LivenessTests {
    @Test func clientGoneIsSafeFromEveryThreadTheServerAsksFrom() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let accepted = try ServerBootstrap(group: group)
            .childChannelInitializer { _ in group.any().makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).wait()
        let port = try #require(accepted.localAddress?.port)
        let client = try ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).wait()
        let own = client.eventLoop
        var other = group.next()
        while other === own { other = group.next() }

        // Off the loops: the TCP state is read, and the connection is established.
        #expect(!EddyServer.clientGone(client))
        // On the connection's own loop and on the other one: no wait, no trap.
        #expect(try own.submit { EddyServer.clientGone(client) }.wait() == false)
        #expect(try other.submit { EddyServer.clientGone(client) }.wait() == false)

        try client.close().wait()
        #expect(EddyServer.clientGone(client))
        #expect(try other.submit { EddyServer.clientGone(client) }.wait())
        try accepted.close().wait()
    }
}
