@_spi(Host) import Eddy
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension PluginConformance.Checker {
    /// Makes and checks input `index` of `run`'s key.
    func check(_ run: inout PluginConformance.KeyRun, index: Int) {
        run.next += 1
        var g = ArrayGenerator(seed: PluginConformance.inputSeed(options.seed, run.report.key, index))
        switch run.subject {
        case .kernels(let plan): checkKernels(plan, &run, index, &g)
        case .hook(let hook): checkHook(hook, &run, index, &g)
        case .storage(let storage): checkStorage(storage, &run, index, &g)
        }
    }

    /// The kernels on one input against decode-then-compute — on the canonical column when a compressor
    /// hook made the child, after checking that the hook's output decodes to that column.
    func checkKernels(
        _ plan: PluginConformance.KeyPlan, _ run: inout PluginConformance.KeyRun, _ index: Int,
        _ g: inout ArrayGenerator
    ) {
        let input: PluginConformance.Input
        do {
            guard
                let made = try PluginConformance.makeInput(
                    &g, parent: plan.parent, child: plan.child, hooks: hooks, rows: PluginConformance.rows(index, &g),
                    samples: options.sampleColumns, edge: index < PluginConformance.edgeInputs ? index : nil)
            else { return }
            input = made
        } catch {
            run.lastProblem = "\(error)"
            return
        }
        run.generated += 1
        let key = plan.key
        let node = input.node
        // The reference first, on the input as generated; then the kernels; then the reference again: a
        // kernel that changes its input's buffers is caught either way.
        var expected = PluginConformance.reference(node, in: reference)
        var against = ""
        if let made = input.made, let canonicalNode = input.canonicalNode {
            if let problem = hookProblem(made) {
                // The hook is at fault; the kernels are still checked against decoding its output.
                run.report.failures.append(
                    PluginConformance.failure(
                        problem, node, options, key, index, check: .compressorHook, input: made.inputDescription))
            } else {
                expected = PluginConformance.reference(canonicalNode, in: reference)
                against =
                    " (reference: decode-then-compute on the column before compressor hook '\(made.hook.name)' ran)"
            }
        }
        let trace = ExecutionTrace()
        let fast = Result { try session.makeContext(trace: trace).execute(node) }
        run.checked.append((index, node, fast))
        var firedHere: [String] = []
        for e in trace.events where plan.names.contains(e.name) && underTest(e.owner) {
            run.report.fired[e.name, default: 0] += 1
            if !firedHere.contains(e.name) { firedHere.append(e.name) }
        }
        // The kernels under test that ran on this input: a wrong answer names them.
        let by =
            firedHere.isEmpty
            ? "" : " (kernels that fired: " + firedHere.map { "'\($0)'" }.joined(separator: ", ") + ")"
        if let problem = KernelConformance.compare(fast, expected, node) {
            var row = ""
            if case .success(let a) = fast, case .success(let b) = expected, a.count == b.count,
                let i = (0..<a.count).first(where: { i in
                    (try? a.scalar(at: i).value.isIdentical(to: b.scalar(at: i).value)) != true
                })
            {
                if let made = input.made, node.count == made.canonical.count,
                    let v = try? made.canonical.scalar(at: i).value
                {
                    // The value the answer is about: a constant's neighbour is only visible beside it.
                    row = "; row \(i) of the column is \(KernelConformance.show(v))"
                } else if let shown = Self.inputRow(node, i) {
                    row = "; row \(i) of the input is \(shown)"
                }
            }
            run.report.failures.append(
                PluginConformance.failure(problem + row + against + by, node, options, key, index))
        } else if KernelConformance.compare(PluginConformance.reference(node, in: reference), expected) != nil {
            run.report.failures.append(
                PluginConformance.failure("the kernels changed their input" + by, node, options, key, index))
        }
    }

    /// Row `i` of a row-wise parent's encoded argument (a compare's or function's), decoded;
    /// a dictionary's as its code and the value it names, so that a wrong lookup shows which code it
    /// read. Nil for parents whose rows are not their child's (aggregates, filter, take).
    static func inputRow(_ node: any ArrayNode, _ i: Int) -> String? {
        guard !(node is FilterArray), !(node is TakeArray), !(node is AggregateArray) else { return nil }
        // The encoded argument: a dictionary if there is one, else the first that is not a constant.
        let rowWise = node.children.filter { $0.count == node.count && i < $0.count && !($0 is ConstantArray) }
        guard let child = rowWise.first(where: { $0 is DictArray }) ?? rowWise.first else { return nil }
        if let dict = child as? DictArray, let code = try? dict.codes.scalar(at: i) {
            guard let c = code.int64Value, c >= 0, c < dict.values.count, let v = try? dict.values.scalar(at: Int(c))
            else { return "code \(KernelConformance.show(code.value))" }
            return "code \(KernelConformance.show(code.value)) (value \(KernelConformance.show(v.value)))"
        }
        return (try? child.scalar(at: i)).map { KernelConformance.show($0.value) }
    }

    /// Every checked input of `run` again on two threads at once, against the single-thread results.
    func checkTwoThreads(_ run: inout PluginConformance.KeyRun) {
        let nodes = run.checked.map(\.node)
        let threaded = ThreadedResults(count: nodes.count)
        let session = session
        onTwoThreads {
            for (i, node) in nodes.enumerated() {
                threaded.store(i, Result { try session.makeContext().execute(node) })
            }
        }
        for (i, results) in threaded.all.enumerated() {
            for r in results {
                if let problem = KernelConformance.compare(r, run.checked[i].result) {
                    run.report.failures.append(
                        PluginConformance.failure(
                            "on two threads at once: " + problem, run.checked[i].node, options, run.report.key,
                            run.checked[i].index))
                    break
                }
            }
        }
    }
}

extension PluginConformance {
    /// How many of a key's first inputs are made from edge columns (NaN, ±inf, ±0.0, an integer type's
    /// bounds, empty and long text, an integer minimum or maximum alone in the last row) when its
    /// encodings hold them: every budget of 10 inputs or more meets them all.
    static let edgeInputs = 10

    /// The row count of input `index`: nil (the generator's small sizes, 0 to 300, favouring 0, 1, 2 and
    /// 63–65) except for every sixth input, which is batch-sized — around 1,024 and 4,096 rows, one
    /// past and one short, or anything up to 5,000 — so that a kernel wrong only past a few hundred rows
    /// (a chunked or vectorised path, a tail) meets an input in every budget.
    static func rows(_ index: Int, _ g: inout ArrayGenerator) -> Int? {
        guard index % 6 == 5 else { return nil }
        return g.chance(0.5) ? g.pick([1023, 1024, 1025, 2048, 4095, 4096, 4097]) : g.int(301...5000)
    }
}

/// Results of the two-thread run, stored from both threads.
final class ThreadedResults: Sendable {
    private let results: Mutex<[[Result<any ArrayNode, any Error>]]>
    init(count: Int) { results = Mutex(Array(repeating: [], count: count)) }
    func store(_ i: Int, _ r: sending Result<any ArrayNode, any Error>) { results.withLock { $0[i].append(r) } }
    var all: [[Result<any ArrayNode, any Error>]] { results.withLock { $0 } }
}

/// Runs `body` on a new thread and on this one at once, and returns when both have (on this one
/// alone when no thread can be started). A pthread, not Dispatch: Dispatch's Swift overlay links
/// Swift's concurrency library into every process that links the kit — `eddy` among them, for
/// `--verify`.
func onTwoThreads(_ body: @escaping @Sendable () -> Void) {
    final class Work: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let work = Unmanaged.passRetained(Work(body))
    var thread = pthread_t()
    let started = pthread_create(
        &thread, nil,
        { argument in
            if let argument { Unmanaged<Work>.fromOpaque(argument).takeUnretainedValue().body() }
            return nil
        }, work.toOpaque())
    body()
    if started == 0 { pthread_join(thread, nil) } else { body() }
    work.release()
}
