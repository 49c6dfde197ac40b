import EddyHostTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Neither the test process nor `eddy` watches a descriptor with a libdispatch read source of its own
/// (see ``Server`` and `ReplayCommand`): reading a child's output through `FileHandle`'s readability
/// handler brings back the race that kills the reading process when the child exits.
@Suite struct TestProcessHygieneTests {
    @Test func nothingReadsAChildsOutputThroughADispatchSource() throws {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let root = tests.deletingLastPathComponent()
        // Split, so that this file does not match itself.
        let patterns = ["readability" + "Handler =", "makeRead" + "Source("]
        var found: [String] = []
        // Every test target of the host and their support (Tests/Eddy*), and the sources.
        let targets = try FileManager.default.contentsOfDirectory(atPath: tests.path).filter { $0.hasPrefix("Eddy") }
        #expect(targets.count >= 6, "\(targets)")
        for directory in targets.sorted().map({ tests.path + "/" + $0 }) + [root.path + "/Sources"] {
            let names = FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String } ?? []
            #expect(!names.isEmpty, "no sources under \(directory)")
            for name in names.sorted() where name.hasSuffix(".swift") {
                let text = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
                for pattern in patterns where text.contains(pattern) { found.append("\(name): \(pattern)") }
            }
        }
        #expect(found.isEmpty, "read child output on a thread with blocking reads instead: \(found)")
    }
}
