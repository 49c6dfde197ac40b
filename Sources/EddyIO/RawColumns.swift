import CEddyIO
@_spi(Host) import Eddy

/// Field bytes of one column of a batch, before types are known: ranges of a shared text (a CSV
/// batch's bytes, or the column's own bytes for JSON Lines). A null is an empty, unquoted field (CSV)
/// or a JSON null or missing key.
struct RawColumn {
    var bytes: [UInt8] = []
    var starts: [Int] = []
    var ends: [Int] = []
    var nulls: [Bool] = []
    /// The input line of each value, for messages.
    var lines: LineNumbers = .perValue([])

    var count: Int { nulls.count }

    /// How a value's input line is found (only when a message needs it).
    enum LineNumbers {
        /// One line per value.
        case perValue([Int32])
        /// Counted: the first row is on `firstLine`, and row `i` starts at byte `rowStarts[i]` of the text.
        case counted(firstLine: Int, rowStarts: [Int])
    }

    /// Appends a field (JSON Lines: values are copied into the column's own bytes).
    mutating func append(_ field: UnsafeRawBufferPointer, null: Bool, line: Int) {
        starts.append(bytes.count)
        bytes.append(contentsOf: field)
        ends.append(bytes.count)
        nulls.append(null)
        if case .perValue(var l) = lines {
            lines = .perValue([])
            l.append(Int32(truncatingIfNeeded: line))
            lines = .perValue(l)
        }
    }

    mutating func append(_ field: [UInt8], null: Bool, line: Int) {
        field.withUnsafeBytes { append($0, null: null, line: line) }
    }

    func withField<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[starts[i]..<ends[i]])) }
    }

    func string(_ i: Int) -> String { withField(i) { String(decoding: $0, as: UTF8.self) } }

    /// The input line of value `i`.
    func line(_ i: Int) -> Int {
        switch lines {
        case .perValue(let l): return i < l.count ? Int(l[i]) : 0
        case .counted(let first, let rowStarts):
            guard i < rowStarts.count else { return first }
            let end = Swift.min(rowStarts[i], bytes.count)
            return first
                + bytes.withUnsafeBytes { b in
                    guard let base = b.baseAddress else { return 0 }
                    return eddy_count_byte(base.assumingMemoryBound(to: UInt8.self), end, 0x0A)
                }
        }
    }
}

/// What a column's values look like: the narrowest type that reads every non-null value.
enum InferredKind: Int, Comparable {
    case null, bool, int, float, utf8
    static func < (a: InferredKind, b: InferredKind) -> Bool { a.rawValue < b.rawValue }

    /// The kind that reads both: the wider number, but text when bools meet numbers (a column of
    /// `true` and `1` is neither).
    func widened(with other: InferredKind) -> InferredKind {
        let bools = self == .bool || other == .bool
        let numbers = self == .int || self == .float || other == .int || other == .float
        return bools && numbers ? .utf8 : Swift.max(self, other)
    }

    var dtype: DType {
        switch self {
        case .null, .utf8: .utf8(.nullable)
        case .bool: .bool(.nullable)
        case .int: .primitive(.int64, .nullable)
        case .float: .primitive(.float64, .nullable)
        }
    }
}

enum FieldParse {
    /// The common case without checks: an optional '-' and 1 to 18 ASCII digits (cannot overflow).
    /// Nil for anything else, which `int64` then reads (spaces, '+', 19 digits, errors).
    @inline(__always)
    static func plainInt64(_ b: UnsafeRawBufferPointer) -> Int64? {
        let n = b.count
        guard n > 0, n <= 19 else { return nil }
        var i = 0
        let negative = b[0] == UInt8(ascii: "-")
        if negative { i = 1 }
        guard i < n, n - i <= 18 else { return nil }
        var v: Int64 = 0
        while i < n {
            let d = b[i] &- 48
            guard d < 10 else { return nil }
            v = v &* 10 &+ Int64(d)
            i += 1
        }
        return negative ? 0 &- v : v
    }

    static func int64(_ b: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        var n = b.count
        while i < n && b[i] == 0x20 { i += 1 }
        while n > i && b[n - 1] == 0x20 { n -= 1 }
        guard i < n else { return nil }
        var negative = false
        if b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") {
            negative = b[i] == UInt8(ascii: "-")
            i += 1
            guard i < n else { return nil }
        }
        var v: Int64 = 0
        while i < n {
            let d = b[i] &- 48
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(Int64(d)) : m.addingReportingOverflow(Int64(d))
            guard !o1 && !o2 else { return nil }
            v = s
            i += 1
        }
        return v
    }

    /// Exact powers of ten representable in a Double.
    static let powersOfTen: [Double] = (0...22).map { k in (0..<k).reduce(1.0) { a, _ in a * 10 } }

    static func double(_ b: UnsafeRawBufferPointer) -> Double? {
        guard b.count > 0, b.count < 64 else { return nil }
        // Fast path (Clinger): [-]digits[.digits] with at most 15 significant digits is one exact
        // integer divided by an exact power of ten, which IEEE division rounds correctly.
        var i = 0
        var negative = false
        if b[0] == UInt8(ascii: "-") { negative = true; i = 1 }
        var mantissa: Int64 = 0
        var digits = 0
        var fraction = 0
        var seenDot = false
        var plain = i < b.count
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: ".") && !seenDot {
                seenDot = true
            } else if c &- 48 < 10 {
                mantissa = mantissa &* 10 &+ Int64(c &- 48)
                digits += 1
                if seenDot { fraction += 1 }
            } else {
                plain = false
                break
            }
            i += 1
        }
        if plain && digits > 0 && digits <= 15 && fraction <= 22 {
            let v = Double(mantissa) / powersOfTen[fraction]
            return negative ? -v : v
        }
        // Double(String) stops at a NUL byte as C does ("1\0abc" would read as 1): refuse any.
        guard !b.contains(0) else { return nil }
        let s = String(decoding: b, as: UTF8.self).trimmingCharacters(in: " ")
        // The spelled-out values, signed or not ("-inf" starts like a number but is one of these).
        switch s.lowercased() {
        case "nan": return .nan
        case "inf", "infinity", "+inf", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        default: break
        }
        // Swift accepts "nan", "inf" and hex floats; data files spell numbers plainly.
        guard let first = s.utf8.first,
            first == UInt8(ascii: "-") || first == UInt8(ascii: "+")
                || first == UInt8(ascii: ".") || (first >= 48 && first <= 57)
        else { return nil }
        if s.lowercased().contains("x") { return nil }
        // A finite number too large for f64 ("1e400") is not infinity: it does not read.
        guard let v = Double(s), v.isFinite else { return nil }
        return v
    }

    /// The bounds of `b` without leading and trailing spaces.
    static func trimmed(_ b: UnsafeRawBufferPointer) -> (Int, Int) {
        var i = 0
        var n = b.count
        while i < n && b[i] == 0x20 { i += 1 }
        while n > i && b[n - 1] == 0x20 { n -= 1 }
        return (i, n)
    }

    /// Whether the text is spelled as an integer (optional sign, ASCII digits), whatever its size.
    static func isIntegerSyntax(_ b: UnsafeRawBufferPointer) -> Bool {
        let (start, n) = trimmed(b)
        var i = start
        if i < n && (b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+")) { i += 1 }
        guard i < n else { return false }
        while i < n {
            guard b[i] &- 48 < 10 else { return false }
            i += 1
        }
        return true
    }

    /// Whether the text is spelled as a decimal number with a fraction or an exponent, whatever its size.
    static func isFloatSyntax(_ b: UnsafeRawBufferPointer) -> Bool {
        let (start, n) = trimmed(b)
        var i = start
        if i < n && (b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+")) { i += 1 }
        var digits = 0
        while i < n && b[i] &- 48 < 10 { i += 1; digits += 1 }
        if i < n && b[i] == UInt8(ascii: ".") {
            i += 1
            while i < n && b[i] &- 48 < 10 { i += 1; digits += 1 }
        }
        guard digits > 0 else { return false }
        if i < n && (b[i] | 0x20) == UInt8(ascii: "e") {
            i += 1
            if i < n && (b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+")) { i += 1 }
            guard i < n else { return false }
            while i < n && b[i] &- 48 < 10 { i += 1 }
        }
        return i == n
    }

    static func bool(_ b: UnsafeRawBufferPointer) -> Bool? {
        // Bytes, case-insensitively, spaces trimmed: "true" or "false".
        var i = 0
        var n = b.count
        while i < n && b[i] == 0x20 { i += 1 }
        while n > i && b[n - 1] == 0x20 { n -= 1 }
        func matches(_ word: StaticString) -> Bool {
            guard n - i == word.utf8CodeUnitCount else { return false }
            for k in 0..<(n - i) where b[i + k] | 0x20 != word.utf8Start[k] { return false }
            return true
        }
        if matches("true") { return true }
        if matches("false") { return false }
        return nil
    }

    /// An integer too large for i64 still infers as an integer (and then fails to read, naming its
    /// row), and so does a float too large for f64: a column never silently changes type or reads
    /// `inf` because of one value.
    static func kind(_ b: UnsafeRawBufferPointer) -> InferredKind {
        if int64(b) != nil || isIntegerSyntax(b) { return .int }
        if double(b) != nil || isFloatSyntax(b) { return .float }
        if bool(b) != nil { return .bool }
        return .utf8
    }
}

extension String {
    func trimmingCharacters(in c: Character) -> String { Substring(self).trimmingCharacters(in: c) }
}

extension RawColumn {
    /// The column as a canonical array of `dtype`.
    /// - Throws: ``IOError`` naming the line of the first value that does not read as `dtype`.
    /// - Parameter declared: the type came from `--schema`, not from inference (for messages).
    func build(_ dtype: DType, name: String, file: String, columnIndex: Int, declared: Bool = false) throws
        -> any ArrayNode
    {
        let n = count
        // Written a word at a time (Bitmap(count:_:) is specialised here; the Sequence one is not).
        let validity: Validity =
            nulls.contains(true)
            ? nulls.withUnsafeBufferPointer { z in .bitmap(Bitmap(count: n) { !z[$0] }) } : .allValid
        let origin = Origin(
            shownName: escapedForDisplay(name), file: file, columnIndex: columnIndex, declared: declared)
        switch dtype {
        case .utf8(let nl), .binary(let nl):
            return try buildText(dtype, nl, validity: validity, origin)
        case .bool(let nl):
            var bits = [Bool](repeating: false, count: n)
            for i in 0..<n where !nulls[i] {
                guard let b = withField(i, FieldParse.bool) else { throw bad(i, "a bool", origin) }
                bits[i] = b
            }
            return try BoolArray(
                bits: bits.withUnsafeBufferPointer { b in Bitmap(count: n) { b[$0] } }, validity: validity,
                nullability: nl)
        case .primitive(let p, let nl):
            return try buildPrimitive(p, nl, validity: validity, origin)
        default:
            throw IOError(
                file: file, line: 0, column: 0,
                message: "column '\(origin.shownName)': cannot read values of type \(dtype)")
        }
    }

    /// Where the column's values come from, for messages.
    struct Origin {
        let shownName: String
        let file: String
        let columnIndex: Int
        /// The type came from `--schema`, not from inference.
        let declared: Bool
    }

    /// Value `i` does not read as `what`.
    func bad(_ i: Int, _ what: String, _ o: Origin) -> IOError {
        IOError(
            file: o.file, line: line(i), column: o.columnIndex + 1,
            message: "column '\(o.shownName)': '\(shown(i))' is not \(what) "
                + (o.declared
                    ? "(the type given by --schema)"
                    : "(the type was inferred from the first rows; override it with --schema \(o.shownName):utf8)"))
    }

    /// Value `i` is a number out of `type`'s range; `instead` is a type that holds it.
    func outOfRange(_ i: Int, _ type: String, _ instead: String, _ o: Origin) -> IOError {
        IOError(
            file: o.file, line: line(i), column: o.columnIndex + 1,
            message: "column '\(o.shownName)': '\(shown(i))' is out of range for \(type) "
                + "(read the column as \(instead) with --schema \(o.shownName):\(instead))")
    }

    /// Value `i` as a message shows it: escaped and cut short.
    func shown(_ i: Int) -> String { shortForDisplay(string(i), limit: 80) }

    /// A utf8 or binary column: the fields gathered into one buffer with offsets.
    func buildText(_ dtype: DType, _ nl: Nullability, validity: Validity, _ origin: Origin) throws -> any ArrayNode {
        let n = count
        // Gather the fields into one buffer with offsets (checked: a batch holds under 2 GiB of text).
        var total = 0
        for i in 0..<n where !nulls[i] { total += ends[i] - starts[i] }
        guard total <= Int(Int32.max) else {
            throw IOError(
                file: origin.file, line: line(0), column: origin.columnIndex + 1,
                message: "column '\(origin.shownName)': more than 2 GiB of text in one batch (lower --batch-rows)")
        }
        // Written straight into the array's buffers (no second copy); the ASCII check runs over
        // the gathered bytes a word at a time.
        var nonASCII = false
        let offsets = Buffer.build(count: n + 1, of: Int32.self) { off in
            off[0] = 0
            guard n > 0 else { return }
            var at = 0
            for i in 0..<n {
                if !nulls[i] { at += ends[i] - starts[i] }
                off[i + 1] = Int32(truncatingIfNeeded: at)
            }
        }
        let gathered = Buffer.build(count: total, of: UInt8.self) { dst in
            guard let d = dst.baseAddress else { return }
            bytes.withUnsafeBytes { src in
                guard let s = src.baseAddress else { return }
                var at = 0
                for i in 0..<n where !nulls[i] {
                    let length = ends[i] - starts[i]
                    if length > 0 {
                        (d + at).update(from: (s + starts[i]).assumingMemoryBound(to: UInt8.self), count: length)
                    }
                    at += length
                }
            }
            var high: UInt64 = 0
            let words = total / 8
            UnsafeRawPointer(d).withMemoryRebound(to: UInt64.self, capacity: words) { w in
                for k in 0..<words { high |= w[k] }
            }
            for k in (words * 8)..<total { high |= UInt64(d[k]) }
            nonASCII = high & 0x8080_8080_8080_8080 != 0
        }
        if nonASCII && dtype.isUTF8 {
            for i in 0..<n where !nulls[i] {
                let ok = withField(i) { String(validating: $0, as: UTF8.self) != nil }
                if !ok {
                    throw IOError(
                        file: origin.file, line: line(i), column: origin.columnIndex + 1,
                        message: "column '\(origin.shownName)': invalid UTF-8")
                }
            }
        }
        return try VarBinArray(
            dtype: dtype.with(nl), offsets: offsets, bytes: gathered, count: n, validity: validity)
    }

    /// An integer or float column: i64 and f64 parsed in place, other widths through a builder.
    func buildPrimitive(_ p: PType, _ nl: Nullability, validity: Validity, _ origin: Origin) throws -> any ArrayNode {
        let n = count
        if p == .int64 {
            let out = try PrimitiveArray.build(Int64.self, count: n, validity: validity, nullability: nl) { o in
                try bytes.withUnsafeBytes { text in
                    for i in 0..<n {
                        if nulls[i] { o[i] = 0; continue }
                        let field = UnsafeRawBufferPointer(rebasing: text[starts[i]..<ends[i]])
                        if let v = FieldParse.plainInt64(field) ?? FieldParse.int64(field) {
                            o[i] = v
                            continue
                        }
                        if FieldParse.isIntegerSyntax(field) { throw outOfRange(i, "i64", "f64", origin) }
                        throw bad(i, "an integer", origin)
                    }
                }
            }
            return out
        }
        if p == .float64 {
            return try PrimitiveArray.build(Double.self, count: n, validity: validity, nullability: nl) { o in
                try bytes.withUnsafeBytes { text in
                    for i in 0..<n {
                        if nulls[i] { o[i] = 0; continue }
                        let field = UnsafeRawBufferPointer(rebasing: text[starts[i]..<ends[i]])
                        if let v = FieldParse.double(field) {
                            o[i] = v
                            continue
                        }
                        if FieldParse.isFloatSyntax(field) || FieldParse.isIntegerSyntax(field) {
                            throw outOfRange(i, "f64", "utf8", origin)
                        }
                        throw bad(i, "a number", origin)
                    }
                }
            }
        }
        // Other widths: through a builder (allocated only here, not for the fast paths above).
        var b = ArrayBuilder(dtype: .primitive(p, .nullable), capacity: n)
        for i in 0..<n {
            if nulls[i] {
                b.append(.null)
                continue
            }
            let text = string(i)
            do {
                b.append(try Cast.value(.utf8(text), to: .primitive(p, .nonNullable), row: i))
            } catch {
                throw bad(i, "a \(p)", origin)
            }
        }
        let built = try b.finish()
        guard nl == .nonNullable, let primitive = built as? PrimitiveArray else { return built }
        return primitive.with(validity: .allValid, nullability: .nonNullable)
    }
}
