/// An error raised by the engine, with a code, a message, an optional cause, and where it came from.
public struct EddyError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's text, shown in error descriptions; two codes are equal when their names are.
        public let name: String
        /// A code named `name`.
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// An argument is malformed: a wrong length or width, unsorted positions and the like.
        public static let invalidArgument = Code("invalid argument")
        /// A value or an array has a type the operation does not accept.
        public static let typeMismatch = Code("type mismatch")
        /// An index or a range lies outside an array or a buffer.
        public static let outOfBounds = Code("out of bounds")
        /// A kernel, rule, compressor hook or encoding broke the executor's contract: a result of the wrong
        /// length or dtype, or a request for a child slot that does not exist.
        public static let kernelContract = Code("kernel broke its contract")
        /// Plugin code (a kernel, rule, compressor hook or registration) failed; ``EddyError/cause`` holds the
        /// underlying error when there is one.
        public static let kernelFailed = Code("kernel failed")
        /// Execution did not converge within ``ExecutionOptions/iterationLimit`` steps.
        public static let iterationLimit = Code("iteration limit")
        /// The operation is not implemented for these inputs (for example, comparing struct values).
        public static let unsupported = Code("unsupported")
        /// An integer result does not fit its type.
        public static let overflow = Code("overflow")
        /// Integer division by zero.
        public static let divideByZero = Code("division by zero")
        /// A value cannot be converted to the target type (out of range, or text that does not parse).
        public static let invalidCast = Code("invalid cast")
    }

    /// What kind of failure this is.
    public var code: Code
    /// What went wrong, for people: it names the values and rows involved where it can.
    public var message: String
    /// The error that led to this one, if any.
    public var cause: (any Error)?
    /// Who raised it: a kernel, a rule, an encoding, or an owner such as a plugin.
    public var source: String?

    /// An error of `code` with `message`, optionally caused by `cause` and attributed to `source`.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil, source: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
        self.source = source
    }

    public var description: String {
        // Messages and causes may be a plugin's text: control characters other than newlines are shown
        // escaped (`\u{1b}`), so that an error cannot send terminal escapes; a cause's lines stay indented.
        var s = "\(code): \(Self.visible(message))"
        if let source { s += " [\(Self.visible(source))]" }
        if let cause {
            let inner = Self.visible(String(describing: cause)).split(separator: "\n").map { "  " + $0 }
                .joined(separator: "\n")
            s += "\n  caused by:\n" + inner
        }
        return s
    }

    /// `text` (at most 8192 characters) with control and format characters other than newlines escaped.
    static func visible(_ text: String) -> String {
        var out = ""
        for u in text.unicodeScalars.prefix(8192) {
            let category = u.properties.generalCategory
            if u != "\n" && (category == .control || category == .format) {
                out += "\\u{\(String(u.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }
}
