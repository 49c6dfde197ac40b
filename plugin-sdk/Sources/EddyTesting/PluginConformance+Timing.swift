@_spi(Host) import Eddy

extension PluginConformance {
    /// Seconds with the kernels over seconds decoding first, and over seconds with `builtIns` (a session
    /// of the engine's own kernels) when given, on one large input (best of three each, interleaved).
    static func time(
        _ session: Session, plan: KeyPlan, hooks: [CompressorHook], options: ConformanceOptions,
        underTest: (KernelOwner) -> Bool, builtIns: Session?
    ) -> (ratio: Double?, builtInRatio: Double?, failure: KernelConformance.Failure?, notTimed: String?) {
        let key = plan.key
        let attempts = 20
        var made = 0
        for attempt in 0..<attempts {
            var g = ArrayGenerator(seed: inputSeed(options.seed, key, -1 - attempt))
            guard
                let input = try? makeInput(
                    &g, parent: plan.parent, child: plan.child, hooks: hooks, rows: options.timingRows)
            else { continue }
            made += 1
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
                    nil, nil, failure("on the \(options.timingRows)-row input: " + problem, node, options, key, index),
                    nil
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
            return (slow > 0 ? fast / slow : nil, builtInRatio, nil, nil)
        }
        let why =
            made == 0
            ? "no \(options.timingRows)-row input could be generated for the key"
            : "no kernel under test fired on the \(made) \(options.timingRows)-row inputs tried (seeded by "
                + "ConformanceOptions.seed; a kernel that declines most inputs of its key may need another seed)"
        return (nil, nil, nil, why)
    }
}
