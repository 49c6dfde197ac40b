import EddyHostTestSupport
import EddyIO
import EddyQuery
import Foundation
import HTTPTypes
import Testing

@testable import EddyServer

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
