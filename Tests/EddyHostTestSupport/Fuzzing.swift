import Foundation

/// SplitMix64: a small seeded generator, so that every fuzz case can be replayed from its seed.
package struct SeededGenerator: RandomNumberGenerator {
    package var state: UInt64
    package init(seed: UInt64) { state = seed }
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The seed of a fuzz run: `EDDY_FUZZ_SEED` to replay one, else a fixed one (CI is reproducible).
package func fuzzSeed(_ fallback: UInt64) -> UInt64 {
    ProcessInfo.processInfo.environment["EDDY_FUZZ_SEED"].flatMap { UInt64($0) } ?? fallback
}

/// How many cases a fuzz test runs: `EDDY_FUZZ_ITERATIONS` for a longer run (see
/// `Tests/fuzz-long.sh`), else the CI default.
package func fuzzIterations(_ fallback: Int) -> Int {
    ProcessInfo.processInfo.environment["EDDY_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? fallback
}
