import Dispatch
@_spi(Host) import Eddy
import Synchronization

/// What ``PluginConformance`` generates and checks.
public struct ConformanceOptions: Sendable {
    /// The seed every input derives from; a failure names it, with the key and the input's index.
    public var seed: UInt64
    /// Inputs generated per (parent, child) key.
    public var inputsPerKey: Int
    /// Also run every key's inputs on two threads at once and compare with the single-thread results.
    public var twoThreads: Bool
    /// Rows of the one large input per key that is timed (kernels vs decode-then-compute, and vs the
    /// built-in kernels the plugin's replace); 0 skips timing.
    public var timingRows: Int
    /// Only this key (`parent|child`), to reproduce a failure; nil for all.
    public var onlyKey: String?
    /// Only this input index, to reproduce a failure; nil for all.
    public var onlyInput: Int?

    /// Options for a run; the defaults check 300 inputs per key, on two threads too, and time 100,000 rows.
    public init(
        seed: UInt64 = 1, inputsPerKey: Int = 300, twoThreads: Bool = true, timingRows: Int = 100_000,
        onlyKey: String? = nil, onlyInput: Int? = nil
    ) {
        self.seed = seed
        self.inputsPerKey = inputsPerKey
        self.twoThreads = twoThreads
        self.timingRows = timingRows
        self.onlyKey = onlyKey
        self.onlyInput = onlyInput
    }
}

/// One key's results.
public struct KeyReport: Sendable, CustomStringConvertible {
    /// `parent|child`, for example `eddy.compare|eddy.dict`.
    public let key: String
    /// Inputs generated for the key.
    public var inputs = 0
    /// How often each kernel under test fired, by name.
    public var fired: [String: Int] = [:]
    /// Disagreements with decode-then-compute, each with what reproduces it.
    public var failures: [KernelConformance.Failure] = []
    /// Time with the kernels / time decoding first, on the one large input (nil when not timed or
    /// when no kernel under test fired on it).
    public var speedRatio: Double?
    /// Time with the plugin's kernels / time with the engine's built-in kernels for the same key (the
    /// ones the plugin's run before and replace), on the same large input; nil when the key has no
    /// built-in kernel, when not timed, or for ``PluginConformance/checkBuiltins(options:)``.
    public var builtInRatio: Double?
    /// The plugin's kernels took more than 1.1× the built-ins' time on the large input (a margin for
    /// noise): the plugin makes this key slower than the engine alone.
    public var slowerThanBuiltIn: Bool { (builtInRatio ?? 0) > 1.1 }
    /// Why no input could be made for the key, when none could.
    public var notGenerated: String?

    /// A report for `key` with nothing recorded yet (for tools that merge or print reports).
    public init(key: String) { self.key = key }

    public var description: String {
        var s =
            "\(key): \(inputs) inputs, \(failures.count) failures, fired "
            + (fired.isEmpty
                ? "never" : fired.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        if let r = speedRatio { s += ", time vs decode-then-compute " + String(format2: r) + "×" }
        if let r = builtInRatio {
            s += ", vs the built-in kernel " + String(format2: r) + "×"
            if slowerThanBuiltIn { s += " — SLOWER than the built-in kernel it replaces" }
        }
        if let why = notGenerated { s += " (not generated: \(why))" }
        return s
    }
}

/// What a conformance run found.
public struct ConformanceReport: Sendable, CustomStringConvertible {
    /// One report per (parent, child) key checked, each key once.
    public var keys: [KeyReport] = []
    /// Kernels under test that never fired on any input.
    public var neverFired: [String] = []
    /// Keys where the plugin's kernels were slower than the built-in kernels they replace (timing is
    /// noisy, so this does not fail the run; see ``KeyReport/builtInRatio``).
    public var slowerThanBuiltIn: [String] { keys.filter(\.slowerThanBuiltIn).map(\.key) }

    /// A report of `keys` (for tools that merge or print reports).
    public init(keys: [KeyReport] = []) { self.keys = keys }

    /// Every failure of every key.
    public var failures: [KernelConformance.Failure] { keys.flatMap(\.failures) }
    /// No failure, every kernel fired, every key generated.
    public var passed: Bool { failures.isEmpty && neverFired.isEmpty && keys.allSatisfy { $0.notGenerated == nil } }

    public var description: String {
        var lines = keys.map(\.description)
        if !neverFired.isEmpty { lines.append("never fired: " + neverFired.joined(separator: ", ")) }
        if !slowerThanBuiltIn.isEmpty {
            lines.append("slower than the built-in kernels they replace: " + slowerThanBuiltIn.joined(separator: ", "))
        }
        for f in failures.prefix(5) { lines.append(f.description) }
        lines.append(passed ? "PASSED" : "FAILED")
        return lines.joined(separator: "\n")
    }
}

/// The conformance kit: checks every kernel a plugin registers against decode-then-compute, on
/// inputs generated for its key.
///
/// For each (parent, child) key the plugin registers, it makes arrays of the child's encoding —
/// built-in encodings directly, the plugin's own through its compressor hooks — of every dtype that
/// fits, with edge cases (empty, one row, all null, sliced at an offset, nested encodings, and
/// malformed children such as dictionary codes past the values, which must be an error and not a
/// crash), puts the parent on top (compare, like, arithmetic, cast, aggregates, filter, take,
/// slice), and executes each input twice: with the engine's built-ins plus the plugin's kernels, and
/// with no kernels at all. Both must give the same dtype, length and values, or both must fail. It
/// also runs the inputs on two threads at once, reports kernels that never fired, and times one
/// large input per key.
///
/// ```swift
/// @Test func conforms() throws {
///     let report = try PluginConformance.check(MyPlugin.self)
///     print(report)
///     #expect(report.passed, "\(report)")
/// }
/// ```
public enum PluginConformance {
    /// Checks the kernels plugin `P` registers.
    public static func check<P: EddyPlugin>(_ plugin: P.Type, options: ConformanceOptions = ConformanceOptions()) throws
        -> ConformanceReport
    {
        let registrar = PluginRegistrar(owner: .plugin(P.name, version: P.version))
        try P.register(into: registrar)
        if let failure = registrar.failure { throw EddyError(.kernelFailed, "registration failed: \(failure)") }
        let session = Session()
        session.kernels.replace(
            pluginNamed: P.name, kernels: registrar.kernels, rules: registrar.rules,
            owner: registrar.owner, compressorHooks: registrar.compressorHooks, encodings: registrar.encodings,
            storages: registrar.storages)
        return run(
            session: session, keys: registrar.kernels.map { ($0.parent, $0.child) },
            names: Set(registrar.kernels.map(\.name)), underTest: { !$0.isBuiltin },
            hooks: registrar.compressorHooks, options: options, builtIns: Session())
    }

    /// Checks the engine's own kernels the same way (every key that has a built-in kernel).
    public static func checkBuiltins(options: ConformanceOptions = ConformanceOptions()) -> ConformanceReport {
        let session = Session()
        let entries = session.kernels.snapshot.entries.filter { !$0.kernels.isEmpty }
        return run(
            session: session, keys: entries.map { ($0.parent, $0.child) },
            names: Set(entries.flatMap { $0.kernels.map(\.name) }), underTest: \.isBuiltin, hooks: [],
            options: options)
    }

    static func run(
        session: Session, keys: [(EncodingID, EncodingID)], names: Set<String>,
        underTest: @escaping (KernelOwner) -> Bool, hooks: [CompressorHook], options: ConformanceOptions,
        builtIns: Session? = nil
    )
        -> ConformanceReport
    {
        // The keys the engine alone has kernels for: there the plugin's kernels are also timed against them.
        let builtInKeys = Set(
            (builtIns?.kernels.snapshot.entries ?? []).filter { !$0.kernels.isEmpty }.map {
                "\($0.parent.name)|\($0.child.name)"
            })
        var report = ConformanceReport()
        var seen = Set<String>()
        var firedAnywhere = Set<String>()
        for (parent, child) in keys {
            let key = "\(parent.name)|\(child.name)"
            guard seen.insert(key).inserted, options.onlyKey == nil || options.onlyKey == key else { continue }
            var k = KeyReport(key: key)
            var inputs: [(index: Int, node: any ArrayNode)] = []
            var lastProblem = "no dtype fits both encodings"
            for index in 0..<options.inputsPerKey where options.onlyInput == nil || options.onlyInput == index {
                var g = ArrayGenerator(seed: inputSeed(options.seed, key, index))
                do {
                    if let node = try makeInput(&g, parent: parent, child: child, hooks: hooks, rows: nil) {
                        inputs.append((index, node))
                    }
                } catch {
                    lastProblem = "\(error)"
                }
            }
            if inputs.isEmpty {
                k.notGenerated = lastProblem
                report.keys.append(k)
                continue
            }
            k.inputs = inputs.count
            var fastResults: [Result<any ArrayNode, any Error>] = []
            for (index, node) in inputs {
                // The reference first, on the input as generated; then the kernels; then the reference
                // again: a kernel that changes its input's buffers is caught either way.
                let slow = reference(node)
                let trace = ExecutionTrace()
                let fast = Result { try session.makeContext(trace: trace).execute(node) }
                fastResults.append(fast)
                for e in trace.events where names.contains(e.name) && underTest(e.owner) {
                    k.fired[e.name, default: 0] += 1
                    firedAnywhere.insert(e.name)
                }
                if let problem = KernelConformance.compare(fast, slow, node) {
                    k.failures.append(failure(problem, node, options, key, index))
                } else if KernelConformance.compare(reference(node), slow) != nil {
                    k.failures.append(failure("the kernels changed their input", node, options, key, index))
                }
            }
            if options.twoThreads {
                let nodes = inputs.map(\.node)
                let threaded = ThreadedResults(count: nodes.count)
                DispatchQueue.concurrentPerform(iterations: 2) { _ in
                    for (i, node) in nodes.enumerated() {
                        threaded.store(i, Result { try session.makeContext().execute(node) })
                    }
                }
                for (i, results) in threaded.all.enumerated() {
                    for r in results {
                        if let problem = KernelConformance.compare(r, fastResults[i]) {
                            k.failures.append(
                                failure(
                                    "on two threads at once: " + problem, inputs[i].node, options, key,
                                    inputs[i].index))
                            break
                        }
                    }
                }
            }
            if options.timingRows > 0 {
                let timed = time(
                    session, parent: parent, child: child, hooks: hooks, options: options, key: key,
                    names: names, underTest: underTest, builtIns: builtInKeys.contains(key) ? builtIns : nil)
                k.speedRatio = timed.ratio
                k.builtInRatio = timed.builtInRatio
                if let f = timed.failure { k.failures.append(f) }
            }
            report.keys.append(k)
        }
        report.neverFired = names.subtracting(firedAnywhere).sorted()
        if options.onlyKey != nil || options.onlyInput != nil { report.neverFired = [] }
        return report
    }

    /// One input for the key: a child of the child encoding under a parent of the parent encoding,
    /// or nil when this draw does not fit (the next index draws again).
    static func makeInput(
        _ g: inout ArrayGenerator, parent: EncodingID, child: EncodingID, hooks: [CompressorHook],
        rows: Int?
    ) throws -> (any ArrayNode)? {
        let dtypes = ArrayGenerator.dtypes.filter { dtype in
            switch parent {
            case LikeFunction.id: if case .utf8 = dtype { true } else { false }
            case ArithmeticFunction.id, NegateFunction.id: if case .primitive = dtype { true } else { false }
            case NotFunction.id: if case .bool = dtype { true } else { false }
            default: true
            }
        }
        guard let node = try makeChild(&g, child, dtype: g.pick(dtypes), hooks: hooks, rows: rows) else { return nil }
        return try g.parent(parent, over: node)
    }

    /// An array whose top encoding is `encoding`.
    static func makeChild(
        _ g: inout ArrayGenerator, _ encoding: EncodingID, dtype: DType, hooks: [CompressorHook],
        rows: Int?
    ) throws -> (any ArrayNode)? {
        let n = rows ?? g.count()
        let column = try g.column(dtype, count: n)
        let ownHooks = hooks.filter { $0.applies(dtype) }
        if !ownHooks.isEmpty {
            // A plugin's encoding comes from its compressor hook; sorted and constant columns are the
            // shapes a hook most often wants, so the column is drawn again until one takes it.
            for _ in 0..<8 {
                let candidate = try g.column(dtype, count: n)
                for hook in ownHooks {
                    if let r = try hook.compress(candidate, { try Compressor().compress($0) }), r.encoding == encoding {
                        return r
                    }
                }
            }
        }
        if encoding == DictArray.id, rows == nil, g.chance(0.05), n > 0 {
            // Malformed: a code past the values. Decoding fails; a kernel must fail too, not crash.
            let values = try g.column(dtype, count: g.int(1...4))
            let codes = (0..<n).map { _ in UInt32(g.int(0...(values.count - 1))) }
            var bad = codes
            bad[g.int(0...(n - 1))] = UInt32(values.count + g.int(0...2))
            return try DictArray(codes: PrimitiveArray(bad), values: values)
        }
        if encoding == column.encoding { return try g.encode(column, as: encoding, depth: 1) }
        return try g.encode(column, as: encoding, depth: g.int(1...3))
    }

    /// Seconds with the kernels over seconds decoding first, and over seconds with `builtIns` (a session
    /// of the engine's own kernels) when given, on one large input (best of three each, interleaved).
    static func time(
        _ session: Session, parent: EncodingID, child: EncodingID, hooks: [CompressorHook],
        options: ConformanceOptions, key: String, names: Set<String>,
        underTest: (KernelOwner) -> Bool, builtIns: Session?
    ) -> (ratio: Double?, builtInRatio: Double?, failure: KernelConformance.Failure?) {
        for attempt in 0..<20 {
            var g = ArrayGenerator(seed: inputSeed(options.seed, key, -1 - attempt))
            guard let node = try? makeInput(&g, parent: parent, child: child, hooks: hooks, rows: options.timingRows)
            else { continue }
            let trace = ExecutionTrace()
            guard (try? session.makeContext(trace: trace).execute(node)) != nil,
                trace.events.contains(where: { names.contains($0.name) && underTest($0.owner) })
            else { continue }
            let reference = Session(builtins: false)
            func best(_ body: () -> Void) -> Double {
                var out = Double.infinity
                for _ in 0..<3 {
                    let start = ContinuousClock.now
                    body()
                    let d = ContinuousClock.now - start
                    out = Swift.min(out, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
                }
                return out
            }
            // The large input is checked too: a kernel wrong only past the generated sizes is caught here.
            let expected = Self.reference(node)
            let index = -1 - attempt
            if let problem = KernelConformance.compare(
                Result { try session.makeContext().execute(node) }, expected, node)
            {
                return (
                    nil, nil, failure("on the \(options.timingRows)-row input: " + problem, node, options, key, index)
                )
            }
            let fast = best { _ = try? session.makeContext().execute(node) }
            let slow = best {
                _ = try? reference.makeContext(options: ExecutionOptions(useKernels: false)).execute(node)
            }
            var builtInRatio: Double?
            if let builtIns {
                let engine = best { _ = try? builtIns.makeContext().execute(node) }
                // Timed again after the built-ins, so that a warm cache does not favour either side.
                let again = Swift.min(fast, best { _ = try? session.makeContext().execute(node) })
                builtInRatio = engine > 0 ? again / engine : nil
            }
            return (slow > 0 ? fast / slow : nil, builtInRatio, nil)
        }
        return (nil, nil, nil)
    }

    /// Decode-then-compute: no kernels at all.
    static func reference(_ node: any ArrayNode) -> Result<any ArrayNode, any Error> {
        Result { try Session(builtins: false).makeContext(options: ExecutionOptions(useKernels: false)).execute(node) }
    }

    static func failure(
        _ problem: String, _ node: any ArrayNode, _ options: ConformanceOptions, _ key: String,
        _ index: Int
    ) -> KernelConformance.Failure {
        KernelConformance.Failure(
            input: node.treeDescription(),
            problem: problem
                + "\n  reproduce: ConformanceOptions(seed: \(options.seed), onlyKey: \"\(key)\", onlyInput: \(index))")
    }

    /// The seed of input `index` of `key`: each input can be made again on its own.
    static func inputSeed(_ seed: UInt64, _ key: String, _ index: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h ^ UInt64(bitPattern: Int64(index)) &* 0x9E37_79B9_7F4A_7C15
    }
}

/// Results of the two-thread run, stored from both threads.
final class ThreadedResults: Sendable {
    private let results: Mutex<[[Result<any ArrayNode, any Error>]]>
    init(count: Int) { results = Mutex(Array(repeating: [], count: count)) }
    func store(_ i: Int, _ r: sending Result<any ArrayNode, any Error>) { results.withLock { $0[i].append(r) } }
    var all: [[Result<any ArrayNode, any Error>]] { results.withLock { $0 } }
}

extension String {
    /// `value` with two decimals.
    init(format2 value: Double) {
        let scaled = (value * 100).rounded()
        guard scaled.isFinite, abs(scaled) < 1e15 else {
            self = "\(value)"
            return
        }
        let whole = Int(scaled) / 100
        let frac = abs(Int(scaled) % 100)
        self = "\(whole).\(frac < 10 ? "0" : "")\(frac)"
    }
}
