@_spi(Host) import Eddy
import EddyHostTestSupport
import Foundation
import Testing

@testable import EddyHost

/// Mutated plugin files through the ELF checks (`ELFInspector`): refused with a named check or
/// accepted, never a trap. `EDDY_FUZZ_ITERATIONS` and `EDDY_FUZZ_SEED` as in Tests/fuzz-long.sh.
@Suite struct ELFFuzzTests {
    /// Mutates the header, program headers and dynamic section of real plugin files: every mutant is
    /// accepted or refused with a named check, and none traps. The process surviving is the test.
    @Test func mutatedELFHeadersNeverTrap() throws {
        let seed = fuzzSeed(0xE1F)
        var rng = SeededGenerator(seed: seed)
        let small = try HostileFixtures.build(.crash)  // a real plugin .so with a small symbol table
        let files = [
            try Data(contentsOf: URL(fileURLWithPath: small)),
            try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyPluginDelta"))),
        ]
        var refused = 0
        var accepted = 0
        let iterations = fuzzIterations(100_000)
        for i in 0..<iterations {
            // Mostly the small file; one case in 40 the Swift plugin, whose checks cost more.
            var bytes = [UInt8](files[i % 40 == 0 ? 1 : 0])
            let ranges = Self.interestingRanges(bytes)
            let mutations = Int.random(in: 1...6, using: &rng)
            for _ in 0..<mutations {
                Self.mutate(&bytes, ranges: ranges, using: &rng)
            }
            if Int.random(in: 0..<10, using: &rng) == 0 {
                bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng))
            }
            do {
                _ = try ELFInspector.inspect(
                    bytes, symbols: ["eddy_plugin_manifest_v1", "eddy_plugin_register_v1"],
                    prefix: "$s4Eddy")
                accepted += 1
            } catch is ELFInspector.Failure {
                refused += 1
            } catch {
                Issue.record("case \(i) (seed \(seed)): unexpected error \(error)")
            }
        }
        #expect(refused + accepted == iterations)
        #expect(refused > iterations / 10, "mutations should often break the file (seed \(seed))")
        #expect(accepted > 0, "some mutations leave the file valid (seed \(seed))")
    }

    /// Where the checks read: the file header, the program header table and the dynamic segment.
    static func interestingRanges(_ bytes: [UInt8]) -> [Range<Int>] {
        var ranges = [0..<min(64, bytes.count)]
        guard bytes.count >= 64 else { return ranges }
        func u(_ o: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(bytes[o + $1]) << (8 * $1) } }
        let phoff = u(32, 8)
        let phnum = u(56, 2)
        if phoff >= 0, phoff < bytes.count, phnum < 64 {
            ranges.append(phoff..<min(bytes.count, phoff + phnum * 56))
            for k in 0..<phnum where phoff + k * 56 + 40 <= bytes.count && u(phoff + k * 56, 4) == 2 {
                let off = u(phoff + k * 56 + 8, 8)
                let size = u(phoff + k * 56 + 32, 8)
                if off >= 0, off < bytes.count, size >= 0, size < 1 << 20 {
                    ranges.append(off..<min(bytes.count, off + size))
                }
            }
        }
        return ranges.filter { !$0.isEmpty }
    }

    static func mutate(_ bytes: inout [UInt8], ranges: [Range<Int>], using rng: inout SeededGenerator) {
        guard !bytes.isEmpty else { return }
        let range =
            Int.random(in: 0..<10, using: &rng) < 9 && !ranges.isEmpty
            ? ranges[Int.random(in: 0..<ranges.count, using: &rng)] : 0..<bytes.count
        let at = Int.random(in: range, using: &rng)
        switch Int.random(in: 0..<4, using: &rng) {
        case 0:
            bytes[at] = UInt8.random(in: 0...255, using: &rng)
        case 1:
            bytes[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
        default:
            // An 8-byte little-endian field set to an edge value: offsets near Int.max, the file
            // size, zero, all ones.
            let edges: [UInt64] = [
                0, 1, UInt64(bytes.count), UInt64(bytes.count) &- 1, UInt64(bytes.count) + 1,
                UInt64(Int.max), UInt64(Int.max) - 7, UInt64.max, 0xFFFF, 0x8000_0000_0000_0000,
                UInt64.random(in: 0...UInt64.max, using: &rng),
            ]
            let v = edges[Int.random(in: 0..<edges.count, using: &rng)]
            let width = [2, 4, 8][Int.random(in: 0..<3, using: &rng)]
            for k in 0..<width where at + k < bytes.count {
                bytes[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))
            }
        }
    }
}
