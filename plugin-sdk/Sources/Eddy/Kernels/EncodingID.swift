import Synchronization

/// The interned identity of an encoding, such as `eddy.dict`.
///
/// Interning turns the stable string into a small dense index, so that kernel lookup is an index
/// into a flat table rather than a hash of two strings per node.
@frozen
public struct EncodingID: Hashable, Sendable, CustomStringConvertible {
    /// Dense index, unique within this process.
    public let index: Int

    /// Interns `name` (idempotent: the same name always gives the same id).
    public init(_ name: String) {
        index = EncodingInterner.shared.intern(name)
    }

    /// The encoding's stable name.
    public var name: String { EncodingInterner.shared.name(of: index) }

    public var description: String { name }

    /// The number of encodings interned so far in this process.
    public static var internedCount: Int { EncodingInterner.shared.count }

    /// The id of an already interned name, or nil.
    public static func lookup(_ name: String) -> EncodingID? {
        EncodingInterner.shared.lookup(name).map { EncodingID(index: $0) }
    }

    @usableFromInline init(index: Int) { self.index = index }
}

final class EncodingInterner: Sendable {
    static let shared = EncodingInterner()

    private struct State {
        var names: [String] = []
        var indices: [String: Int] = [:]
    }
    private let state = Mutex(State())

    func intern(_ name: String) -> Int {
        state.withLock { s in
            if let i = s.indices[name] { return i }
            let i = s.names.count
            s.names.append(name)
            s.indices[name] = i
            return i
        }
    }

    func lookup(_ name: String) -> Int? { state.withLock { $0.indices[name] } }
    func name(of index: Int) -> String { state.withLock { $0.names[index] } }
    var count: Int { state.withLock { $0.names.count } }
}
