/// A point-in-time execution context: the registry snapshot it was created with, options, and an
/// optional trace. The host creates one per evaluation; a kernel receives it and executes children
/// with ``execute(_:)``.
///
/// Not frozen: its layout is the SDK's to change (a cancellation token or a memory budget may join
/// it) without breaking plugins built against an older SDK.
public struct ExecutionCtx: Sendable {
    /// The kernels and rules this context uses, fixed at creation.
    @_spi(Host) public let snapshot: KernelSnapshot
    /// The options of this evaluation.
    public let options: ExecutionOptions
    /// The trace this evaluation records into, if any.
    public let trace: ExecutionTrace?

    @_spi(Host)
    public init(snapshot: KernelSnapshot, options: ExecutionOptions = ExecutionOptions(), trace: ExecutionTrace? = nil)
    {
        self.snapshot = snapshot
        self.options = options
        self.trace = trace
    }

    /// Executes `array` to canonical form.
    public func execute(_ array: any ArrayNode) throws -> any ArrayNode {
        try executeUntil(array, .canonical)
    }

    /// Executes `array` until it satisfies `target`, with an explicit stack (no recursion over the tree).
    ///
    /// Each iteration tries, in order: the node's own `reduce`; reduce-parent rules of its children;
    /// execute-parent kernels against the suspended parent on the stack, then against the node's own
    /// children; and last the node's own `execute`, which either finishes or asks for a child slot to be
    /// executed first.
    /// - Throws: a kernel's error, a contract violation naming the kernel and its owner, or
    ///   ``EddyError/Code/iterationLimit`` for a plan that does not converge.
    public func executeUntil(_ array: any ArrayNode, _ target: ExecutionTarget) throws -> any ArrayNode {
        var stack: [Frame] = []
        var current = array
        var currentTarget = target
        var iterations = 0
        let useKernels = options.useKernels
        let nesting = trace?.enter()
        defer { if let nesting { trace?.leave(restoring: nesting.saved) } }
        let base = nesting?.base ?? 0
        while true {
            if currentTarget.isSatisfied(by: current) {
                guard let frame = stack.popLast() else { return current }
                do {
                    current = try frame.parent.replacingChild(at: frame.slot, with: current)
                } catch {
                    throw attributed(error, of: frame.parent)
                }
                currentTarget = frame.target
                continue
            }
            iterations += 1
            trace?.at(base + stack.count)
            if iterations > options.iterationLimit {
                throw EddyError(
                    .iterationLimit,
                    "execution did not converge within \(options.iterationLimit) steps (at \(current.encoding))")
            }
            if useKernels {
                if let reduced = try ownReduce(current, depth: base + stack.count) {
                    current = reduced
                    continue
                }
                if let rewritten = try reduceParentOverChildren(current, depth: base + stack.count) {
                    current = rewritten
                    continue
                }
                if let frame = stack.last,
                    let result = try executeParent(
                        frame.parent, child: current, slot: frame.slot, depth: base + stack.count - 1)
                {
                    stack.removeLast()
                    current = result
                    currentTarget = frame.target
                    continue
                }
                if let result = try executeParentOverChildren(current, depth: base + stack.count) {
                    current = result
                    continue
                }
            }
            let executed: ExecuteStep
            do {
                executed = try current.execute(self)
            } catch {
                throw attributed(error, of: current)
            }
            switch executed {
            case .done(let result):
                current = try checkedResult(result, of: current, depth: base + stack.count)
            case .executeChild(let slot, let childTarget):
                let child = try childToExecute(slot, of: current, depth: base + stack.count)
                stack.append(Frame(parent: current, slot: slot, target: currentTarget))
                current = child
                currentTarget = childTarget
            }
        }
    }

    /// The node's own `reduce`, checked and traced; nil when it has none to give.
    private func ownReduce(_ current: any ArrayNode, depth: Int) throws -> (any ArrayNode)? {
        let reducedOrNil: (any ArrayNode)?
        do {
            reducedOrNil = try current.reduce()
        } catch {
            throw attributed(error, of: current)
        }
        guard let reduced = reducedOrNil else { return nil }
        let owner = encodingOwner(of: current)
        trace?.record(.init(step: .reduce, encoding: "\(current.encoding)", name: "", owner: owner, depth: depth))
        return try check(reduced, replacing: current, by: "reduce of \(current.encoding)", owner: owner)
    }

    /// The result of the node's own `execute`, checked and traced.
    private func checkedResult(_ result: any ArrayNode, of current: any ArrayNode, depth: Int) throws -> any ArrayNode {
        // A plugin encoding's own execute is the plugin's code: its step and a broken result are
        // the plugin's (the engine's encodings cost one set lookup here).
        let encoding = current.encoding
        let owner = encodingOwner(of: current)
        trace?.record(.init(step: .execute, encoding: "\(encoding)", name: "", owner: owner, depth: depth))
        do {
            return try check(result, replacing: current, by: "execute of \(encoding)", owner: owner)
        } catch {
            throw attributed(error, of: current)
        }
    }

    /// The child the node's own `execute` asked to execute first, traced; its slot checked.
    private func childToExecute(_ slot: Int, of current: any ArrayNode, depth: Int) throws -> any ArrayNode {
        let encoding = current.encoding
        trace?.record(
            .init(
                step: .executeChild, encoding: "\(encoding)", name: "slot \(slot)",
                owner: encodingOwner(of: current), depth: depth))
        let children = current.children
        guard slot >= 0 && slot < children.count else {
            throw EddyError(.kernelContract, "\(encoding) asked to execute child slot \(slot) of \(children.count)")
        }
        return children[slot]
    }

    /// One step of execution: the array after a single rule, kernel or execute step (the array itself
    /// if it is canonical). A step that asks for a child executes that child to its target first.
    public func step(_ array: any ArrayNode) throws -> any ArrayNode {
        if array.isCanonical { return array }
        if options.useKernels {
            if let r = try array.reduce() {
                return try check(
                    r, replacing: array, by: "reduce of \(array.encoding)", owner: encodingOwner(of: array))
            }
            if let r = try reduceParentOverChildren(array, depth: 0) { return r }
            if let r = try executeParentOverChildren(array, depth: 0) { return r }
        }
        switch try array.execute(self) {
        case .done(let r):
            return try check(r, replacing: array, by: "execute of \(array.encoding)", owner: encodingOwner(of: array))
        case .executeChild(let slot, let target):
            let child = try executeUntil(array.children[slot], target)
            return try array.replacingChild(at: slot, with: child)
        }
    }

    struct Frame {
        let parent: any ArrayNode
        let slot: Int
        let target: ExecutionTarget
    }

    private func reduceParentOverChildren(_ node: any ArrayNode, depth: Int) throws -> (any ArrayNode)? {
        let parentID = node.encoding
        guard snapshot.hasRules(parent: parentID) else { return nil }
        for (slot, child) in node.children.enumerated() {
            for rule in snapshot.rules(parent: parentID, child: child.encoding) {
                let result: (any ArrayNode)?
                do {
                    result =
                        try rule.callSite.map { site in try site.run { try rule.function(node, child, slot) } }
                        ?? rule.function(node, child, slot)
                } catch {
                    throw blame(error, "reduce-parent rule '\(rule.name)'", rule.owner)
                }
                if let result {
                    let r = try check(
                        result, replacing: node, by: "reduce-parent rule '\(rule.name)'", owner: rule.owner)
                    trace?.record(
                        .init(
                            step: .reduceParent, encoding: "\(parentID)", name: rule.name, owner: rule.owner,
                            depth: depth))
                    return r
                }
            }
        }
        return nil
    }

    private func executeParent(_ parent: any ArrayNode, child: any ArrayNode, slot: Int, depth: Int) throws
        -> (any ArrayNode)?
    {
        for kernel in snapshot.kernels(parent: parent.encoding, child: child.encoding) {
            let result: (any ArrayNode)?
            do {
                result =
                    try kernel.callSite.map { site in try site.run { try kernel.function(parent, child, slot, self) } }
                    ?? kernel.function(parent, child, slot, self)
            } catch {
                throw blame(error, "kernel '\(kernel.name)'", kernel.owner)
            }
            if let result {
                let r = try check(result, replacing: parent, by: "kernel '\(kernel.name)'", owner: kernel.owner)
                trace?.record(
                    .init(
                        step: .executeParent, encoding: "\(parent.encoding)", name: kernel.name,
                        owner: kernel.owner, depth: depth))
                return r
            }
        }
        return nil
    }

    private func executeParentOverChildren(_ node: any ArrayNode, depth: Int) throws -> (any ArrayNode)? {
        guard snapshot.hasKernels(parent: node.encoding) else { return nil }
        for (slot, child) in node.children.enumerated() {
            if let r = try executeParent(node, child: child, slot: slot, depth: depth) { return r }
        }
        return nil
    }

    @inline(__always)
    private func check(
        _ result: any ArrayNode, replacing node: any ArrayNode, by what: @autoclosure () -> String,
        owner: KernelOwner
    ) throws -> any ArrayNode {
        if result.count != node.count || result.dtype != node.dtype {
            throw EddyError(
                .kernelContract,
                "\(what()) of \(owner) returned length \(result.count) and dtype \(result.dtype) for a \(node.encoding) "
                    + "of length \(node.count) and dtype \(node.dtype)",
                source: owner.description)
        }
        if !owner.isBuiltin, let impostor = EngineEncodings.impostor(in: result) {
            throw EddyError(
                .kernelContract,
                "\(what()) of \(owner) returned a \(type(of: impostor)) that claims the engine's encoding "
                    + "\(impostor.encoding) (a plugin's encodings are named after the plugin)",
                source: owner.description)
        }
        return result
    }

    /// Who wrote `node`'s own `reduce` and `execute`: the plugin that declared its encoding, or the
    /// engine for its own encodings (and for undeclared ones, as ``attributed(_:of:)`` does).
    private func encodingOwner(of node: any ArrayNode) -> KernelOwner {
        guard !EngineEncodings.types.contains(ObjectIdentifier(type(of: node))) else { return .builtin }
        return snapshot.owner(ofEncoding: node.encoding) ?? .builtin
    }

    /// An error from a node's own `execute`, attributed to the plugin that declared the node's encoding
    /// when the node is a plugin's (the engine's own nodes, and undeclared encodings, keep the error).
    private func attributed(_ error: any Error, of node: any ArrayNode) -> any Error {
        guard !EngineEncodings.types.contains(ObjectIdentifier(type(of: node))),
            let owner = snapshot.owner(ofEncoding: node.encoding)
        else { return error }
        return blame(error, "encoding '\(node.encoding)'", owner)
    }

    private func blame(_ error: any Error, _ what: String, _ owner: KernelOwner) -> any Error {
        if owner.isBuiltin { return error }
        if let e = error as? EddyError, e.source == owner.description { return e }
        // A contract violation (or a failure already attributed) deeper down, in an execution this
        // kernel started, stays with the kernel that caused it, not the one that called it.
        if let e = error as? EddyError, e.source != nil, e.code == .kernelContract || e.code == .kernelFailed {
            return e
        }
        return EddyError(.kernelFailed, "\(what) of \(owner) failed", cause: error, source: owner.description)
    }
}
