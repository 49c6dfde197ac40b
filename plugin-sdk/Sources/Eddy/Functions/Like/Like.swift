/// SQL `LIKE` on utf8: `%` matches any run of characters, `_` exactly one; case-sensitive.
/// Prefix (`abc%`), suffix (`%abc`) and contains (`%abc%`) patterns take fast byte paths.
public struct LikeFunction: ScalarFunction {
    /// The encoding of `LIKE` and `NOT LIKE` nodes.
    public static let id = EncodingID("eddy.like")
    /// The pattern: `%` matches any run of characters, `_` exactly one; there is no escape character.
    public let pattern: String
    /// Whether this is `NOT LIKE`: true where the pattern does not match (null stays null).
    public let negated: Bool

    /// The function matching `pattern`, or not matching it when `negated`.
    public init(pattern: String, negated: Bool = false) {
        self.pattern = pattern
        self.negated = negated
    }

    public var encoding: EncodingID { Self.id }
    public var description: String { (negated ? "not like " : "like ") + "'\(pattern)'" }

    public func returnType(_ arguments: [DType]) throws -> DType {
        guard arguments.count == 1, arguments[0].isUTF8 || arguments[0] == .null else {
            throw EddyError(.typeMismatch, "like needs a utf8 argument, got \(arguments.map(\.description))")
        }
        return .bool(arguments[0].nullability)
    }

    /// A lazy node matching `a` against `pattern` (`NOT LIKE` when `negated`).
    /// - Throws: ``EddyError/Code/typeMismatch`` unless `a` is utf8 (or of the `null` type).
    public static func make(_ a: any ArrayNode, pattern: String, negated: Bool = false) throws -> ScalarFnArray {
        try ScalarFnArray(LikeFunction(pattern: pattern, negated: negated), [a])
    }

    public func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode {
        let a = arguments[0]
        let dtype = try returnType([a.dtype])
        let matcher = LikeMatcher(pattern)
        if let c = a as? ConstantArray {
            guard case .utf8(let s) = c.scalar.value else { return ConstantArray(.null(dtype), count: count) }
            let m = Array(s.utf8).withUnsafeBytes { matcher.matches($0) }
            return ConstantArray(Scalar(.bool(m != negated), dtype), count: count)
        }
        guard let v = a as? VarBinArray else {
            if a is NullArray { return ConstantArray(.null(dtype), count: count) }
            throw EddyError(.unsupported, "like needs canonical utf8, got \(a.encoding)")
        }
        let neg = negated
        let bits = Compare.bitmap(count) { i in v.withBytes(at: i) { matcher.matches($0) } != neg }
        return BoolArray(uncheckedBits: bits, validity: v.validity, nullability: dtype.nullability)
    }
}

/// A compiled LIKE pattern over UTF-8 bytes.
struct LikeMatcher: Sendable {
    enum Kind: Sendable {
        case exact([UInt8]), prefix([UInt8]), suffix([UInt8]), contains([UInt8]), general([Token])
    }
    enum Token: Sendable, Equatable { case literal(UInt8), any, one }
    let kind: Kind

    init(_ pattern: String) {
        var tokens: [Token] = []
        for b in pattern.utf8 {
            switch b {
            case UInt8(ascii: "%"): if tokens.last != .any { tokens.append(.any) }
            case UInt8(ascii: "_"): tokens.append(.one)
            default: tokens.append(.literal(b))
            }
        }
        let literals = tokens.compactMap { if case .literal(let b) = $0 { b } else { nil } }
        let wildcards = tokens.filter { $0 != .any && !{ if case .literal = $0 { true } else { false } }($0) }
        let anyCount = tokens.filter { $0 == .any }.count
        if !wildcards.isEmpty || anyCount > 2 {
            kind = .general(tokens)
        } else if anyCount == 0 {
            kind = .exact(literals)
        } else if anyCount == 1 && tokens.last == .any {
            kind = .prefix(literals)
        } else if anyCount == 1 && tokens.first == .any {
            kind = .suffix(literals)
        } else if anyCount == 2 && tokens.first == .any && tokens.last == .any {
            kind = .contains(literals)
        } else {
            kind = .general(tokens)
        }
    }

    func matches(_ s: UnsafeRawBufferPointer) -> Bool {
        switch kind {
        case .exact(let p): return s.count == p.count && zip(s, p).allSatisfy { $0 == $1 }
        case .prefix(let p): return s.count >= p.count && zip(s, p).allSatisfy { $0 == $1 }
        case .suffix(let p): return s.count >= p.count && zip(s.suffix(p.count), p).allSatisfy { $0 == $1 }
        case .contains(let p):
            if p.isEmpty { return true }
            if s.count < p.count { return false }
            for start in 0...(s.count - p.count) where s[start] == p[0] {
                var k = 1
                while k < p.count && s[start + k] == p[k] { k += 1 }
                if k == p.count { return true }
            }
            return false
        case .general(let tokens): return Self.general(tokens, Array(String(decoding: s, as: UTF8.self).unicodeScalars))
        }
    }

    /// A pattern token over Unicode scalars: a literal is a whole character, not one of its UTF-8 bytes.
    enum ScalarToken: Equatable { case literal(Unicode.Scalar), any, one }

    /// The tokens with each run of literal bytes decoded into the characters it spells.
    static func scalarTokens(_ tokens: [Token]) -> [ScalarToken] {
        var out: [ScalarToken] = []
        var bytes: [UInt8] = []
        func flush() {
            for c in String(decoding: bytes, as: UTF8.self).unicodeScalars { out.append(.literal(c)) }
            bytes.removeAll()
        }
        for token in tokens {
            switch token {
            case .literal(let b): bytes.append(b)
            case .any: flush(); out.append(.any)
            case .one: flush(); out.append(.one)
            }
        }
        flush()
        return out
    }

    /// Backtracking match where `_` is one Unicode scalar and `%` any run of them.
    static func general(_ byteTokens: [Token], _ s: [Unicode.Scalar]) -> Bool {
        matchCharacters(scalarTokens(byteTokens), s)
    }

    /// ``general(_:_:)`` over tokens already decoded into characters.
    static func matchCharacters(_ tokens: [ScalarToken], _ s: [Unicode.Scalar]) -> Bool {
        var t = 0, i = 0, starT = -1, starI = 0
        while i < s.count {
            if t < tokens.count {
                switch tokens[t] {
                case .one: t += 1; i += 1; continue
                case .literal(let c) where s[i] == c: t += 1; i += 1; continue
                case .any: starT = t; starI = i; t += 1; continue
                default: break
                }
            }
            if starT >= 0 {
                t = starT + 1
                starI += 1
                i = starI
                continue
            }
            return false
        }
        while t < tokens.count && tokens[t] == .any { t += 1 }
        return t == tokens.count
    }
}
