@_spi(Host) public import Eddy

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
        // Control characters would break the two lines apart: shown as spaces.
        let line = String(shown.map { $0.isNewline || $0 == "\t" ? " " : $0 })
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
        self.source = source
        chars = Array(source)
    }

    mutating func tokens() throws -> [(Token, Int)] {
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
                var isFloat = false
                while digit(i) { i += 1 }
                if i < chars.count, chars[i] == "." {
                    isFloat = true
                    i += 1
                    while digit(i) { i += 1 }
                }
                if i < chars.count, chars[i] == "e" || chars[i] == "E" {
                    var j = i + 1
                    if j < chars.count, chars[j] == "+" || chars[j] == "-" { j += 1 }
                    if digit(j) {
                        isFloat = true
                        i = j
                        while digit(i) { i += 1 }
                    }
                }
                let text = String(chars[start..<i])
                out.append((isFloat ? .float(text) : .integer(text), start))
            } else if c == "'" || c == "\"" {
                i += 1
                var text = ""
                var closed = false
                while i < chars.count {
                    if chars[i] == c {
                        if i + 1 < chars.count, chars[i + 1] == c {
                            text.append(c)
                            i += 2
                            continue
                        }
                        i += 1
                        closed = true
                        break
                    }
                    text.append(chars[i])
                    i += 1
                }
                guard closed else {
                    throw QueryError(
                        c == "'" ? "string is not closed" : "quoted column name is not closed",
                        source: source, position: start)
                }
                out.append((c == "'" ? .string(text) : .quotedIdentifier(text), start))
            } else {
                let two = i + 1 < chars.count ? String(chars[i...(i + 1)]) : ""
                if ["<=", ">=", "!=", "<>", "=="].contains(two) {
                    out.append((.symbol(two == "<>" ? "!=" : two == "==" ? "=" : two), start))
                    i += 2
                } else if "=<>+-*/(),".contains(c) {
                    out.append((.symbol(String(c)), start))
                    i += 1
                } else {
                    throw QueryError("unexpected character '\(c)'", source: source, position: start)
                }
            }
        }
    }
}
