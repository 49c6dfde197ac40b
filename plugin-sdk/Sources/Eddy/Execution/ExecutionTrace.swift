import Synchronization

/// Records every step the executor takes: what fired, on which node, and who owns it.
public final class ExecutionTrace: Sendable {
    /// The layer a step came from.
    public enum Step: String, Sendable {
        case reduce
        case reduceParent = "reduce-parent"
        case executeParent = "execute-parent"
        case execute
        case executeChild = "execute-child"
    }

    /// One executor step.
    public struct Event: Sendable, CustomStringConvertible {
        public let step: Step
        /// The node the step applied to.
        public let encoding: String
        /// The rule or kernel that fired (empty for an encoding's own execute).
        public let name: String
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
