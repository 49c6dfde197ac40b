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

    public init() {}

    func record(_ event: Event) { storage.withLock { $0.append(event) } }

    /// The steps recorded so far, in order.
    public var events: [Event] { storage.withLock { $0 } }
}
