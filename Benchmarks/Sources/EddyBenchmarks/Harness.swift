@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Monotonic nanoseconds.
func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Median time per call in nanoseconds: `samples` samples, each running `body` enough times to take
/// about `sampleNanos` (calibrated once after two warm-up calls).
func measure(samples: Int = 9, sampleNanos: UInt64 = 20_000_000, _ body: () throws -> Void) rethrows -> Double {
    try body()
    try body()
    var iterations = 1
    while true {
        let t0 = now()
        for _ in 0..<iterations { try body() }
        let dt = now() - t0
        if dt >= sampleNanos / 4 || iterations >= 1 << 24 {
            iterations = max(1, Int(Double(iterations) * Double(sampleNanos) / Double(max(dt, 1))))
            break
        }
        iterations *= 4
    }
    var perCall: [Double] = []
    for _ in 0..<samples {
        let t0 = now()
        for _ in 0..<iterations { try body() }
        perCall.append(Double(now() - t0) / Double(iterations))
    }
    perCall.sort()
    return perCall[perCall.count / 2]
}

/// Keeps a value alive and opaque to the optimiser.
@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

func formatNanos(_ ns: Double) -> String {
    if ns < 1_000 { return String(format1(ns)) + " ns" }
    if ns < 1_000_000 { return format1(ns / 1_000) + " µs" }
    return format1(ns / 1_000_000) + " ms"
}

func format1(_ x: Double) -> String {
    let scaled = (x * 100).rounded() / 100
    return String(scaled)
}

/// Whether to print JSON lines (--json) instead of the human table.
let json = CommandLine.arguments.contains("--json")

/// One result as a JSON line (with --json): `{"name": …, "median_ns": …}`.
func record(_ name: String, _ nanos: Double) {
    guard json else { return }
    print("{\"name\": \"\(name)\", \"median_ns\": \(Int(nanos.rounded()))}")
}

func report(_ name: String, _ value: String, target: String = "") {
    guard !json else { return }
    let pad = String(repeating: " ", count: max(1, 64 - name.count))
    print(name + pad + value + (target.isEmpty ? "" : "   (target \(target))"))
}

/// The memory-read floor: sums UInt16 codes.
@inline(never)
func sumCodes(_ codes: PrimitiveArray) -> UInt64 {
    (try? codes.withValues(UInt16.self) { c in
        var s: UInt64 = 0
        for v in c { s &+= UInt64(v) }
        return s
    }) ?? 0
}
