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

/// Where a requested path lands, judged before the file system is asked whether it exists.
@Suite struct RequestPathTests {
    @Test func aPathOutsideTheDataDirectoryIsRefusedWhetherOrNotItExists() throws {
        let dir =
            NSTemporaryDirectory().hasSuffix("/") ? String(NSTemporaryDirectory().dropLast()) : NSTemporaryDirectory()
        let real = try #require(realPath(dir))
        for path in ["../../../../../etc/passwd", "../../../../../etc/no-such-file-here", "/etc/no-such-file-here"] {
            do {
                _ = try EvalRequest.open(path, dataDirectories: [real])
                Issue.record("\(path) was resolved")
            } catch {
                #expect(error.status == .forbidden, "\(path): \(error.status) \(error.message)")
                #expect(error.message.contains("not inside"), "\(error.message)")
            }
        }
        do {
            _ = try EvalRequest.open("no-such-file-here.csv", dataDirectories: [real])
            Issue.record("a missing file was resolved")
        } catch {
            #expect(error.status == .notFound, "\(error.message)")
        }
        #expect(lexicallyNormalized("/a/./b/../../c//d/..") == "/c")
        #expect(lexicallyNormalized("/../..") == "/")
    }
}
