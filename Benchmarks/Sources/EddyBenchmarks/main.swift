import CEddyHost
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
import InHostPackedCompare

#if canImport(Glibc)
    import Glibc
#endif

// Eddy engine benchmarks: release build, one thread, medians. Numbers are printed, never asserted.
// Run: swift run -c release --package-path Benchmarks [--quick] [--json] [SECTION]
// --json prints one object per line, {"name": …, "median_ns": …}, for Benchmarks/kernels.py to race.

// As the eddy binary does: freed blocks stay in the heap for the next batch instead of going back
// to the kernel and faulting in zeroed pages again on every call.
eddy_keep_freed_memory()

let quick = CommandLine.arguments.contains("--quick")
let only = CommandLine.arguments.dropFirst().first { !$0.hasPrefix("--") }
/// Whether a section runs: all of them, or those whose name contains the first argument.
func want(_ section: String) -> Bool { only.map { section.contains($0) } ?? true }
let bigN = quick ? 1_000_000 : 10_000_000
/// The size in benchmark names: 10M (1M with --quick).
let bigLabel = quick ? "1M" : "10M"
var rng = SystemRandomNumberGenerator()
struct Seeded: RandomNumberGenerator {
    var s: UInt64
    mutating func next() -> UInt64 {
        s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return (s >> 33) ^ (s << 31)
    }
}
var gen = Seeded(s: 42)

if !json { print("Eddy engine benchmarks (release, single thread, median of 9 samples)\n") }

// MARK: context creation
let session = Session()
if want("context") {
    let ctxNs = measure { blackHole(session.makeContext()) }
    record("context.create_drop", ctxNs)
    report("context create+drop", formatNanos(ctxNs))
}

// MARK: chunked bool canonicalize, fresh vs reused context
for (len, chunks) in [(10, 1000), (100, 100), (1000, 10)] where want("chunked") {
    let parts: [any ArrayNode] = (0..<chunks).map { k in BoolArray((0..<len).map { ($0 + k) % 3 == 0 }) }
    let chunked = try ChunkedArray(chunks: parts, dtype: .bool(.nonNullable))
    let reused = session.makeContext()
    var fresh = 0.0
    var same = 0.0
    // Interleave to share the machine's noise between the two.
    var f: [Double] = []
    var s: [Double] = []
    for _ in 0..<5 {
        f.append(try measure(samples: 3) { blackHole(try session.makeContext().execute(chunked)) })
        s.append(try measure(samples: 3) { blackHole(try reused.execute(chunked)) })
    }
    fresh = f.sorted()[2]
    same = s.sorted()[2]
    report(
        "chunked bool canonicalize (\(len), \(chunks)) fresh/reused",
        "\(formatNanos(fresh)) / \(formatNanos(same)) = \(format1(fresh / same))", target: "≤ 1.03")
}

// MARK: per-node dispatch with 0 vs 200 extra keys
if want("dispatch") {
    var deep: any ArrayNode = BoolArray((0..<64).map { $0 % 2 == 0 })
    for _ in 0..<200 { deep = try NotFunction.make(deep) }
    let plain = Session()
    // Unrelated: neither encoding of a key occurs in the tree.
    let unrelated = Session()
    // Stricter: the parent occurs in the tree (so every node does a real lookup) but the child never does.
    let sameParent = Session()
    for i in 0..<200 {
        let fake = EncodingID("bench.unrelated.\(i)")
        let other = EncodingID("bench.unrelated.parent.\(i % 20)")
        unrelated.kernels.register(
            ExecuteParentKernel(
                "unrelated \(i)", owner: .plugin("bench", version: "1"),
                parent: other, child: fake
            ) { _, _, _, _ in nil })
        sameParent.kernels.register(
            ExecuteParentKernel(
                "same parent \(i)", owner: .plugin("bench", version: "1"),
                parent: NotFunction.id, child: fake
            ) { _, _, _, _ in nil })
    }
    var a: [Double] = []
    var b: [Double] = []
    var c: [Double] = []
    for _ in 0..<5 {
        a.append(try measure(samples: 3) { blackHole(try plain.makeContext().execute(deep)) })
        b.append(try measure(samples: 3) { blackHole(try unrelated.makeContext().execute(deep)) })
        c.append(try measure(samples: 3) { blackHole(try sameParent.makeContext().execute(deep)) })
    }
    let t0 = a.sorted()[2]
    let t200 = b.sorted()[2]
    let tSame = c.sorted()[2]
    report(
        "deep tree (200 nodes), 200 unrelated keys / 0 keys",
        "\(formatNanos(t200)) / \(formatNanos(t0)) = \(format1(t200 / t0))", target: "≤ 1.02")
    report(
        "  200 keys under a parent in the tree / 0 keys",
        "\(formatNanos(tSame)) / \(formatNanos(t0)) = \(format1(tSame / t0))")
    report("  per node (execute a not over 64 rows)", formatNanos(t0 / 200))
}

// MARK: utf8 dictionary data (1,000 distinct strings)
let letters = Array("abcdefghijklmnopqrstuvwxyz")
let distinct: [String] = (0..<1000).map { i in
    let k = 2 + Int(gen.next() % 18)
    return String(format4(i)) + "_" + String((0..<k).map { _ in letters[Int(gen.next() % 26)] })
}
func format4(_ i: Int) -> String { let s = String(i); return String(repeating: "0", count: 4 - s.count) + s }

if want("compare1k") {
    let codes = PrimitiveArray((0..<1000).map { _ in UInt16(gen.next() % 1000) })
    let dict = try DictArray(codes: codes, values: VarBinArray(distinct))
    let needle = distinct[Int(try codes.values(UInt16.self)[0])]
    let cmp = try CompareFunction.make(dict, .eq, ConstantArray(.utf8(needle), count: 1000))
    let t = try measure { blackHole(try session.makeContext().execute(cmp)) }
    record("compare.utf8.dict.1k.fresh_ctx", t)
    report("compare dict-utf8 1,000 rows, fresh context per call", formatNanos(t), target: "≤ 1 µs")
}

if !json { print("\n\(bigN) rows:") }
let bigCodes = PrimitiveArray.build(UInt16.self, count: bigN) { out in
    for i in 0..<bigN { out[i] = UInt16(gen.next() % 1000) }
}
let bigDict = try DictArray(codes: bigCodes, values: VarBinArray(distinct))
if want("dictcompare") {
    let needle = distinct[Int(try bigCodes.values(UInt16.self)[0])]
    let cmp = try CompareFunction.make(bigDict, .eq, ConstantArray(.utf8(needle), count: bigN))
    let out = try session.makeContext().execute(cmp) as! BoolArray
    let t = try measure(samples: 9, sampleNanos: 50_000_000) { blackHole(try session.makeContext().execute(cmp)) }
    record("compare.utf8.dict.\(bigLabel)", t)
    report("dict-utf8 == scalar (matches \(out.bits.trueCount))", formatNanos(t), target: "≤ 1.0 ms; polars 1.5 ms")
    let plainCodes = measure(samples: 5) { blackHole(sumCodes(bigCodes)) }
    report("  floor: sum of the same UInt16 codes", formatNanos(plainCodes))
}

if want("filter") {
    let narrow = PrimitiveArray.build(Int64.self, count: bigN) { out in
        for i in 0..<bigN { out[i] = 1_000_000 + Int64(gen.next() % 4096) }
    }
    let f = try FoRArray.encode(narrow)
    let packed = try FoRArray(
        reference: f.reference,
        child: BitPackedArray.encode(f.child as! PrimitiveArray, bitWidth: 12))
    let mask = try BoolArray(bits: Bitmap(count: bigN) { _ in gen.next() % 10 == 0 })
    let kept = mask.bits.trueCount
    let filter = try FilterArray(packed, mask: mask, count: kept)
    let t = try measure(samples: 7) { blackHole(try session.makeContext().execute(filter)) }
    record("filter10.i64.for_bitpacked.\(bigLabel)", t)
    report("filter 10% of FoR+bit-packed(12) int64", formatNanos(t), target: "≤ 4 ms; polars 5.5 ms")
    let plain = try FilterArray(narrow, mask: mask, count: kept)
    let tp = try measure(samples: 7) { blackHole(try session.makeContext().execute(plain)) }
    record("filter10.i64.plain.\(bigLabel)", tp)
    report("  same filter on canonical int64", formatNanos(tp))
}

if want("take") {
    let idx = PrimitiveArray((0..<100_000).map { _ in Int64(gen.next() % UInt64(bigN)) })
    let take = try TakeArray(bigDict, indices: idx)
    let t = try measure(samples: 7) { blackHole(try session.makeContext().execute(take)) }
    record("take.utf8.dict.100k_of_\(bigLabel)", t)
    report("take 100k random indices from dict-utf8", formatNanos(t), target: "pyarrow 0.86 ms (canonical int64)")
}

if want("aggregate") {
    // Runs: int64 values in ±1e6 with run lengths averaging 100 (about 100k runs at 10M rows).
    var ends: [UInt32] = []
    var values: [Int64] = []
    var at = 0
    while at < bigN {
        at = min(bigN, at + 1 + Int(gen.next() % 199))
        ends.append(UInt32(at))
        values.append(Int64(gen.next() % 2_000_001) - 1_000_000)
    }
    let runs = try RunEndArray(ends: PrimitiveArray(ends), values: PrimitiveArray(values))
    let sumRuns = try AggregateFunction(.sum).make(runs)
    let expected = try session.makeContext(options: ExecutionOptions(useKernels: false)).execute(sumRuns).scalar(at: 0)
    let got = try session.makeContext().execute(sumRuns).scalar(at: 0)
    precondition(expected.value == got.value, "run-end sum differs from decode-then-sum")
    let t = try measure { blackHole(try session.makeContext().execute(sumRuns)) }
    record("sum.i64.run_end.\(bigLabel)", t)
    report("sum over run-end (\(ends.count) runs)", formatNanos(t), target: "≤ 0.05 ms; numpy by hand 0.17 ms")
    let plain = PrimitiveArray.build(Int64.self, count: bigN) { out in
        for i in 0..<bigN { out[i] = Int64(gen.next() % 2_000_001) - 1_000_000 }
    }
    let sumPlain = try AggregateFunction(.sum).make(plain)
    let tp = try measure(samples: 9) { blackHole(try session.makeContext().execute(sumPlain)) }
    record("sum.i64.plain.\(bigLabel)", tp)
    report("sum over plain int64", formatNanos(tp), target: "≤ 4 ms; polars 4.2 ms, pyarrow 5.1 ms")
}

if want("plugin") {
    // The same kernel source compiled into this executable and loaded from a plugin .so.
    var exe = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &exe, exe.count - 1)
    let exePath = String(decoding: exe[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let pluginFile = exePath.split(separator: "/").dropLast().map { "/" + $0 }.joined() + "/libBenchPackedCompare.so"
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]
    let codes = PrimitiveArray.build(UInt8.self, count: bigN) { out in
        for i in 0..<bigN { out[i] = UInt8(gen.next() % 7) }
    }
    let column = try DictArray(codes: BitPackedArray.encode(codes, bitWidth: 3), values: VarBinArray(words))
    let query = try CompareFunction.make(column, .eq, ConstantArray(.utf8("gamma"), count: bigN))

    let inHost = Session()
    let registrar = PluginRegistrar(owner: .plugin("in-host", version: "1"))
    try PackedDictComparePlugin.register(into: registrar)
    inHost.kernels.register(kernels: registrar.kernels, rules: [])

    let fromPlugin = Session()
    let host = PluginHost(session: fromPlugin, shadowDirectory: "/tmp/eddy-bench-shadow")
    let row = host.load(pluginFile)
    guard row.status == .loaded else { fatalError("plugin did not load: \(row.reason)") }

    let builtinOnly = Session()
    let traceA = ExecutionTrace()
    let viaHost = try inHost.makeContext(trace: traceA).execute(query) as! BoolArray
    let viaBuiltin = try builtinOnly.makeContext().execute(query) as! BoolArray
    precondition(
        viaHost.bits.trueCount == viaBuiltin.bits.trueCount
            && (0..<bigN).allSatisfy { viaHost.bits[$0] == viaBuiltin.bits[$0] }, "plugin kernel result differs")
    let traceB = ExecutionTrace()
    _ = try fromPlugin.makeContext(trace: traceB).execute(query)
    precondition(traceA.events.contains { $0.name == PackedDictComparePlugin.kernelName })
    precondition(
        traceB.events.contains {
            $0.name == PackedDictComparePlugin.kernelName && $0.owner.name == "packed-dict-compare"
        })
    var a: [Double] = []
    var b: [Double] = []
    var c: [Double] = []
    for _ in 0..<5 {
        a.append(try measure(samples: 3) { blackHole(try inHost.makeContext().execute(query)) })
        b.append(try measure(samples: 3) { blackHole(try fromPlugin.makeContext().execute(query)) })
        c.append(try measure(samples: 3) { blackHole(try builtinOnly.makeContext().execute(query)) })
    }
    let tHost = a.sorted()[2], tPlugin = b.sorted()[2], tBuiltin = c.sorted()[2]
    report(
        "packed-dict compare, plugin .so / same kernel in host",
        "\(formatNanos(tPlugin)) / \(formatNanos(tHost)) = \(format1(tPlugin / tHost))", target: "≤ 1.05")
    report(
        "  built-in kernel (unpack codes, then AVX2 lookup)",
        "\(formatNanos(tBuiltin)) (plugin is \(format1(tBuiltin / tPlugin))× faster)")

    // Scan + check + copy + dlopen + handshake of 10 plugin files (distinct bytes, same plugin name:
    // the first registers, the other nine stop at "already loaded" after their handshake).
    let scanDir = "/tmp/eddy-bench-scan-\(getpid())"
    mkdir(scanDir, 0o755)
    let bytes = Array(try readWhole(pluginFile))
    for k in 0..<10 { writeWhole(scanDir + "/p\(k).so", bytes + Array(repeating: UInt8(k), count: k + 1)) }
    var times: [Double] = []
    for run in 0..<5 {
        let s = Session()
        let h = PluginHost(session: s, shadowDirectory: "/tmp/eddy-bench-shadow-\(getpid())-\(run)")
        let t0 = now()
        let rows = h.scan(scanDir)
        times.append(Double(now() - t0))
        precondition(rows.count == 10)
    }
    report("scan + check + load of 10 plugin files (cold shadow copies)", formatNanos(times.sorted()[2]))
}

func readWhole(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else { fatalError("cannot open \(path)") }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        if n <= 0 { break }
        out += chunk[0..<n]
    }
    return out
}

func writeWhole(_ path: String, _ bytes: [UInt8]) {
    let f = fopen(path, "wb")!
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
}
