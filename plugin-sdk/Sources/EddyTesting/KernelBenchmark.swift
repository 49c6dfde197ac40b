@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Times a plugin's kernels on arrays against the engine without them: with the engine's built-in
/// kernels only, and decoding everything first.
///
/// Each input runs three ways, interleaved, best of `repetitions` each: with the engine's built-ins
/// plus the plugin's kernels, with the built-ins alone (what the plugin replaces), and with no kernels
/// at all (decode-then-compute). The result says which kernels fired with the plugin, and whose they
/// are. Figures are reported, never asserted: a timing on a shared machine is not a verdict.
///
/// ```swift
/// let inputs = try KernelBenchmark.inputs(for: MyPlugin.self, rows: 1_000_000)
/// for result in try KernelBenchmark.compare(MyPlugin.self, on: inputs) { print(result) }
/// ```
///
/// Use a release build (`swift test -c release`, or an executable target built with `-c release`):
/// debug builds of kernels run several times slower than what ships.
public enum KernelBenchmark {
    /// A kernel or rule that fired on an input.
    public struct Fired: Sendable, Hashable, CustomStringConvertible {
        /// The name it was registered under.
        public let name: String
        /// Who registered it (`builtin`, or `name@version` of a plugin).
        public let owner: String
        /// Whether a plugin registered it (false for the engine's built-ins).
        public let isPlugin: Bool

        /// `name [owner]`.
        public var description: String { "\(name) [\(owner)]" }
    }

    /// What one input measured.
    public struct Result: Sendable, CustomStringConvertible {
        /// The input's top node and its children, as `parent ← child, child` encoding names.
        public let input: String
        /// Rows of the input's longest child (the array the kernels compute on), or of the input
        /// itself when it has no child.
        public let rows: Int
        /// Best seconds with the engine's built-ins plus the plugin's kernels.
        public let withPlugin: Double
        /// Best seconds with the engine's built-in kernels only.
        public let builtInsOnly: Double
        /// Best seconds decoding everything first (no kernels at all).
        public let decodeThenCompute: Double
        /// The kernels and rules that fired with the plugin, in the order they first fired.
        public let fired: [Fired]
        /// What went wrong when the input failed with the plugin (then the times are not meaningful),
        /// or when the plugin's answer differs from decode-then-compute; nil when all went well.
        public let problem: String?

        /// ``withPlugin`` over ``builtInsOnly``: below 1 the plugin is faster than the engine alone.
        public var vsBuiltIns: Double? { builtInsOnly > 0 ? withPlugin / builtInsOnly : nil }
        /// ``withPlugin`` over ``decodeThenCompute``.
        public var vsDecodeThenCompute: Double? { decodeThenCompute > 0 ? withPlugin / decodeThenCompute : nil }
        /// Whether any of the plugin's kernels or rules fired on the input.
        public var pluginFired: Bool { fired.contains(where: \.isPlugin) }

        /// One line: the input, the three times with the plugin's ratios, and what fired.
        public var description: String {
            func ms(_ s: Double) -> String { String(format2: s * 1_000) + " ms" }
            func ratio(_ r: Double?) -> String { r.map { String(format2: $0) + "×" } ?? "–" }
            var s =
                "\(input) (\(rows) rows): plugin \(ms(withPlugin)), built-ins \(ms(builtInsOnly)) "
                + "(\(ratio(vsBuiltIns))), decode-then-compute \(ms(decodeThenCompute)) "
                + "(\(ratio(vsDecodeThenCompute))); fired "
                + (fired.isEmpty ? "nothing" : fired.map(\.description).joined(separator: ", "))
            if !pluginFired { s += " — no kernel of the plugin fired" }
            if let problem { s += " — \(problem)" }
            return s
        }
    }

    /// Runs each of `inputs` with plugin `P`'s kernels, with the engine's built-ins only, and decoding
    /// first, and reports the best time of each.
    ///
    /// - Parameters:
    ///   - plugin: The plugin whose kernels and rules are timed (registered as the host would).
    ///   - inputs: Arrays to execute, typically a parent (compare, aggregate, filter …) over an array of
    ///     the encoding the plugin's kernels take; ``inputs(for:rows:seed:)`` makes one per key.
    ///   - repetitions: Runs of each way per input; the best is kept (at least 1).
    /// - Returns: One result per input, in order.
    /// - Throws: ``EddyError`` when the plugin's registration fails.
    public static func compare<P: EddyPlugin>(_ plugin: P.Type, on inputs: [any ArrayNode], repetitions: Int = 5)
        throws -> [Result]
    {
        let registrar = try registered(P.self)
        let session = Session()
        session.kernels.replace(
            pluginNamed: P.name, kernels: registrar.kernels, rules: registrar.rules, owner: registrar.owner,
            compressorHooks: registrar.compressorHooks, encodings: registrar.encodings, storages: registrar.storages)
        let builtIns = Session()
        let reference = Session(builtins: false)
        let noKernels = ExecutionOptions(useKernels: false)
        return inputs.map { node in
            let trace = ExecutionTrace()
            let answer = Swift.Result { try session.makeContext(trace: trace).execute(node) }
            let problem: String?
            switch answer {
            case .failure(let error): problem = "failed with the plugin: \(error)"
            case .success:
                problem = KernelConformance.compare(
                    answer, PluginConformance.reference(node, in: reference), node
                ).map { "differs from decode-then-compute: \($0)" }
            }
            var fast = Double.infinity
            var engine = Double.infinity
            var slow = Double.infinity
            // Interleaved, so that a machine busy for a moment weighs on all three alike.
            for _ in 0..<Swift.max(1, repetitions) {
                fast = Swift.min(fast, Timing.best(1) { _ = try? session.makeContext().execute(node) })
                engine = Swift.min(engine, Timing.best(1) { _ = try? builtIns.makeContext().execute(node) })
                slow = Swift.min(
                    slow, Timing.best(1) { _ = try? reference.makeContext(options: noKernels).execute(node) })
            }
            return Result(
                input: headline(node), rows: rowCount(node), withPlugin: fast,
                builtInsOnly: engine, decodeThenCompute: slow, fired: fired(in: trace), problem: problem)
        }
    }

    /// One input per (parent, child) key plugin `P` registers, made as the conformance kit makes its
    /// timing input: an array of the child's encoding (the plugin's own encodings through its
    /// compressor hooks) of `rows` rows under a parent of the parent's encoding, on which one of the
    /// plugin's kernels for the key fires when one can be found in a few draws.
    ///
    /// - Parameters:
    ///   - plugin: The plugin whose keys are used.
    ///   - rows: Rows of each input's array.
    ///   - seed: The seed the inputs derive from; the same seed makes the same inputs.
    /// - Returns: The inputs, in the order the keys were registered; a key no input could be made for
    ///   is left out.
    /// - Throws: ``EddyError`` when the plugin's registration fails.
    public static func inputs<P: EddyPlugin>(for plugin: P.Type, rows: Int = 100_000, seed: UInt64 = 1) throws
        -> [any ArrayNode]
    {
        let registrar = try registered(P.self)
        let session = Session()
        session.kernels.replace(
            pluginNamed: P.name, kernels: registrar.kernels, rules: registrar.rules, owner: registrar.owner,
            compressorHooks: registrar.compressorHooks, encodings: registrar.encodings, storages: registrar.storages)
        var keys: [(parent: EncodingID, child: EncodingID)] = []
        for k in registrar.kernels where !keys.contains(where: { $0.parent == k.parent && $0.child == k.child }) {
            keys.append((k.parent, k.child))
        }
        return keys.compactMap { key in
            input(
                parent: key.parent, child: key.child, rows: rows, seed: seed, hooks: registrar.compressorHooks,
                session: session, firing: { !$0.isBuiltin }
            )?.node
        }
    }

    /// What one (parent, child) key of a session costs per row on a standard input (`eddy kernels --costs`).
    @_spi(Host)
    public struct KeyCost: Sendable {
        /// The key's parent encoding.
        public let parent: EncodingID
        /// The key's child encoding.
        public let child: EncodingID
        /// Rows of the input's longest child; 0 when not measured.
        public let rows: Int
        /// The key's kernels and rules that fired on the input (empty when none did).
        public let fired: [Fired]
        /// Best seconds with the session's kernels; nil when not measured.
        public let withKernels: Double?
        /// Best seconds decoding first; nil when not measured.
        public let decodeThenCompute: Double?
        /// Why the key was not measured, when it was not.
        public let notMeasured: String?
        /// The input, one line per node.
        public let input: String
    }

    /// Measures every key of `session` that has a kernel or a rule: makes an input of `rows` rows for
    /// it (seeded by `seed` and the key, so the same arguments make the same inputs), finds which of
    /// the key's kernels fires, and times it with the session's kernels and decoding first, best of up
    /// to `repetitions` within `budget` seconds per key.
    @_spi(Host)
    public static func costs(
        of session: Session, rows: Int, seed: UInt64, repetitions: Int = 5, budget: Double = 0.05
    ) -> [KeyCost] {
        let snapshot = session.kernels.snapshot
        let reference = Session(builtins: false)
        let noKernels = ExecutionOptions(useKernels: false)
        let entries = snapshot.entries.sorted { ($0.parent.name, $0.child.name) < ($1.parent.name, $1.child.name) }
        return entries.map { entry in
            let names = Set(entry.kernels.map { Named(name: $0.name, owner: $0.owner) })
                .union(entry.rules.map { Named(name: $0.name, owner: $0.owner) })
            guard
                let made = input(
                    parent: entry.parent, child: entry.child, rows: rows, seed: seed, hooks: snapshot.compressorHooks,
                    session: session, firing: { _ in true }, names: names)
            else {
                return KeyCost(
                    parent: entry.parent, child: entry.child, rows: 0, fired: [], withKernels: nil,
                    decodeThenCompute: nil, notMeasured: "no input of this key could be made", input: "")
            }
            let node = made.node
            let fast = Timing.best(repetitions, budget: budget) { _ = try? session.makeContext().execute(node) }
            let slow = Timing.best(repetitions, budget: budget) {
                _ = try? reference.makeContext(options: noKernels).execute(node)
            }
            let fired = fired(in: made.trace).filter { f in
                names.contains { $0.name == f.name && $0.owner.description == f.owner }
            }
            return KeyCost(
                parent: entry.parent, child: entry.child, rows: rowCount(node),
                fired: fired, withKernels: fast, decodeThenCompute: slow,
                notMeasured: made.failed ? "the input fails to execute" : nil, input: node.treeDescription())
        }
    }

    /// A kernel or rule by name and owner.
    struct Named: Hashable {
        let name: String
        let owner: KernelOwner
    }

    /// An input of `rows` rows for key (parent, child), drawn a few times until a kernel or rule of the
    /// key accepted by `firing` (and among `names`, when given) fires on it; else the first that ran.
    static func input(
        parent: EncodingID, child: EncodingID, rows: Int, seed: UInt64, hooks: [CompressorHook], session: Session,
        firing: (KernelOwner) -> Bool, names: Set<Named>? = nil
    ) -> (node: any ArrayNode, trace: ExecutionTrace, failed: Bool)? {
        let key = "\(parent.name)|\(child.name)"
        var fallback: (node: any ArrayNode, trace: ExecutionTrace, failed: Bool)?
        for attempt in 0..<8 {
            var g = ArrayGenerator(seed: PluginConformance.inputSeed(seed, key, -1 - attempt))
            guard
                let made = try? PluginConformance.makeInput(&g, parent: parent, child: child, hooks: hooks, rows: rows)
            else { continue }
            let trace = ExecutionTrace()
            let ran = (try? session.makeContext(trace: trace).execute(made.node)) != nil
            let fired = trace.events.contains { e in
                (e.step == .executeParent || e.step == .reduceParent) && firing(e.owner)
                    && (names?.contains(Named(name: e.name, owner: e.owner))
                        ?? (e.encoding == parent.name || !e.owner.isBuiltin))
            }
            if ran && fired { return (made.node, trace, false) }
            if fallback == nil || (ran && fallback?.failed == true) { fallback = (made.node, trace, !ran) }
        }
        return fallback
    }

    /// The kernels and rules a trace shows firing, each once, in order.
    static func fired(in trace: ExecutionTrace) -> [Fired] {
        var out: [Fired] = []
        for e in trace.events where e.step == .executeParent || e.step == .reduceParent {
            let f = Fired(name: e.name, owner: e.owner.description, isPlugin: !e.owner.isBuiltin)
            if !out.contains(f) { out.append(f) }
        }
        return out
    }

    /// `parent ← child, child` of a node.
    static func headline(_ node: any ArrayNode) -> String {
        node.children.isEmpty
            ? node.encoding.name
            : "\(node.encoding.name) ← " + node.children.map(\.encoding.name).joined(separator: ", ")
    }

    /// Rows of the longest child of `node` (a compare's constant side has as many rows as its column,
    /// a take's indices may have fewer), or of `node` when it has none.
    static func rowCount(_ node: any ArrayNode) -> Int { node.children.map(\.count).max() ?? node.count }

    /// Plugin `P`'s registrations, made as the host makes them.
    static func registered<P: EddyPlugin>(_: P.Type) throws -> PluginRegistrar {
        let registrar = PluginRegistrar(owner: .plugin(P.name, version: P.version))
        try P.register(into: registrar)
        if let failure = registrar.failure { throw EddyError(.kernelFailed, "registration failed: \(failure)") }
        return registrar
    }
}

/// Best-of-N wall-clock timing, shared by the conformance kit and ``KernelBenchmark``.
enum Timing {
    /// Seconds on the monotonic clock (`clock_gettime`, not `ContinuousClock`: that is in Swift's
    /// concurrency library, which the kit does not import, so that `eddy --verify` need not load it).
    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// The best time of up to `repetitions` runs of `body` (at least one), in seconds; with a `budget`,
    /// no further run starts once that many seconds have been spent.
    static func best(_ repetitions: Int, budget: Double? = nil, _ body: () -> Void) -> Double {
        let start = now()
        var out = Double.infinity
        for _ in 0..<Swift.max(1, repetitions) {
            let t = now()
            body()
            out = Swift.min(out, now() - t)
            if let budget, now() - start >= budget { break }
        }
        return out
    }
}
