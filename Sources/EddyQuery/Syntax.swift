public import Eddy

/// A parsed expression, with the position of each node in the source text for error carets.
public indirect enum Expr: Sendable {
    case column(String, at: Int)
    case literal(ScalarValue, at: Int)
    case negate(Expr, at: Int)
    case not(Expr, at: Int)
    case binary(String, Expr, Expr, at: Int)
    case isNull(Expr, negated: Bool, at: Int)
    case like(Expr, pattern: String, negated: Bool, at: Int)
    case cast(Expr, DType, at: Int)
    /// A function call; `star` marks `count(*)`.
    case call(String, [Expr], star: Bool, at: Int)

    public var position: Int {
        switch self {
        case .column(_, let p), .literal(_, let p), .negate(_, let p), .not(_, let p), .binary(_, _, _, let p),
             .isNull(_, _, let p), .like(_, _, _, let p), .cast(_, _, let p), .call(_, _, _, let p): p
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
        let caret = String(repeating: " ", count: Swift.max(0, Swift.min(position, source.count))) + "^"
        var s = "\(message)\n  \(source)\n  \(caret)"
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
            if c.isLetter || c == "_" {
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" { i += 1 }
                out.append((.identifier(String(chars[start..<i])), start))
            } else if c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                var isFloat = false
                while i < chars.count, chars[i].isNumber { i += 1 }
                if i < chars.count, chars[i] == "." {
                    isFloat = true
                    i += 1
                    while i < chars.count, chars[i].isNumber { i += 1 }
                }
                if i < chars.count, chars[i] == "e" || chars[i] == "E" {
                    var j = i + 1
                    if j < chars.count, chars[j] == "+" || chars[j] == "-" { j += 1 }
                    if j < chars.count, chars[j].isNumber {
                        isFloat = true
                        i = j
                        while i < chars.count, chars[i].isNumber { i += 1 }
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
                    throw QueryError(c == "'" ? "string is not closed" : "quoted column name is not closed",
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
