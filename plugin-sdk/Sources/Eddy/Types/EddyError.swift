/// An error raised by the engine, with a code, a message, an optional cause, and where it came from.
public struct EddyError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let invalidArgument = Code("invalid argument")
        public static let typeMismatch = Code("type mismatch")
        public static let outOfBounds = Code("out of bounds")
        public static let kernelContract = Code("kernel broke its contract")
        public static let kernelFailed = Code("kernel failed")
        public static let iterationLimit = Code("iteration limit")
        public static let unsupported = Code("unsupported")
        public static let overflow = Code("overflow")
        public static let divideByZero = Code("division by zero")
        public static let invalidCast = Code("invalid cast")
    }

    public var code: Code
    public var message: String
    /// The error that led to this one, if any.
    public var cause: (any Error)?
    /// Who raised it: a kernel, a rule, an encoding, or an owner such as a plugin.
    public var source: String?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil, source: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
        self.source = source
    }

    public var description: String {
        var s = "\(code): \(message)"
        if let source { s += " [\(source)]" }
        if let cause {
            let inner = String(describing: cause).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")
            s += "\n  caused by:\n" + inner
        }
        return s
    }
}
