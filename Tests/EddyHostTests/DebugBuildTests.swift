import EddyHostTestSupport
import Foundation
import Testing

@testable import EddyHost

/// `eddy plugins` says "debug build" for a plugin compiled without optimisation, read from the
/// DWARF of its Swift compile units (`ELFBuildMode`), and not for an optimised one, with or
/// without debug information.
@Suite(.serialized) struct DebugBuildTests {
    static let builds = Result { () throws -> (debug: String, release: String, releaseWithDWARF: String) in
        (
            try RunEndCompareTests.build(["-Onone", "-g"], as: "debug"),
            try RunEndCompareTests.plugin.get(),
            try RunEndCompareTests.build(["-O", "-g"], as: "release-g")
        )
    }

    @Test(arguments: [(0, true), (1, false), (2, false)])
    func pluginsSaysDebugBuildForAnUnoptimisedPluginOnly(build: Int, debug: Bool) throws {
        let b = try Self.builds.get()
        let file = [b.debug, b.release, b.releaseWithDWARF][build]
        let dir = ScratchDirectory()
        try dir.copy(file, as: "run-end-compare.so")
        let text = try Eddy.run(["plugins", "--plugin-dir", dir.path])
        #expect(text.status == 0, "\(text.stdout) \(text.stderr)")
        #expect(text.stdout.contains("loaded"), "\(text.stdout)")
        #expect(text.stdout.contains("debug build") == debug, "\(text.stdout)")
        let json = try Eddy.run(["plugins", "--plugin-dir", dir.path, "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let row = try #require((object?["files"] as? [[String: Any]])?.first)
        #expect((row["debug_build"] as? Bool ?? false) == debug, "\(json.stdout)")
    }

    @Test func theDWARFReaderCountsSwiftUnitsAndNeverTrapsOnDamagedFiles() throws {
        let b = try Self.builds.get()
        let debug = try [UInt8](Data(contentsOf: URL(fileURLWithPath: b.debug)))
        let release = try [UInt8](Data(contentsOf: URL(fileURLWithPath: b.releaseWithDWARF)))
        guard case .swift(let units, let unoptimized) = ELFBuildMode.read(debug) else {
            Issue.record("no Swift compile unit found in the debug build")
            return
        }
        #expect(units > 0 && unoptimized == units)
        #expect(ELFBuildMode.read(release).isDebugBuild == false)
        #expect(ELFBuildMode.read(try [UInt8](Data(contentsOf: URL(fileURLWithPath: b.release)))) == .unknown)
        // Cut anywhere and with bytes of the DWARF overwritten: an answer or none, never a trap.
        var cuts = Array(stride(from: 0, to: debug.count, by: Swift.max(1, debug.count / 200)))
        cuts.append(debug.count - 1)
        for cut in cuts { _ = ELFBuildMode.read(Array(debug.prefix(cut))) }
        let dwarf = try #require(debug.withUnsafeBytes { ELFBuildMode.sections(ELFBuildMode.Bytes(raw: $0)) })
        let targets = Array(dwarf.info.prefix(4096)) + Array(dwarf.abbrev.prefix(4096))
        for _ in 0..<300 {
            var damaged = debug
            for _ in 0..<4 { damaged[targets.randomElement()!] = UInt8.random(in: 0...255) }
            _ = ELFBuildMode.read(damaged)
        }
    }
}
