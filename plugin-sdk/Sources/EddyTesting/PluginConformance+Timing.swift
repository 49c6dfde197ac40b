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
        // Large inputs cost: after `patience` made without the kernel firing, it declines such inputs.
        let patience = 6
        for attempt in 0..<attempts where made < patience {
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
            guard options.timesLargeInputs else { return (nil, nil, nil, "checked, not timed") }
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

    /// One more large input (`options.timingRows` rows) whose integers fill the top of a span of 2^8,
    /// 2^16 or 2^32 values (``ArrayGenerator/spanTops``), checked against decode-then-compute once a
    /// kernel under test fires on it (up to 8 such inputs): a sum kept in an accumulator too narrow for
    /// more than 65,536 such values passes every small input and fails here. Nil when they agree, or
    /// none fired one.
    static func checkSpanTops(
        _ session: Session, plan: KeyPlan, hooks: [CompressorHook], options: ConformanceOptions,
        underTest: (KernelOwner) -> Bool
    ) -> KernelConformance.Failure? {
        // A plugin's own encoding comes from its hook, whose output the small inputs judge.
        guard ArrayGenerator.makes(plan.child) else { return nil }
        var fired = 0
        var missed = 0
        // Up to 8 that fire, in 20 attempts; after 4 inputs that are not integers or on which no kernel
        // under test fired, the key's kernels decline such inputs (a dictionary of 65,536 distinct values
        // costs a large part of a second to make).
        for attempt in 0..<20 where fired < 8 && (fired > 0 || missed < 4) {
            let index = -1_000 - attempt
            var g = ArrayGenerator(seed: inputSeed(options.seed, plan.key, index))
            g.spanTops = true
            // Integer columns in the engine's encodings only: a plugin hook's output is checked against
            // its column by the small inputs, which blame the hook, not a kernel, when it is wrong.
            guard
                let input = try? makeInput(
                    &g, parent: plan.parent, child: plan.child, hooks: hooks, rows: options.timingRows),
                input.made == nil, case .primitive(let p, _)? = input.node.children.first?.dtype, p.isInteger
            else {
                missed += 1
                continue
            }
            let trace = ExecutionTrace()
            let got = Result { try session.makeContext(trace: trace).execute(input.node) }
            guard trace.events.contains(where: { plan.names.contains($0.name) && underTest($0.owner) }) else {
                missed += 1
                continue
            }
            fired += 1
            let expected = Self.reference(input.canonicalNode ?? input.node, in: Session(builtins: false))
            guard let problem = KernelConformance.compare(got, expected, input.node) else { continue }
            return failure(
                "on a \(options.timingRows)-row input of integers at the top of their span: " + problem, input.node,
                options, plan.key, index)
        }
        return nil
    }
}
