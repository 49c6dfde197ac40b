import CEddyHost
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
import Foundation
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

extension EvalRequest {
    /// `threads` as given (a decimal count from 1 to ``maxThreads``), or a refusal naming the range.
    static func threads(_ text: String) throws(EddyFailure) -> Int {
        guard text.utf8.count <= 6, let n = Int(text), n >= 1, n <= maxThreads else {
            throw EddyFailure(
                .badRequest,
                "threads must be a whole number from 1 to \(maxThreads) (this server's cores), got '\(shortForDisplay(text, limit: 40))'"
            )
        }
        return n
    }

    /// The name/value pairs of a raw query string, decoded as HTML forms encode them: `+` is a space,
    /// `%XY` a byte; names and values must be UTF-8. A malformed escape is refused.
    static func formPairs(_ raw: String?) throws(EddyFailure) -> [(String, String)] {
        guard let raw, !raw.isEmpty else { return [] }
        func decode(_ part: Substring) throws(EddyFailure) -> String {
            var bytes: [UInt8] = []
            var it = Array(part.utf8)[...]
            while let b = it.popFirst() {
                if b == UInt8(ascii: "+") {
                    bytes.append(UInt8(ascii: " "))
                } else if b == UInt8(ascii: "%") {
                    guard it.count >= 2, let hi = hexValue(it[it.startIndex]), let lo = hexValue(it[it.startIndex + 1])
                    else { throw EddyFailure(.badRequest, "malformed %-escape in the query string") }
                    bytes.append(hi << 4 | lo)
                    it = it.dropFirst(2)
                } else {
                    bytes.append(b)
                }
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw EddyFailure(.badRequest, "the query string is not UTF-8 once decoded")
            }
            return text
        }
        var out: [(String, String)] = []
        for pair in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let eq = pair.firstIndex(of: "=") ?? pair.endIndex
            let value = eq == pair.endIndex ? "" : try decode(pair[pair.index(after: eq)...])
            out.append((try decode(pair[..<eq]), value))
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The options in the query string; an unknown name, or one given twice, is refused.
    static func params(fromQuery query: [(String, String)]) throws(EddyFailure) -> Params {
        var p = Params()
        var seen: Set<String> = []
        for (name, value) in query {
            guard seen.insert(name).inserted else {
                throw EddyFailure(.badRequest, "query parameter '\(escapedForDisplay(name))' is given twice")
            }
            switch name {
            case "where": p.where = value
            case "select": p.select = value
            case "format": p.format = value
            case "input_format": p.inputFormat = value
            case "path": p.path = value
            case "threads": p.threads = try threads(value)
            case "compression": p.compression = value
            case "trace":
                switch value.lowercased() {
                case "1", "true", "yes": p.trace = true
                case "0", "false", "no", "": p.trace = false
                default:
                    throw EddyFailure(.badRequest, "query parameter 'trace' must be 1/true or 0/false, got '\(value)'")
                }
            default:
                throw EddyFailure(
                    .badRequest,
                    "unknown query parameter '\(name)'; known: \(queryFields.sorted().joined(separator: ", "))")
            }
        }
        return p
    }

    /// Reads the JSON body strictly over `params` (from the query): every field known, of its type,
    /// given once — in the body or the query string, not both.
    static func params(fromJSON body: Data, over query: Params, queryNames: Set<String>) throws(EddyFailure) -> Params {
        let fields: [(name: String, value: JSONFieldValue)]
        do {
            fields = try body.withUnsafeBytes { try JSONObjectFields.parse($0) }
        } catch let e as IOError {
            throw EddyFailure(.badRequest, "the body is not a JSON object: \(e.message) (column \(e.column))")
        } catch {
            throw EddyFailure(.badRequest, "the body is not a JSON object")
        }
        var p = query
        var seen = queryNames
        for (name, value) in fields {
            var shown: String { shortForDisplay(name, limit: 64) }
            guard seen.insert(name).inserted else {
                throw EddyFailure(
                    .badRequest,
                    queryNames.contains(name)
                        ? "field '\(shown)' is given in both the query string and the body"
                        : "field '\(shown)' is given twice")
            }
            func string() throws(EddyFailure) -> String? {
                switch value {
                case .string(let s): return s
                case .null: return nil
                default: throw EddyFailure(.badRequest, "field '\(name)' must be a string, got \(value.typeName)")
                }
            }
            switch name {
            case "path": p.path = try string() ?? p.path
            case "where": p.where = try string() ?? p.where
            case "select": p.select = try string() ?? p.select
            case "format": p.format = try string() ?? p.format
            case "input_format": p.inputFormat = try string() ?? p.inputFormat
            case "compression": p.compression = try string() ?? p.compression
            case "threads":
                switch value {
                case .number(let text): p.threads = try threads(text)
                case .null: break
                default: throw EddyFailure(.badRequest, "field 'threads' must be a number, got \(value.typeName)")
                }
            case "trace":
                switch value {
                case .bool(let b): p.trace = b
                case .null: break
                default: throw EddyFailure(.badRequest, "field 'trace' must be true or false, got \(value.typeName)")
                }
            default:
                throw EddyFailure(
                    .badRequest, "unknown field '\(shown)'; known: " + queryFields.sorted().joined(separator: ", "))
            }
        }
        return p
    }
}
