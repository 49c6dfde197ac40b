import Synchronization

/// Records every step the executor takes: what fired, on which node, and who owns it.
public final class ExecutionTrace: Sendable {
    /// The layer a step came from.
    public enum Step: String, Sendable {
        /// A node's own ``ArrayNode/reduce()`` rewrote it.
        case reduce
        /// A reduce-parent rule rewrote a node from one child's metadata.
        case reduceParent = "reduce-parent"
        /// An execute-parent kernel computed a node from one child's encoded form.
        case executeParent = "execute-parent"
        /// A node's own ``ArrayNode/execute(_:)`` produced its result.
        case execute
        /// A node's own execute asked for a child slot to be executed first (the event's name is the slot).
        case executeChild = "execute-child"
    }

    /// One executor step.
    public struct Event: Sendable, CustomStringConvertible {
        /// Which layer the step came from.
        public let step: Step
        /// The node the step applied to.
        public let encoding: String
        /// The rule or kernel that fired (empty for an encoding's own execute).
        public let name: String
        /// Who registered the rule or kernel that fired; ``KernelOwner/builtin`` for the engine's own steps.
        public let owner: KernelOwner
        /// Depth of the executor's stack when it fired.
        public let depth: Int

        public var description: String {
            let who = name.isEmpty ? "" : " \(name)"
            return String(repeating: "  ", count: depth) + "\(step.rawValue) \(encoding)\(who) [\(owner)]"
        }
    }

    private let storage = Mutex<[Event]>([])
    /// How many executor loops are running (a kernel may run one inside another), and the depth the
    /// innermost one is at, so that nested steps are indented under the step that started them.
    private let cursor = Mutex<(active: Int, depth: Int)>((0, 0))

    /// An empty trace, ready to record the steps of the contexts it is given to.
    public init() {}

    /// Called when an executor loop starts; returns the depth its steps start at.
    func enter() -> (base: Int, saved: Int) {
        cursor.withLock { c in
            let saved = c.depth
            let base = c.active == 0 ? 0 : c.depth + 1
            c.active += 1
            return (base, saved)
        }
    }

    func leave(restoring depth: Int) { cursor.withLock { $0 = ($0.active - 1, depth) } }

    /// The depth of the step about to run (anything it executes nests one level below).
    func at(_ depth: Int) { cursor.withLock { $0.depth = depth } }

    func record(_ event: Event) { storage.withLock { $0.append(event) } }

    /// The steps recorded so far, in order.
    public var events: [Event] { storage.withLock { $0 } }
}
