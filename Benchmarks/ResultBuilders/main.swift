@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

// The SDK's result builders measured from outside the SDK, compiled the way a plugin is (another
// module, against the library-evolution build of libEddy.so), against what they replace and against
// the engine's own paths. Build and run (release SDK):
//
//   swift build -c release --package-path plugin-sdk --product Eddy
//   L=plugin-sdk/.build/release
//   swiftc -O -module-name ResultBuilders Benchmarks/ResultBuilders/main.swift \
//     Tests/Fixtures/RunEndCompare/RunEndComparePlugin.swift -I $L/Modules -L $L -lEddy \
//     -Xlinker -rpath -Xlinker $L -o /tmp/result-builders && /tmp/result-builders
//
// Prints medians of 9 runs; the machines are shared and noisy, so read the ratios.

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

@inline(never)
func median(_ body: () throws -> Int) rethrows -> (ms: Double, check: Int) {
    var times: [Double] = []
    var check = 0
    for _ in 0..<9 {
        let t0 = now()
        check &+= try body()
        times.append((now() - t0) * 1000)
    }
    return (times.sorted()[4], check)
}

let rows = 10_000_000

/// Run lengths: every run `length` rows, values alternating.
func runLengths(_ length: Int) -> [Int] { Array(repeating: length, count: rows / length) }

print("== fill a bitmap of \(rows) rows by runs (ms, median of 9)")
print(
    "run length | bit by bit (the old append(_:count:)) | BitmapBuilder.append(_:count:) | "
        + "BoolArray.Builder.append(_:count:) | words into a raw buffer (engine style)")
for length in [1, 8, 64, 1000] {
    let runs = runLengths(length)
    let old = median {
        var b = BitmapBuilder(capacity: rows)
        for (k, n) in runs.enumerated() { for _ in 0..<n { b.append(k & 1 == 0) } }
        return b.finish().count
    }
    let new = median {
        var b = BitmapBuilder(capacity: rows)
        for (k, n) in runs.enumerated() { b.append(k & 1 == 0, count: n) }
        return b.finish().count
    }
    let bools = try median {
        var b = BoolArray.Builder(capacity: rows)
        for (k, n) in runs.enumerated() { try b.append(k & 1 == 0, count: n) }
        return b.finish().count
    }
    // What an engine kernel does by hand: whole words into memory it owns, no builder.
    let raw = median {
        let words = (rows + 63) / 64
        let buffer = Buffer.build(count: words, of: UInt64.self) { out in
            out.initialize(repeating: 0)
            var at = 0
            for (k, n) in runs.enumerated() {
                if k & 1 == 0 {
                    var i = at
                    let end = at + n
                    while i < end {
                        let take = Swift.min(64 - (i & 63), end - i)
                        let mask = take == 64 ? ~UInt64(0) : ((UInt64(1) << UInt64(take)) - 1) << UInt64(i & 63)
                        out[i >> 6] |= mask
                        i += take
                    }
                }
                at += n
            }
        }
        return buffer.byteCount
    }
    print(
        "\(length) | \(old.ms) | \(new.ms) (\(old.ms / new.ms)× faster, /raw \(new.ms / raw.ms)×) | "
            + "\(bools.ms) (/raw \(bools.ms / raw.ms)×) | \(raw.ms)")
}

print("== primitive results from runs: \(rows) Int64 rows (ms)")
for length in [8, 1000] {
    let runs = runLengths(length)
    let array = median {
        var out: [Int64] = []
        out.reserveCapacity(rows)
        for (k, n) in runs.enumerated() { out.append(contentsOf: repeatElement(Int64(k), count: n)) }
        return PrimitiveArray(out).count
    }
    let builder = try median {
        var b = PrimitiveArray.Builder<Int64>(capacity: rows)
        for (k, n) in runs.enumerated() { try b.append(Int64(k), count: n) }
        return b.finish().count
    }
    let engine = median {
        PrimitiveArray.build(Int64.self, count: rows) { out in
            var at = 0
            for (k, n) in runs.enumerated() {
                (out.baseAddress! + at).initialize(repeating: Int64(k), count: n)
                at += n
            }
        }.count
    }
    print(
        "run length \(length): [Int64] then PrimitiveArray(_:) \(array.ms) | Builder \(builder.ms) | "
            + "PrimitiveArray.build in place \(engine.ms) (builder/in place \(builder.ms / engine.ms)×)")
}

print("== x > constant over a run-end column of \(rows) rows, end to end through ExecutionCtx (ms)")
let registrar = PluginRegistrar(owner: .plugin(RunEndCompare.name, version: RunEndCompare.version))
try RunEndCompare.register(into: registrar)
let withPlugin = Session()
withPlugin.kernels.replace(
    pluginNamed: RunEndCompare.name, kernels: registrar.kernels, rules: registrar.rules, owner: registrar.owner,
    compressorHooks: registrar.compressorHooks, encodings: registrar.encodings, storages: registrar.storages)
let builtIn = Session()
for length in [8, 64, 1000] {
    let runs = rows / length
    let ends = PrimitiveArray((1...runs).map { UInt32($0 * length) })
    let values = PrimitiveArray((0..<runs).map { Int64($0 % 100) })
    let column = try RunEndArray(ends: ends, values: values)
    let compare = try CompareFunction.make(
        column, .gt, ConstantArray(Scalar(.int(49), .primitive(.int64, .nonNullable)), count: rows))
    func run(_ ctx: ExecutionCtx) throws -> Int {
        guard let b = try ctx.execute(compare) as? BoolArray else { fatalError("not a bool result") }
        return b.bits.trueCount
    }
    let plugin = try median { try run(withPlugin.makeContext()) }
    let engine = try median { try run(builtIn.makeContext()) }
    let decoded = try median { try run(builtIn.makeContext(options: ExecutionOptions(useKernels: false))) }
    precondition(plugin.check == engine.check && engine.check == decoded.check, "answers differ")
    print(
        "run length \(length): six-concept plugin \(plugin.ms) | built-in kernel \(engine.ms) | "
            + "decode-then-compute \(decoded.ms) | built-in/plugin \(engine.ms / plugin.ms)×, "
            + "decode/plugin \(decoded.ms / plugin.ms)×")
}
