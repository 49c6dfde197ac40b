public import Eddy
import EddyIO

/// Parses the expression language (see `eddy eval --help`) with the usual precedence:
/// `or` < `and` < `not` < comparison, `is null`, `like` < `+ -` < `* /` < unary minus.
public struct Parser {
    let source: String
    var tokens: [(Token, Int)]
    var k = 0

    public init(_ source: String) throws {
        self.source = source
        var lexer = Lexer(source)
        tokens = try lexer.tokens()
    }

    /// Parses one expression that must use the whole text.
    public static func expression(_ text: String) throws -> Expr {
        var p = try Parser(text)
        let e = try p.parseExpr()
        try p.expectEnd()
        return e
    }

    /// Parses a comma-separated select list; each item may end in `as name`.
    public static func selectList(_ text: String) throws -> [SelectItem] {
        var p = try Parser(text)
        var items: [SelectItem] = []
        repeat {
            let startPos = p.position
            let e = try p.parseExpr()
            var name = p.text(from: startPos, to: p.position).trimmingSpaces
            if p.keyword("as") {
                guard case .identifier(let n) = p.peek, true else {
                    if case .quotedIdentifier(let q) = p.peek {
                        name = q
                        p.k += 1
                        items.append(SelectItem(expr: e, name: name))
                        continue
                    }
                    throw QueryError("expected a name after 'as'", source: text, position: p.position)
                }
                name = n
                p.k += 1
            }
            items.append(SelectItem(expr: e, name: name))
        } while p.symbol(",")
        try p.expectEnd()
        return items
    }

    var peek: Token { tokens[k].0 }
    var position: Int { tokens[k].1 }

    func text(from a: Int, to b: Int) -> String {
        let chars = Array(source)
        return String(chars[Swift.min(a, chars.count)..<Swift.min(b, chars.count)])
    }

    mutating func keyword(_ word: String) -> Bool {
        if case .identifier(let s) = peek, s.lowercased() == word {
            k += 1
            return true
        }
        return false
    }

    func isKeyword(_ word: String, at offset: Int = 0) -> Bool {
        guard k + offset < tokens.count, case .identifier(let s) = tokens[k + offset].0 else { return false }
        return s.lowercased() == word
    }

    mutating func symbol(_ s: String) -> Bool {
        if peek == .symbol(s) {
            k += 1
            return true
        }
        return false
    }

    func expectEnd() throws {
        guard peek == .end else { throw QueryError("unexpected \(describe(peek))", source: source, position: position) }
    }

    func describe(_ t: Token) -> String {
        switch t {
        case .identifier(let s): "'\(s)'"
        case .quotedIdentifier(let s): "\"\(s)\""
        case .integer(let s), .float(let s): "number \(s)"
        case .string(let s): "string '\(s)'"
        case .symbol(let s): "'\(s)'"
        case .end: "end of expression"
        }
    }

    mutating func parseExpr() throws -> Expr { try parseOr() }

    mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        while isKeyword("or") {
            let p = position
            k += 1
            left = .binary("or", left, try parseAnd(), at: p)
        }
        return left
    }

    mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        while isKeyword("and") {
            let p = position
            k += 1
            left = .binary("and", left, try parseNot(), at: p)
        }
        return left
    }

    mutating func parseNot() throws -> Expr {
        if isKeyword("not") {
            let p = position
            k += 1
            return .not(try parseNot(), at: p)
        }
        return try parseComparison()
    }

    mutating func parseComparison() throws -> Expr {
        let left = try parseAdditive()
        if case .symbol(let s) = peek, ["=", "!=", "<", "<=", ">", ">="].contains(s) {
            let p = position
            k += 1
            return .binary(s, left, try parseAdditive(), at: p)
        }
        if isKeyword("is") {
            let p = position
            k += 1
            let negated = keyword("not")
            guard keyword("null") else { throw QueryError("expected 'null' after 'is'", source: source, position: position) }
            return .isNull(left, negated: negated, at: p)
        }
        let negated = isKeyword("not") && isKeyword("like", at: 1)
        if negated { k += 1 }
        if isKeyword("like") {
            let p = position
            k += 1
            guard case .string(let pattern) = peek else {
                throw QueryError("like needs a 'pattern' string", source: source, position: position)
            }
            k += 1
            return .like(left, pattern: pattern, negated: negated, at: p)
        }
        return left
    }

    mutating func parseAdditive() throws -> Expr {
        var left = try parseMultiplicative()
        while case .symbol(let s) = peek, s == "+" || s == "-" {
            let p = position
            k += 1
            left = .binary(s, left, try parseMultiplicative(), at: p)
        }
        return left
    }

    mutating func parseMultiplicative() throws -> Expr {
        var left = try parseUnary()
        while case .symbol(let s) = peek, s == "*" || s == "/" {
            let p = position
            k += 1
            left = .binary(s, left, try parseUnary(), at: p)
        }
        return left
    }

    mutating func parseUnary() throws -> Expr {
        if peek == .symbol("-") {
            let p = position
            k += 1
            let inner = try parseUnary()
            // Fold a minus into a numeric literal so that i64's minimum can be written.
            if case .literal(.int(let v), _) = inner { return .literal(.int(-v), at: p) }
            if case .literal(.uint(let v), _) = inner, v == UInt64(Int64.max) + 1 { return .literal(.int(Int64.min), at: p) }
            if case .literal(.float(let v), _) = inner { return .literal(.float(-v), at: p) }
            return .negate(inner, at: p)
        }
        if peek == .symbol("+") {
            k += 1
            return try parseUnary()
        }
        return try parsePrimary()
    }

    mutating func parsePrimary() throws -> Expr {
        let p = position
        let t = peek
        switch t {
        case .integer(let s):
            k += 1
            if let v = Int64(s) { return .literal(.int(v), at: p) }
            if let v = UInt64(s) { return .literal(.uint(v), at: p) }
            throw QueryError("integer \(s) is too large", source: source, position: p)
        case .float(let s):
            k += 1
            return .literal(.float(Double(s)!), at: p)
        case .string(let s):
            k += 1
            return .literal(.utf8(s), at: p)
        case .quotedIdentifier(let s):
            k += 1
            return .column(s, at: p)
        case .symbol("("):
            k += 1
            let e = try parseExpr()
            guard symbol(")") else { throw QueryError("expected ')'", source: source, position: position) }
            return e
        case .identifier(let s):
            k += 1
            switch s.lowercased() {
            case "true": return .literal(.bool(true), at: p)
            case "false": return .literal(.bool(false), at: p)
            case "null": return .literal(.null, at: p)
            default: break
            }
            guard symbol("(") else { return .column(s, at: p) }
            if s.lowercased() == "cast" {
                let e = try parseExpr()
                guard keyword("as") else { throw QueryError("expected 'as' in cast", source: source, position: position) }
                guard case .identifier(let typeName) = peek, let type = DType.parse(typeName) else {
                    throw QueryError("expected a type (\(DType.typeNames))", source: source, position: position)
                }
                k += 1
                guard symbol(")") else { throw QueryError("expected ')'", source: source, position: position) }
                return .cast(e, type, at: p)
            }
            if symbol("*") {
                guard symbol(")") else { throw QueryError("expected ')'", source: source, position: position) }
                return .call(s.lowercased(), [], star: true, at: p)
            }
            var args: [Expr] = []
            if !symbol(")") {
                repeat { args.append(try parseExpr()) } while symbol(",")
                guard symbol(")") else { throw QueryError("expected ')' or ','", source: source, position: position) }
            }
            return .call(s.lowercased(), args, star: false, at: p)
        default:
            throw QueryError("expected a value, a column or '(' but found \(describe(t))", source: source, position: p)
        }
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return String(s)
    }
}
