@_spi(Host) import Eddy

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
        let start = Timing.now()
        func elapsed() -> Double { Timing.now() - start }
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
                // The large inputs the time limit leaves out are a check not made: the run was cut short.
                if options.timingRows > 0 {
                    if outOfTime() {
                        stopped = true
                    } else {
                        let timed = time(
                            session, plan: plan, hooks: hooks, options: options, underTest: underTest,
                            builtIns: builtInKeys.contains(plan.key) ? builtIns : nil)
                        run.report.speedRatio = timed.ratio
                        run.report.builtInRatio = timed.builtInRatio
                        run.report.notTimed = timed.notTimed
                        if let f = timed.failure {
                            run.report.failures.append(f)
                        } else if outOfTime() {
                            stopped = true
                        } else if let f = checkSpanTops(
                            session, plan: plan, hooks: hooks, options: options, underTest: underTest)
                        {
                            run.report.failures.append(f)
                        }
                    }
                }
            }
            report.keys.append(run.report)
        }
        if stopped { report.stoppedAfter = elapsed() }
        report.neverFired = complete.subtracting(fired).sorted()
        if options.onlyKey != nil || options.onlyInput != nil { report.neverFired = [] }
        return report
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
                + "\n  reproduce: ConformanceOptions(seed: \(options.seed), onlyKey: \"\(key)\""
                // A large input (negative index) is made after the key's small ones: the key alone makes it again.
                + (index >= 0 ? ", onlyInput: \(index))" : ") (a large input, checked after the key's others)"),
            check: check, key: key)
    }

    /// The seed of input `index` of `key`: each input can be made again on its own.
    static func inputSeed(_ seed: UInt64, _ key: String, _ index: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h ^ UInt64(bitPattern: Int64(index)) &* 0x9E37_79B9_7F4A_7C15
    }
}
