import Dispatch
@_spi(Host) import Eddy
import Synchronization

/// What ``PluginConformance`` generates and checks.
public struct ConformanceOptions: Sendable {
    /// The seed every input derives from; a failure names it, with the key and the input's index.
    public var seed: UInt64
    /// Inputs generated per key: per (parent, child) kernel key, per compressor hook and per encoding
    /// storage of the plugin.
    public var inputsPerKey: Int
    /// Also run every key's inputs on two threads at once and compare with the single-thread results.
    public var twoThreads: Bool
    /// Rows of the one large input per key that is timed (kernels vs decode-then-compute, and vs the
    /// built-in kernels the plugin's replace); 0 skips timing.
    public var timingRows: Int
    /// Only this key (`parent|child`, `hook:<name>` or `storage:<encoding>`), to reproduce a failure;
    /// nil for all.
    public var onlyKey: String?
    /// Only this input index, to reproduce a failure; nil for all.
    public var onlyInput: Int?
    /// Seconds the run may take (nil: no limit). When they are spent the run stops cleanly after the
    /// input it is checking: the report says how many inputs were checked and which keys were not
    /// reached (``ConformanceReport/notReached``), which is visible but not a failure. Keys are checked
    /// in rounds of a few inputs each, so a short limit still reaches every key.
    public var timeLimit: Double?
    /// Canonical columns of the plugin's own (data its encoding is made for) that the kit slices,
    /// encodes with the plugin's compressor hooks and uses as inputs besides the generated columns.
    public var sampleColumns: [any ArrayNode]

    /// Options for a run; the defaults check 300 inputs per key, on two threads too, time 100,000 rows
    /// and have no time limit.
    public init(
        seed: UInt64 = 1, inputsPerKey: Int = 300, twoThreads: Bool = true, timingRows: Int = 100_000,
        onlyKey: String? = nil, onlyInput: Int? = nil, timeLimit: Double? = nil, sampleColumns: [any ArrayNode] = []
    ) {
        self.seed = seed
        self.inputsPerKey = inputsPerKey
        self.twoThreads = twoThreads
        self.timingRows = timingRows
        self.onlyKey = onlyKey
        self.onlyInput = onlyInput
        self.timeLimit = timeLimit
        self.sampleColumns = sampleColumns
    }
}

/// One key's results.
public struct KeyReport: Sendable, CustomStringConvertible {
    /// `parent|child` for kernels (for example `eddy.compare|eddy.dict`), `hook:<name>` for a compressor
    /// hook, `storage:<encoding>` for an encoding's storage.
    public let key: String
    /// Inputs checked for the key.
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
    /// No built-in kernel for the key, and the plugin's kernels took more than 1.1× the time of
    /// decoding first and computing on plain data: the key is faster without the plugin.
    public var slowerThanDecoding: Bool { builtInRatio == nil && (speedRatio ?? 0) > 1.1 }
    /// Why no input could be made for the key, when none could.
    public var notGenerated: String?
    /// The time limit ran out before the key's first input (see ``ConformanceOptions/timeLimit``).
    public var notReached = false

    /// A report for `key` with nothing recorded yet (for tools that merge or print reports).
    public init(key: String) { self.key = key }

    public var description: String {
        var s =
            "\(key): \(inputs) inputs, \(failures.count) failures"
            + (key.hasPrefix("hook:") || key.hasPrefix("storage:")
                ? ""
                : ", fired "
                    + (fired.isEmpty
                        ? "never"
                        : fired.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")))
        if let r = speedRatio {
            s += ", time vs decode-then-compute " + String(format2: r) + "×"
            if slowerThanDecoding { s += " — SLOWER than decoding first (no kernel at all)" }
        }
        if let r = builtInRatio {
            s += ", vs the built-in kernel " + String(format2: r) + "×"
            if slowerThanBuiltIn { s += " — SLOWER than the built-in kernel it replaces" }
        }
        if let why = notGenerated { s += " (not generated: \(why))" }
        if notReached { s += " (not reached: time limit)" }
        return s
    }
}

/// What a conformance run found.
public struct ConformanceReport: Sendable, CustomStringConvertible {
    /// One report per key checked, each key once: the (parent, child) kernel keys, then the plugin's
    /// compressor hooks (`hook:<name>`), then its encoding storages (`storage:<encoding>`).
    public var keys: [KeyReport] = []
    /// Kernels under test that never fired on any input (of the keys whose every input was checked).
    public var neverFired: [String] = []
    /// Seconds after which the time limit stopped the run; nil when every input was checked.
    public var stoppedAfter: Double?
    /// Keys where the plugin's kernels were slower than the built-in kernels they replace (timing is
    /// noisy, so this does not fail the run; see ``KeyReport/builtInRatio``).
    public var slowerThanBuiltIn: [String] { keys.filter(\.slowerThanBuiltIn).map(\.key) }
    /// Keys without a built-in kernel where the plugin's kernels were slower than decoding first
    /// (timing is noisy, so this does not fail the run either).
    public var slowerThanDecoding: [String] { keys.filter(\.slowerThanDecoding).map(\.key) }
    /// The number of inputs checked, over every key.
    public var inputs: Int { keys.reduce(0) { $0 + $1.inputs } }
    /// Keys the time limit stopped the run before (not a failure; see ``ConformanceOptions/timeLimit``).
    public var notReached: [String] { keys.filter(\.notReached).map(\.key) }

    /// A report of `keys` (for tools that merge or print reports).
    public init(keys: [KeyReport] = []) { self.keys = keys }

    /// Every failure of every key.
    public var failures: [KernelConformance.Failure] { keys.flatMap(\.failures) }
    /// No failure, every kernel fired, every key generated (keys not reached in the time limit do not
    /// count against it: the check sampled less, it found nothing wrong).
    public var passed: Bool { failures.isEmpty && neverFired.isEmpty && keys.allSatisfy { $0.notGenerated == nil } }

    public var description: String {
        var lines = keys.map(\.description)
        if !neverFired.isEmpty { lines.append("never fired: " + neverFired.joined(separator: ", ")) }
        if !slowerThanBuiltIn.isEmpty {
            lines.append("slower than the built-in kernels they replace: " + slowerThanBuiltIn.joined(separator: ", "))
        }
        if !slowerThanDecoding.isEmpty {
            lines.append("slower than decoding first: " + slowerThanDecoding.joined(separator: ", "))
        }
        if let t = stoppedAfter {
            lines.append(
                "stopped by the time limit after \(String(format2: t)) s: \(inputs) inputs checked"
                    + (notReached.isEmpty ? "" : "; not reached: " + notReached.joined(separator: ", ")))
        }
        for f in failures.prefix(5) { lines.append(f.description) }
        lines.append(passed ? "PASSED (\(inputs) inputs)" : "FAILED")
        return lines.joined(separator: "\n")
    }
}

/// The conformance kit: checks every kernel, compressor hook and encoding storage a plugin registers
/// against the engine without the plugin, on inputs generated for each of them.
///
/// For each (parent, child) key the plugin registers, it makes arrays of the child's encoding —
/// built-in encodings directly, the plugin's own through its compressor hooks, from columns the hooks
/// accept — with values that look like data (decimals such as 12.34, integers near the type's bounds,
/// ±0.0, NaN, subnormals, long and non-ASCII text) and edge cases (empty, one row, all null, sliced at
/// an offset, nested encodings, and malformed children such as dictionary codes past the values, which
/// must be an error and not a crash), puts the parent on top (compare and arithmetic with constants
/// from the column and between its neighbouring values, like, cast, aggregates, filter, take, slice),
/// and executes each input twice: with the engine's built-ins plus the plugin's kernels, and with no
/// kernels at all — over the canonical column as it was before the hook ran, when a hook made the
/// child. Both must give the same dtype, length and values (floats bit for bit, any NaN equal), or
/// both must fail.
///
/// Each compressor hook must give back, decoded, exactly the column it was given; each encoding
/// storage must read back exactly what it wrote, and read damaged parts as an error or the original.
/// The kit also runs the inputs on two threads at once, reports kernels that never fired, and times
/// one large input per key. See the article "Verifying a plugin" for the result contracts and what
/// the kit does not check.
///
/// ```swift
/// @Test func conforms() throws {
///     let report = try PluginConformance.check(MyPlugin.self)
///     print(report)
///     #expect(report.passed, "\(report)")
/// }
/// ```
public enum PluginConformance {
    /// Checks the kernels, compressor hooks and encoding storages plugin `P` registers.
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
        var keys: [KeyPlan] = []
        for k in registrar.kernels {
            if let i = keys.firstIndex(where: { $0.parent == k.parent && $0.child == k.child }) {
                keys[i].names.insert(k.name)
            } else {
                keys.append(KeyPlan(parent: k.parent, child: k.child, names: [k.name]))
            }
        }
        return run(
            session: session, keys: keys, underTest: { !$0.isBuiltin }, hooks: registrar.compressorHooks,
            storages: registrar.storages, options: options, builtIns: Session())
    }

    /// Checks the engine's own kernels the same way (every key that has a built-in kernel).
    public static func checkBuiltins(options: ConformanceOptions = ConformanceOptions()) -> ConformanceReport {
        let session = Session()
        let entries = session.kernels.snapshot.entries.filter { !$0.kernels.isEmpty }
        return run(
            session: session,
            keys: entries.map { KeyPlan(parent: $0.parent, child: $0.child, names: Set($0.kernels.map(\.name))) },
            underTest: \.isBuiltin, hooks: [], storages: [], options: options)
    }

    /// One (parent, child) key to check and the names of the kernels under test registered for it.
    struct KeyPlan {
        let parent: EncodingID
        let child: EncodingID
        var names: Set<String>
        var key: String { "\(parent.name)|\(child.name)" }
    }

    /// What one key checks: a kernel key, a compressor hook, or an encoding's storage.
    enum Subject {
        case kernels(KeyPlan)
        case hook(CompressorHook)
        case storage(EncodingStorage)

        var key: String {
            switch self {
            case .kernels(let plan): plan.key
            case .hook(let hook): "hook:\(hook.name)"
            case .storage(let storage): "storage:\(storage.encoding.name)"
            }
        }
    }

    /// A key's progress through the run.
    struct KeyRun {
        let subject: Subject
        var report: KeyReport
        var next = 0
        var lastProblem = "no dtype fits both encodings"
        var generated = 0
        var checked: [(index: Int, node: any ArrayNode, result: Result<any ArrayNode, any Error>)] = []
    }

    /// The checks of one run, shared by every key.
    struct Checker {
        let session: Session
        let reference = Session(builtins: false)
        let underTest: (KernelOwner) -> Bool
        let hooks: [CompressorHook]
        let options: ConformanceOptions
        let storages: (String) -> EncodingStorage?
    }

    static func run(
        session: Session, keys: [KeyPlan], underTest: @escaping (KernelOwner) -> Bool, hooks: [CompressorHook],
        storages: [EncodingStorage], options: ConformanceOptions, builtIns: Session? = nil
    )
        -> ConformanceReport
    {
        let start = ContinuousClock.now
        func elapsed() -> Double { Timing.seconds(ContinuousClock.now - start) }
        func outOfTime() -> Bool { options.timeLimit.map { elapsed() >= $0 } ?? false }
        // The keys the engine alone has kernels for: there the plugin's kernels are also timed against them.
        let builtInKeys = Set(
            (builtIns?.kernels.snapshot.entries ?? []).filter { !$0.kernels.isEmpty }.map {
                "\($0.parent.name)|\($0.child.name)"
            })
        let snapshot = session.kernels.snapshot
        let checker = Checker(
            session: session, underTest: underTest, hooks: hooks, options: options,
            storages: { snapshot.storage(for: $0) })
        var subjects: [Subject] = []
        var seen = Set<String>()
        for s in keys.map(Subject.kernels) + hooks.map(Subject.hook) + storages.map(Subject.storage)
        where seen.insert(s.key).inserted && (options.onlyKey == nil || options.onlyKey == s.key) {
            subjects.append(s)
        }
        var runs = subjects.map { KeyRun(subject: $0, report: KeyReport(key: $0.key)) }
        let indices = (0..<options.inputsPerKey).filter { options.onlyInput == nil || options.onlyInput == $0 }
        // Rounds of a few inputs per key, so that a time limit still reaches every key.
        var stopped = false
        var position = 0
        rounds: while position < indices.count {
            let round = indices[position..<Swift.min(indices.count, position + 8)]
            position += round.count
            for r in runs.indices {
                for index in round {
                    if outOfTime() {
                        stopped = true
                        break rounds
                    }
                    checker.check(&runs[r], index: index)
                }
            }
        }
        var report = ConformanceReport()
        var complete = Set<String>()
        var fired = Set<String>()
        for var run in runs {
            run.report.inputs = run.generated
            if run.generated == 0 {
                if stopped && run.next < indices.count {
                    run.report.notReached = true
                } else {
                    run.report.notGenerated = run.lastProblem
                }
            }
            fired.formUnion(run.report.fired.keys)
            if case .kernels(let plan) = run.subject, run.next >= indices.count { complete.formUnion(plan.names) }
            if case .kernels(let plan) = run.subject, !stopped, run.generated > 0 {
                if options.twoThreads { checker.checkTwoThreads(&run) }
                if options.timingRows > 0 && !outOfTime() {
                    let timed = time(
                        session, plan: plan, hooks: hooks, options: options, underTest: underTest,
                        builtIns: builtInKeys.contains(plan.key) ? builtIns : nil)
                    run.report.speedRatio = timed.ratio
                    run.report.builtInRatio = timed.builtInRatio
                    if let f = timed.failure { run.report.failures.append(f) }
                }
            }
            report.keys.append(run.report)
        }
        if stopped { report.stoppedAfter = elapsed() }
        report.neverFired = complete.subtracting(fired).sorted()
        if options.onlyKey != nil || options.onlyInput != nil { report.neverFired = [] }
        return report
    }

    /// One input for a kernel key: the tree the kernels run on and, when the child was made by a
    /// compressor hook, the same tree over the canonical column the hook was given.
    struct Input {
        let node: any ArrayNode
        var made: HookSample?
        /// `node` with the hook's output replaced by the canonical column (never seen by plugin code).
        var canonicalNode: (any ArrayNode)?
    }

    /// One input for the key: a child of the child encoding under a parent of the parent encoding,
    /// or nil when this draw does not fit (the next index draws again).
    static func makeInput(
        _ g: inout ArrayGenerator, parent: EncodingID, child: EncodingID, hooks: [CompressorHook],
        rows: Int?, samples: [any ArrayNode] = []
    ) throws -> Input? {
        let dtypes = ArrayGenerator.dtypes.filter { dtype in
            switch parent {
            case LikeFunction.id: if case .utf8 = dtype { true } else { false }
            case ArithmeticFunction.id, NegateFunction.id: if case .primitive = dtype { true } else { false }
            case NotFunction.id: if case .bool = dtype { true } else { false }
            default: true
            }
        }
        if !ArrayGenerator.makes(child) {
            // A plugin's encoding comes only from its compressor hooks: draw only the dtypes and column
            // shapes they take, so that every input of the budget is one of this key's.
            let fit = dtypes.filter { d in hooks.contains { $0.applies(d) } }
            guard !fit.isEmpty else {
                throw EddyError(
                    .unsupported, "no compressor hook of the plugin applies to a dtype \(parent.name) takes")
            }
            guard
                let made = try hookSample(
                    &g, hooks: hooks, dtypes: fit, rows: rows, samples: samples, wanting: { $0.encoding == child })
            else { return nil }
            // The parent is put over the canonical column first (its constants come from the column, not
            // from plugin code), then the hook's output takes the column's place.
            guard let canonicalNode = try g.parent(parent, over: made.canonical),
                let node = try substitute(made.output, for: made.canonical, in: canonicalNode)
            else { return nil }
            return Input(node: node, made: made, canonicalNode: canonicalNode)
        }
        // Only the dtypes the child encoding holds, so that each draw is one of this key's inputs.
        let holds = dtypes.filter { ArrayGenerator.encoding(child, holds: $0) }
        guard
            let node = try makeChild(
                &g, child, dtype: g.pick(holds.isEmpty ? dtypes : holds), hooks: hooks, rows: rows),
            let parentNode = try g.parent(parent, over: node)
        else { return nil }
        return Input(node: parentNode)
    }

    /// `tree` with the node `old` (by identity) replaced by `new`, or nil when `old` is not in it.
    static func substitute(_ new: any ArrayNode, for old: any ArrayNode, in tree: any ArrayNode) throws
        -> (any ArrayNode)?
    {
        if tree === old { return new }
        var children = tree.children
        for i in children.indices {
            if let replaced = try substitute(new, for: old, in: children[i]) {
                children[i] = replaced
                return try tree.replacingChildren(children)
            }
        }
        return nil
    }

    /// An array whose top encoding is `encoding`, one the generators make (a plugin's encodings come
    /// from ``makeInput(_:parent:child:hooks:rows:samples:)``).
    static func makeChild(
        _ g: inout ArrayGenerator, _ encoding: EncodingID, dtype: DType, hooks: [CompressorHook],
        rows: Int?
    ) throws -> (any ArrayNode)? {
        let n = rows ?? g.count()
        let column = try g.column(dtype, count: n)
        let ownHooks = hooks.filter { $0.applies(dtype) }
        if !ownHooks.isEmpty, g.chance(0.5) {
            // A plugin's hook may also make one of the engine's encodings: its output is an input too.
            for _ in 0..<2 {
                let candidate = try g.column(dtype, count: n, extremes: false)
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
        if encoding == IntStringArray.id, rows == nil {
            // Ids with a number in fixed text are one column shape in several: draw until one is.
            for _ in 0..<12 {
                let ids = try g.column(dtype, count: n)
                if let made = try g.encode(ids, as: encoding, depth: g.int(1...3)) { return made }
            }
            return nil
        }
        if encoding == column.encoding { return try g.encode(column, as: encoding, depth: 1) }
        return try g.encode(column, as: encoding, depth: g.int(1...3))
    }

    /// Seconds with the kernels over seconds decoding first, and over seconds with `builtIns` (a session
    /// of the engine's own kernels) when given, on one large input (best of three each, interleaved).
    static func time(
        _ session: Session, plan: KeyPlan, hooks: [CompressorHook], options: ConformanceOptions,
        underTest: (KernelOwner) -> Bool, builtIns: Session?
    ) -> (ratio: Double?, builtInRatio: Double?, failure: KernelConformance.Failure?) {
        let key = plan.key
        for attempt in 0..<20 {
            var g = ArrayGenerator(seed: inputSeed(options.seed, key, -1 - attempt))
            guard
                let input = try? makeInput(
                    &g, parent: plan.parent, child: plan.child, hooks: hooks, rows: options.timingRows)
            else { continue }
            let node = input.node
            let trace = ExecutionTrace()
            guard (try? session.makeContext(trace: trace).execute(node)) != nil,
                trace.events.contains(where: { plan.names.contains($0.name) && underTest($0.owner) })
            else { continue }
            let reference = Session(builtins: false)
            func best(_ body: () -> Void) -> Double { Timing.best(3, body) }
            // The large input is checked too: a kernel wrong only past the generated sizes is caught here.
            let expected = Self.reference(input.canonicalNode ?? node, in: reference)
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
    static func reference(_ node: any ArrayNode, in session: Session = Session(builtins: false))
        -> Result<any ArrayNode, any Error>
    {
        Result { try session.makeContext(options: ExecutionOptions(useKernels: false)).execute(node) }
    }

    static func failure(
        _ problem: String, _ node: any ArrayNode, _ options: ConformanceOptions, _ key: String,
        _ index: Int, check: KernelConformance.Check = .kernel, input: String? = nil
    ) -> KernelConformance.Failure {
        KernelConformance.Failure(
            input: input ?? node.treeDescription(),
            problem: problem
                + "\n  reproduce: ConformanceOptions(seed: \(options.seed), onlyKey: \"\(key)\", onlyInput: \(index))",
            check: check, key: key)
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
