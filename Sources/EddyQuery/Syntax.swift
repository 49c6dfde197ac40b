@_spi(Host) public import Eddy
import EddyIO

/// A parsed expression, with the position of each node in the source text for error carets.
public indirect enum Expr: Sendable {
    case column(String, at: Int)
    case literal(ScalarValue, at: Int)
    case negate(Expr, at: Int)
    case not(Expr, at: Int)
    case binary(String, Expr, Expr, at: Int)
    /// A chain `a and b and …` or `a or b or …` (two or more terms), kept flat so that long chains
    /// cost linear time and no recursion per term.
    case logical(String, [Expr], at: Int)
    case isNull(Expr, negated: Bool, at: Int)
    case like(Expr, pattern: String, negated: Bool, at: Int)
    case cast(Expr, DType, at: Int)
    /// A function call; `star` marks `count(*)`.
    case call(String, [Expr], star: Bool, at: Int)

    public var position: Int {
        switch self {
        case .column(_, let p), .literal(_, let p), .negate(_, let p), .not(_, let p), .binary(_, _, _, let p),
            .logical(_, _, let p), .isNull(_, _, let p), .like(_, _, _, let p), .cast(_, _, let p),
            .call(_, _, _, let p):
            p
        }
    }
}

/// One item of a select list: an expression and the name of its output column.
public struct SelectItem: Sendable {
    public var expr: Expr
    public var name: String
}

/// An error in an expression: what is wrong and where, shown with a caret under the source.
public struct QueryError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var source: String
    public var position: Int
    public var hint: String?

    public init(_ message: String, source: String, position: Int, hint: String? = nil) {
        self.message = message
        self.source = source
        self.position = position
        self.hint = hint
    }

    public var description: String {
        // A long expression is shown as a window around the position, so the caret stays readable.
        let chars = Array(source)
        let at = Swift.max(0, Swift.min(position, chars.count))
        let from = Swift.max(0, at - 60)
        let to = Swift.min(chars.count, at + 60)
        let prefix = from > 0 ? "…" : ""
        let shown = prefix + String(chars[from..<to]) + (to < chars.count ? "…" : "")
        // Control characters would break the two lines apart (or drive a terminal): shown as spaces.
        // Invisible formatting (bidi overrides, zero-width characters) and line separators likewise; a
        // character heavy with combining marks is shown as one mark.
        let line = String(
            shown.map { c -> Character in
                if c.isNewline
                    || c.unicodeScalars.contains(where: {
                        switch $0.properties.generalCategory {
                        case .control, .format, .lineSeparator, .paragraphSeparator: true
                        default: false
                        }
                    })
                {
                    return " "
                }
                return c.unicodeScalars.count > 16 ? "◌" : c
            })
        let caret = String(repeating: " ", count: at - from + prefix.count) + "^"
        var s = "\(message)\n  \(line)\n  \(caret)"
        if let hint { s += "\n\(hint)" }
        return s
    }
}

enum Token: Equatable {
    case identifier(String)
    case quotedIdentifier(String)
    case integer(String)
    case float(String)
    case string(String)
    case symbol(String)
    case end
}

struct Lexer {
    let source: String
    let chars: [Character]
    var i = 0

    init(_ source: String) {
        self.init(source, chars: Array(source))
    }

    /// With the characters of `source` already split (the parser has them).
    init(_ source: String, chars: [Character]) {
        self.source = source
        self.chars = chars
    }

    mutating func tokens() throws -> [(Token, Int)] {
        // Most expressions are ASCII: lexed on bytes, where each byte is one character (a CR could
        // pair with an LF into one, so text with a CR takes the Character path), with the same tokens,
        // positions and errors. Classifying Characters cost a short query microseconds per parse.
        let ascii = source.utf8.allSatisfy { $0 < 0x80 && $0 != 0x0D }
        if ascii, let fast = try source.utf8.withContiguousStorageIfAvailable({ try asciiTokens($0) }) {
            return fast
        }
        return try characterTokens()
    }

    /// ``tokens()`` over ASCII text without a CR, one byte per character.
    func asciiTokens(_ b: UnsafeBufferPointer<UInt8>) throws -> [(Token, Int)] {
        var out: [(Token, Int)] = []
        var i = 0
        let n = b.count
        func digit(_ k: Int) -> Bool { k < n && b[k] >= 48 && b[k] <= 57 }
        func letter(_ k: Int) -> Bool { k < n && (b[k] | 0x20) >= 97 && (b[k] | 0x20) <= 122 }
        func text(_ from: Int, _ to: Int) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: b[from..<to]), as: UTF8.self)
        }
        while true {
            while i < n, b[i] == 0x20 || (b[i] >= 0x09 && b[i] <= 0x0D) { i += 1 }
            let start = i
            guard i < n else {
                out.append((.end, i))
                return out
            }
            let c = b[i]
            if letter(i) || c == UInt8(ascii: "_") {
                while i < n, letter(i) || digit(i) || b[i] == UInt8(ascii: "_") { i += 1 }
                out.append((.identifier(text(start, i)), start))
            } else if digit(i) || (c == UInt8(ascii: ".") && digit(i + 1)) {
                let (token, end) = Self.number(b, from: i)
                out.append((token, start))
                i = end
            } else if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                let (token, end) = try quoted(b, from: i)
                out.append((token, start))
                i = end
            } else {
                let (token, width) = try asciiSymbol(b, at: i)
                out.append((token, start))
                i += width
            }
        }
    }

    /// The number at `start` (digits, a fraction, an exponent) and where it ends: a float when it has
    /// a fraction or an exponent.
    static func number<Units: RandomAccessCollection>(_ b: Units, from start: Int) -> (Token, end: Int)
    where Units.Index == Int, Units.Element: LexUnit {
        let n = b.count
        func digit(_ k: Int) -> Bool { k < n && b[k].isASCIIDigit }
        var i = start
        var isFloat = false
        while digit(i) { i += 1 }
        if i < n, b[i] == .ascii(".") {
            isFloat = true
            i += 1
            while digit(i) { i += 1 }
        }
        if i < n, b[i] == .ascii("e") || b[i] == .ascii("E") {
            var j = i + 1
            if j < n, b[j] == .ascii("+") || b[j] == .ascii("-") { j += 1 }
            if digit(j) {
                isFloat = true
                i = j
                while digit(i) { i += 1 }
            }
        }
        let t = Units.Element.text(b[start..<i])
        return (isFloat ? .float(t) : .integer(t), i)
    }

    /// The string (`'…'`) or quoted column name (`"…"`) at `start`, a doubled quote standing for one,
    /// and where it ends.
    /// - Throws: ``QueryError`` when it is not closed.
    func quoted<Units: RandomAccessCollection>(_ b: Units, from start: Int) throws -> (Token, end: Int)
    where Units.Index == Int, Units.Element: LexUnit {
        let n = b.count
        let c = b[start]
        var i = start + 1
        var units: [Units.Element] = []
        var closed = false
        while i < n {
            if b[i] == c {
                if i + 1 < n, b[i + 1] == c {
                    units.append(c)
                    i += 2
                    continue
                }
                i += 1
                closed = true
                break
            }
            units.append(b[i])
            i += 1
        }
        guard closed else {
            throw QueryError(
                c == .ascii("'") ? "string is not closed" : "quoted column name is not closed",
                source: source, position: start)
        }
        let t = Units.Element.text(units)
        return (c == .ascii("'") ? .string(t) : .quotedIdentifier(t), i)
    }

    /// The operator or punctuation at `i`, and how many bytes it takes.
    /// - Throws: ``QueryError`` for a character that starts no token.
    func asciiSymbol(_ b: UnsafeBufferPointer<UInt8>, at i: Int) throws -> (Token, width: Int) {
        let n = b.count
        let c = b[i]
        func text(_ from: Int, _ to: Int) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: b[from..<to]), as: UTF8.self)
        }
        let next = i + 1 < n ? b[i + 1] : 0
        switch (c, next) {
        case (UInt8(ascii: "<"), UInt8(ascii: "=")), (UInt8(ascii: ">"), UInt8(ascii: "=")),
            (UInt8(ascii: "!"), UInt8(ascii: "=")):
            return (.symbol(text(i, i + 2)), 2)
        case (UInt8(ascii: "<"), UInt8(ascii: ">")):
            return (.symbol("!="), 2)
        case (UInt8(ascii: "="), UInt8(ascii: "=")):
            return (.symbol("="), 2)
        default:
            switch c {
            case UInt8(ascii: "="), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "+"), UInt8(ascii: "-"),
                UInt8(ascii: "*"), UInt8(ascii: "/"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: ","):
                return (.symbol(text(i, i + 1)), 1)
            default:
                throw QueryError(
                    "unexpected character '\(escapedForDisplay(String(Unicode.Scalar(c))))'", source: source,
                    position: i)
            }
        }
    }

    /// ``tokens()`` one Character at a time: any text.
    mutating func characterTokens() throws -> [(Token, Int)] {
        var out: [(Token, Int)] = []
        while true {
            while i < chars.count, chars[i].isWhitespace { i += 1 }
            let start = i
            guard i < chars.count else {
                out.append((.end, i))
                return out
            }
            let c = chars[i]
            // Numbers are ASCII digits only: other Unicode digits ('²', '٣') are not numbers here.
            func digit(_ k: Int) -> Bool { k < chars.count && chars[k].asciiValue.map { $0 >= 48 && $0 <= 57 } == true }
            if c.isLetter || c == "_" {
                while i < chars.count, chars[i].isLetter || digit(i) || chars[i] == "_" { i += 1 }
                out.append((.identifier(String(chars[start..<i])), start))
            } else if digit(i) || (c == "." && digit(i + 1)) {
                let (token, end) = Self.number(chars, from: i)
                out.append((token, start))
                i = end
            } else if c == "'" || c == "\"" {
                let (token, end) = try quoted(chars, from: i)
                out.append((token, start))
                i = end
            } else {
                let two = i + 1 < chars.count ? String(chars[i...(i + 1)]) : ""
                if ["<=", ">=", "!=", "<>", "=="].contains(two) {
                    out.append((.symbol(two == "<>" ? "!=" : two == "==" ? "=" : two), start))
                    i += 2
                } else if "=<>+-*/(),".contains(c) {
                    out.append((.symbol(String(c)), start))
                    i += 1
                } else {
                    throw QueryError(
                        "unexpected character '\(shortForDisplay(String(c), limit: 8))'",
                        source: source, position: start)
                }
            }
        }
    }
}

/// A unit of query text the lexer reads: a byte of ASCII text (the fast path) or a Character (any text).
protocol LexUnit: Equatable {
    /// The unit of an ASCII character.
    static func ascii(_ c: Unicode.Scalar) -> Self
    /// Whether it is an ASCII digit: other Unicode digits ('²', '٣') are not numbers here.
    var isASCIIDigit: Bool { get }
    /// The text of `units`.
    static func text(_ units: some Collection<Self>) -> String
}

extension UInt8: LexUnit {
    @inline(__always) static func ascii(_ c: Unicode.Scalar) -> UInt8 { UInt8(ascii: c) }
    @inline(__always) var isASCIIDigit: Bool { self >= 48 && self <= 57 }
    static func text(_ units: some Collection<UInt8>) -> String { String(decoding: units, as: UTF8.self) }
}

extension Character: LexUnit {
    @inline(__always) static func ascii(_ c: Unicode.Scalar) -> Character { Character(c) }
    @inline(__always) var isASCIIDigit: Bool { asciiValue.map { $0 >= 48 && $0 <= 57 } == true }
    static func text(_ units: some Collection<Character>) -> String { String(units) }
}
