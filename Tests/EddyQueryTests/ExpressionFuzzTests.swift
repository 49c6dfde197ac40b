@_spi(Host) import Eddy
import EddyHostTestSupport
import EddyIO
import Foundation
import Testing

@_spi(Host) @testable import EddyQuery

/// Random expressions through the lexer, the parser, its cache and the binder: accepted or refused
/// with an error, never a trap. `EDDY_FUZZ_ITERATIONS` and `EDDY_FUZZ_SEED` as in Tests/fuzz-long.sh.
@Suite struct ExpressionFuzzTests {
    /// Random expressions, from well-formed to garbage, through the lexer, parser and binder, and the
    /// bound ones through the engine on a small batch: each is accepted or refused with an error;
    /// none traps.
    @Test func randomExpressionsNeverTrap() throws {
        let seed = fuzzSeed(0xE4F)
        var rng = SeededGenerator(seed: seed)
        let schema = Schema([
            StructField("a", .primitive(.int64, .nullable)), StructField("f", .primitive(.float64, .nullable)),
            StructField("s", .utf8(.nullable)), StructField("b", .bool(.nullable)),
            StructField("u", .primitive(.uint8, .nonNullable)),
        ])
        let columns: [any ArrayNode] = [
            try PrimitiveArray.build(Int64.self, count: 4, validity: .allValid, nullability: .nullable) { o in
                o[0] = Int64.max; o[1] = Int64.min; o[2] = 0; o[3] = -1
            },
            try PrimitiveArray.build(Double.self, count: 4, validity: .allValid, nullability: .nullable) { o in
                o[0] = 1.5; o[1] = -0.0; o[2] = .greatestFiniteMagnitude; o[3] = 1e-300
            },
            VarBinArray(["x", "", "Lyon", "é%_"] as [String?]),
            try BoolArray(bits: Bitmap([true, false, true, false]), validity: .allValid, nullability: .nullable),
            try PrimitiveArray.build(UInt8.self, count: 4, validity: .allValid, nullability: .nonNullable) { o in
                o[0] = 255; o[1] = 0; o[2] = 1; o[3] = 128
            },
        ]
        let session = Session()
        var outcomes = [0, 0, 0]  // refused at parse/bind, evaluated, refused by the engine
        let iterations = fuzzIterations(100_000)
        for i in 0..<iterations {
            let text = ExpressionGenerator.expression(using: &rng, budget: Int.random(in: 1...40, using: &rng))
            do {
                let asSelect = i % 3 == 0
                let binder = Binder(schema: schema, source: text)
                let bound: Bound
                if asSelect {
                    let items = try Parser.selectList(text)
                    guard let first = items.first else { continue }
                    bound = try binder.bind(first.expr, allowAggregates: true)
                } else {
                    bound = try binder.bind(try Parser.expression(text))
                }
                // One case in ten runs through the engine.
                if i % 10 == 0 {
                    do {
                        _ = try session.makeContext().execute(try bound.node(columns, count: 4))
                        outcomes[1] += 1
                    } catch is EddyError {
                        outcomes[2] += 1
                    }
                } else {
                    outcomes[1] += 1
                }
            } catch is QueryError {
                outcomes[0] += 1
            } catch {
                Issue.record("case \(i) (seed \(seed)): unexpected error \(error) for \(text.debugDescription)")
            }
        }
        #expect(outcomes[0] > iterations / 20, "refusals \(outcomes) (seed \(seed))")
        #expect(outcomes[1] > iterations / 50, "accepted \(outcomes) (seed \(seed))")
    }
}

extension ExpressionFuzzTests {
    /// The lexer's byte path (ASCII text) gives the tokens, positions and errors of its Character
    /// path, on generated expressions and on random ASCII (every character from 0x00 to 0x7F except
    /// CR, which takes the Character path).
    @Test func asciiLexerAgreesWithCharacterLexer() throws {
        let seed = fuzzSeed(0x1E8)
        var rng = SeededGenerator(seed: seed)
        let alphabet: [UInt8] = Array(0x00...0x7F).filter { $0 != 0x0D }
        let pieces = [
            "<=", ">=", "!=", "<>", "==", "1e5", "1.5e-3", ".5", "1.", "'it''s'", "\"a\"\"b\"", "'open",
            "\"open", "count(*)", "x_1", "_", "!", "e+", "AND", "\t", "\u{0B}", "\u{0C}", "\u{1C}", "\u{7F}",
        ]
        func outcome(_ text: String, ascii: Bool) -> String {
            var lexer = Lexer(text)
            do {
                let tokens =
                    ascii
                    ? try text.utf8.withContiguousStorageIfAvailable { try lexer.asciiTokens($0) } ?? []
                    : try lexer.characterTokens()
                return tokens.map { "\($0.0)@\($0.1)" }.joined(separator: " ")
            } catch let e as QueryError {
                return "error \(e.message)@\(e.position)"
            } catch {
                return "other \(error)"
            }
        }
        for i in 0..<fuzzIterations(50_000) {
            var text = ""
            if i % 2 == 0 {
                text = ExpressionGenerator.expression(using: &rng, budget: Int.random(in: 1...30, using: &rng))
                guard text.utf8.allSatisfy({ $0 < 0x80 && $0 != 0x0D }) else { continue }
            } else {
                for _ in 0..<Int.random(in: 0...24, using: &rng) {
                    if Bool.random(using: &rng) {
                        text += pieces.randomElement(using: &rng) ?? ""
                    } else {
                        text += String(UnicodeScalar(alphabet.randomElement(using: &rng) ?? 0x20))
                    }
                }
            }
            let fast = outcome(text, ascii: true)
            let slow = outcome(text, ascii: false)
            #expect(fast == slow, "case \(i) (seed \(seed)): \(text.debugDescription)")
            if fast != slow { break }
        }
    }
}

extension ExpressionFuzzTests {
    /// A text parsed once is answered from the parse cache only under the same limits: tighter ones
    /// refuse it as before, a failed parse stays an error, and a cached tree is the tree parsed afresh.
    @Test func parseCacheKeepsLimitsAndErrors() throws {
        let text = "a + b * 2 > 3 and s like 'x%', count(*) as n"
        let first = try Parser.selectList(text)
        let again = try Parser.selectList(text)
        #expect(first.map(\.name) == again.map(\.name))
        #expect("\(first.map(\.expr))" == "\(try Parser.parseSelectList(text, limits: Parser.Limits()).map(\.expr))")
        #expect(throws: QueryError.self) { try Parser.selectList(text, limits: Parser.Limits(maxTerms: 3)) }
        #expect(throws: QueryError.self) { try Parser.selectList(text, limits: Parser.Limits(maxLength: 10)) }
        // The length limit counts Unicode scalars: combining marks cannot hide in one character.
        #expect(throws: QueryError.self) {
            try Parser.expression(
                "a" + String(repeating: "\u{301}", count: 5_000) + " = 1", limits: Parser.Limits(maxLength: 1_000))
        }
        do {
            _ = try Parser.expression("a = 1", limits: Parser.Limits(maxLength: 3))
            Issue.record("a 5-character text passed a 3-character limit")
        } catch let e as QueryError {
            #expect(e.message.contains("too long") && e.source == "a = 1", "\(e.source)")  // short: no ellipsis
        }
        #expect(throws: QueryError.self) { try Parser.expression("a + b", limits: Parser.Limits(maxDepth: 1)) }
        _ = try Parser.expression("a + b")
        #expect(throws: QueryError.self) { try Parser.expression("a + b", limits: Parser.Limits(maxDepth: 1)) }
        for _ in 0..<2 { #expect(throws: QueryError.self) { try Parser.expression("a +") } }
        // Canonically equivalent texts are different texts: the Kelvin sign is not 'K', a
        // decomposed accent is not a precomposed one (the engine compares bytes).
        for (first, second) in [("s = '\u{212A}'", "s = 'K'"), ("s = 'cafe\u{301}'", "s = 'caf\u{E9}'")] {
            _ = try Parser.expression(first)
            guard case .binary(_, _, .literal(let value, _), _) = try Parser.expression(second),
                case .utf8(let text) = value
            else {
                Issue.record("\(second) did not parse to a comparison with a string")
                continue
            }
            #expect(Array(text.utf8) == Array(second.utf8.dropFirst(5).dropLast()))
        }
        // An expression and a select list of the same text are different entries.
        _ = try Parser.expression("x")
        #expect(try Parser.selectList("x").map(\.name) == ["x"])
        // Bounded: many distinct texts keep at most the capacity.
        for i in 0..<(ParseCache.capacity * 3) { _ = try Parser.expression("c\(i) + 1") }
        #expect(Parser.recent.count <= ParseCache.capacity)
    }
}

/// Makes expression text: a grammar of the language with hostile pieces mixed in.
enum ExpressionGenerator {
    static let columns = ["a", "f", "s", "b", "u", "\"a\"", "missing", "A"]
    static let literals = [
        "0", "1", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "18446744073709551615", "18446744073709551616", "1e400", "1e-400", "2.5", ".5", "1e", "0.0",
        "'x'", "''", "'it''s'", "'%'", "'é_%'", "true", "false", "null", "2.5²", "٣", "1_000",
    ]
    static let binary = ["+", "-", "*", "/", "=", "!=", "<>", "<", "<=", ">", ">=", "and", "or", "==", "%", "||"]
    static let junk = [
        "(", ")", ",", "'", "\"", "--", "\u{0}", "\n", "¬", "∞", "cast(", "as", "is", "not", "like", "*",
    ]

    static func expression(using rng: inout SeededGenerator, budget: Int) -> String {
        if Int.random(in: 0..<25, using: &rng) == 0 {
            // Pure noise from the token pieces.
            let pieces = columns + literals + binary + junk
            return (0..<Int.random(in: 1...12, using: &rng)).map { _ in
                pieces[Int.random(in: 0..<pieces.count, using: &rng)]
            }
            .joined(separator: Int.random(in: 0..<2, using: &rng) == 0 ? " " : "")
        }
        return term(using: &rng, budget: budget)
    }

    static func term(using rng: inout SeededGenerator, budget: Int) -> String {
        func pick(_ list: [String]) -> String { list[Int.random(in: 0..<list.count, using: &rng)] }
        if budget <= 1 { return Int.random(in: 0..<2, using: &rng) == 0 ? pick(columns) : pick(literals) }
        let rest = budget - 1
        switch Int.random(in: 0..<12, using: &rng) {
        case 0: return "(" + term(using: &rng, budget: rest) + ")"
        case 1: return "-" + term(using: &rng, budget: rest)
        case 2: return "not " + term(using: &rng, budget: rest)
        case 3:
            return term(using: &rng, budget: rest) + " is " + (Int.random(in: 0..<2, using: &rng) == 0 ? "" : "not ")
                + "null"
        case 4: return term(using: &rng, budget: rest) + " like " + pick(["'a%'", "'%'", "'_'", "''", "'%%_%'"])
        case 5:
            return "cast(" + term(using: &rng, budget: rest) + " as "
                + pick(["i8", "u8", "i64", "u64", "f32", "f64", "utf8", "bool", "nonsense"]) + ")"
        case 6:
            let f = pick(["count", "sum", "min", "max", "mean", "coalesce", "nosuch"])
            return f + "("
                + (f == "count" && Int.random(in: 0..<3, using: &rng) == 0 ? "*" : term(using: &rng, budget: rest))
                + ")"
        case 7:
            // A long chain.
            let op = pick(["and", "or", "+", "*"])
            let n = Int.random(in: 2...8, using: &rng)
            return (0..<n).map { _ in term(using: &rng, budget: Swift.max(1, rest / n)) }.joined(separator: " \(op) ")
        case 8: return pick(junk) + term(using: &rng, budget: rest)
        default:
            let half = Swift.max(1, rest / 2)
            return term(using: &rng, budget: half) + " " + pick(binary) + " " + term(using: &rng, budget: rest - half)
        }
    }
}
