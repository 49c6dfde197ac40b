@_spi(Host) import Eddy
import EddyIO
import Synchronization

/// Parses the expression language (see `eddy eval --help`) with the usual precedence:
/// `or` < `and` < `not` < comparison, `is null`, `like` < `+ -` < `* /` < unary minus.
public struct Parser {
    /// Bounds on what an expression may cost to parse, bind and evaluate: past them the expression is
    /// refused with a clear error instead of overflowing the stack or running for minutes.
    public struct Limits: Sendable {
        /// Characters in the text, counted as Unicode scalars (a combining mark counts).
        public var maxLength: Int
        /// Nesting: parentheses, function calls, `not` and unary minus, and each operator of an
        /// arithmetic or comparison chain (they nest to the left). `and`/`or` chains are flat.
        public var maxDepth: Int
        /// Operands and operators in all.
        public var maxTerms: Int

        public init(maxLength: Int = 1 << 20, maxDepth: Int = 200, maxTerms: Int = 100_000) {
            self.maxLength = maxLength
            self.maxDepth = maxDepth
            self.maxTerms = maxTerms
        }
    }

    let source: String
    let chars: [Character]
    var tokens: [(Token, Int)]
    /// Each identifier token lowercased, once (keywords are matched against it many times per token).
    let lowered: [String?]
    var k = 0
    let limits: Limits
    /// Current nesting, checked against `limits.maxDepth`.
    var depth = 0
    var terms = 0

    public init(_ source: String, limits: Limits = Limits()) throws {
        self.source = source
        self.limits = limits
        // Counted in Unicode scalars, before the text is split into characters: one character can
        // hold any number of combining marks, and splitting megabytes of them takes seconds.
        let scalars = source.unicodeScalars.count
        guard scalars <= limits.maxLength else {
            let head = String(String.UnicodeScalarView(source.unicodeScalars.prefix(60)))
            throw QueryError(
                "expression is too long: \(scalars) characters, at most \(limits.maxLength)",
                source: head + (scalars > 60 ? "…" : ""), position: 0)
        }
        chars = Array(source)
        var lexer = Lexer(source, chars: chars)
        tokens = try lexer.tokens()
        lowered = tokens.map { if case .identifier(let s) = $0.0 { s.lowercased() } else { nil } }
    }

    /// Parses one expression that must use the whole text.
    public static func expression(_ text: String, limits: Limits = Limits()) throws -> Expr {
        let key = ParseCache.Key(text: text, selectList: false, limits: limits)
        if case .expression(let e) = recent.lookup(key) { return e }
        var p = try Parser(text, limits: limits)
        let e = try p.parseExpr()
        try p.expectEnd()
        recent.store(key, .expression(e))
        return e
    }

    /// Parses a comma-separated select list; each item may end in `as name`.
    public static func selectList(_ text: String, limits: Limits = Limits()) throws -> [SelectItem] {
        let key = ParseCache.Key(text: text, selectList: true, limits: limits)
        if case .selectList(let items) = recent.lookup(key) { return items }
        let items = try parseSelectList(text, limits: limits)
        recent.store(key, .selectList(items))
        return items
    }

    /// Texts parsed lately and their trees: a server answers the same queries again and again, and a
    /// tree is a value that nothing changes. Only successful parses are kept (an error is found again).
    static let recent = ParseCache()

    static func parseSelectList(_ text: String, limits: Limits) throws -> [SelectItem] {
        var p = try Parser(text, limits: limits)
        var items: [SelectItem] = []
        repeat {
            let startPos = p.position
            let e = try p.parseExpr()
            var name = p.text(from: startPos, to: p.position).trimmingSpaces
            // A column alone is named as the column is, not as its reference was written: `"a b"` is
            // the column a b, and its quotes are syntax.
            if case .column(let column, _) = e { name = column }
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
        let lower = Swift.max(0, Swift.min(a, chars.count))
        return String(chars[lower..<Swift.max(lower, Swift.min(b, chars.count))])
    }

    /// Enters one level of nesting (undone with `depth -= 1`), refusing past the limit.
    mutating func nest() throws {
        depth += 1
        guard depth <= limits.maxDepth else {
            throw QueryError(
                "expression is nested too deeply (more than \(limits.maxDepth) levels)", source: source,
                position: position)
        }
    }

    /// Counts one operand or operator, refusing past the limit.
    mutating func term() throws {
        terms += 1
        guard terms <= limits.maxTerms else {
            throw QueryError(
                "expression has too many terms (more than \(limits.maxTerms))", source: source,
                position: position)
        }
    }

    mutating func keyword(_ word: String) -> Bool {
        if lowered[k] == word {
            k += 1
            return true
        }
        return false
    }

    func isKeyword(_ word: String, at offset: Int = 0) -> Bool {
        guard k + offset < tokens.count else { return false }
        return lowered[k + offset] == word
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

    mutating func parseExpr() throws -> Expr {
        try nest()
        defer { depth -= 1 }
        return try parseOr()
    }

    mutating func parseOr() throws -> Expr {
        let first = try parseAnd()
        guard isKeyword("or") else { return first }
        let p = position
        var terms = [first]
        while isKeyword("or") {
            k += 1
            try term()
            terms.append(try parseAnd())
        }
        return .logical("or", terms, at: p)
    }

    mutating func parseAnd() throws -> Expr {
        let first = try parseNot()
        guard isKeyword("and") else { return first }
        let p = position
        var terms = [first]
        while isKeyword("and") {
            k += 1
            try term()
            terms.append(try parseNot())
        }
        return .logical("and", terms, at: p)
    }

    mutating func parseNot() throws -> Expr {
        if isKeyword("not") {
            let p = position
            k += 1
            try nest()
            defer { depth -= 1 }
            return .not(try parseNot(), at: p)
        }
        return try parseComparison()
    }

    mutating func parseComparison() throws -> Expr {
        let left = try parseAdditive()
        if case .symbol(let s) = peek, ["=", "!=", "<", "<=", ">", ">="].contains(s) {
            let p = position
            k += 1
            try term()
            try nest()
            defer { depth -= 1 }
            return .binary(s, left, try parseAdditive(), at: p)
        }
        if isKeyword("is") {
            let p = position
            k += 1
            let negated = keyword("not")
            guard keyword("null") else {
                throw QueryError("expected 'null' after 'is'", source: source, position: position)
            }
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

    /// `+ -` and `* /` chains nest to the left: each operator is one more level for the binder and the
    /// executor, so each counts against the depth limit until the chain ends.
    mutating func parseAdditive() throws -> Expr {
        var left = try parseMultiplicative()
        let entered = depth
        defer { depth = entered }
        while case .symbol(let s) = peek, s == "+" || s == "-" {
            let p = position
            k += 1
            try term()
            try nest()
            left = .binary(s, left, try parseMultiplicative(), at: p)
        }
        return left
    }

    mutating func parseMultiplicative() throws -> Expr {
        var left = try parseUnary()
        let entered = depth
        defer { depth = entered }
        while case .symbol(let s) = peek, s == "*" || s == "/" {
            let p = position
            k += 1
            try term()
            try nest()
            left = .binary(s, left, try parseUnary(), at: p)
        }
        return left
    }

    mutating func parseUnary() throws -> Expr {
        if peek == .symbol("-") {
            let p = position
            k += 1
            try nest()
            defer { depth -= 1 }
            let inner = try parseUnary()
            // Fold a minus into a numeric literal so that i64's minimum can be written.
            if case .literal(.int(let v), _) = inner {
                let (negated, overflow) = Int64(0).subtractingReportingOverflow(v)
                guard !overflow else {
                    throw QueryError("-(\(v)) is out of range for i64", source: source, position: p)
                }
                return .literal(.int(negated), at: p)
            }
            if case .literal(.uint(let v), _) = inner {
                guard v == UInt64(Int64.max) + 1 else {
                    throw QueryError("-\(v) is out of range for i64", source: source, position: p)
                }
                return .literal(.int(Int64.min), at: p)
            }
            if case .literal(.float(let v), _) = inner { return .literal(.float(-v), at: p) }
            return .negate(inner, at: p)
        }
        if peek == .symbol("+") {
            k += 1
            try nest()
            defer { depth -= 1 }
            return try parseUnary()
        }
        return try parsePrimary()
    }

    mutating func parsePrimary() throws -> Expr {
        let p = position
        let t = peek
        try term()
        switch t {
        case .integer(let s):
            k += 1
            if let v = Int64(s) { return .literal(.int(v), at: p) }
            if let v = UInt64(s) { return .literal(.uint(v), at: p) }
            throw QueryError("integer \(s) is out of range (at most \(UInt64.max))", source: source, position: p)
        case .float(let s):
            k += 1
            guard let v = Double(s), v.isFinite else {
                throw QueryError("number \(s) is out of range for f64", source: source, position: p)
            }
            return .literal(.float(v), at: p)
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
                guard keyword("as") else {
                    throw QueryError("expected 'as' in cast", source: source, position: position)
                }
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

/// A bounded map from expression text (with the limits it was parsed under) to its parsed tree.
final class ParseCache: Sendable {
    struct Key: Hashable {
        /// The text's UTF-8 bytes: `String` equality treats canonically equivalent texts as one
        /// ('K' and the Kelvin sign, an accent precomposed or not), and the engine compares bytes.
        var text: [UInt8]
        var selectList: Bool
        var maxLength: Int
        var maxDepth: Int
        var maxTerms: Int

        /// Nil for a text longer than ``ParseCache/maxTextBytes`` (parsed every time).
        init?(text: String, selectList: Bool, limits: Parser.Limits) {
            guard text.utf8.count <= ParseCache.maxTextBytes else { return nil }
            self.text = Array(text.utf8)
            self.selectList = selectList
            maxLength = limits.maxLength
            maxDepth = limits.maxDepth
            maxTerms = limits.maxTerms
        }
    }

    enum Tree: Sendable {
        case expression(Expr)
        case selectList([SelectItem])
    }

    /// Entries kept, and the longest text kept (longer ones are parsed every time): at most 256 KiB
    /// of text, and trees in proportion.
    static let capacity = 64
    static let maxTextBytes = 4096

    private let entries = Mutex<[Key: Tree]>([:])

    var count: Int { entries.withLock { $0.count } }

    func lookup(_ key: Key?) -> Tree? {
        guard let key else { return nil }
        return entries.withLock { $0[key] }
    }

    func store(_ key: Key?, _ tree: Tree) {
        guard let key else { return }
        entries.withLock { map in
            // Full: start again (a server's working set of queries is far smaller than this).
            if map.count >= Self.capacity { map.removeAll(keepingCapacity: true) }
            map[key] = tree
        }
    }
}
