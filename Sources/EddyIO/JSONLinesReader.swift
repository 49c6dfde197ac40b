@_spi(Host) public import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// Reads JSON Lines (one JSON object per line) in batches. Keys become columns (in order of first
/// appearance in the first batch); a missing key or `null` is null; nested arrays and objects are
/// kept as their JSON text.
public final class JSONLinesReader: TableReader {
    public let path: String
    public private(set) var schema = Schema([])
    public let batchRows: Int
    private let file: UnsafeMutablePointer<FILE>
    private var line = 0
    private var pending: [[String: JSONScalar]]?
    private var pendingFirstLine = 1
    public private(set) var bytesRead = 0
    public let fileSize: Int
    public let limits: ReadLimits
    /// Unconsumed input: lines are read from `buffer[start...]`.
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    /// Columns whose type `--schema` gave (not inferred), for messages.
    private var declared: Set<String> = []
    /// Every key seen so far (the columns, in order, are `schema` or the `names` being collected).
    private var keys: Set<String> = []

    public init(
        path: String, overrides: [String: DType] = [:], batchRows: Int = 65_536,
        limits: ReadLimits = ReadLimits(), descriptor: Int32? = nil
    ) throws {
        self.path = path
        self.batchRows = Swift.max(1, batchRows)
        self.limits = limits
        (file, fileSize) = try InputFile.open(path, descriptor: descriptor)
        var names: [String] = []
        var kinds: [String: InferredKind] = [:]
        let first = try readObjects(names: &names)
        for key in overrides.keys where !names.contains(key) {
            throw IOError(
                file: path, line: 0, column: 0,
                message: "--schema names column '\(key)', which no object in the first rows has")
        }
        for object in first.objects.prefix(TableOptions.inferenceRows) {
            for (k, v) in object {
                kinds[k] = (kinds[k] ?? .null).widened(with: v.kind)
            }
        }
        schema = Schema(names.map { StructField($0, overrides[$0] ?? (kinds[$0] ?? .null).dtype) })
        declared = Set(overrides.keys)
        pending = first.objects
        pendingFirstLine = first.firstLine
    }

    deinit { fclose(file) }

    public func next() throws -> RecordBatch? {
        var objects: [[String: JSONScalar]]
        var firstLine: Int
        var lines: [Int]
        if let p = pending {
            objects = p
            firstLine = pendingFirstLine
            pending = nil
            lines = pendingLines
        } else {
            var names = schema.names
            let batch = try readObjects(names: &names)
            if names.count != schema.names.count {
                let extra = names.dropFirst(schema.names.count).first ?? ""
                throw IOError(
                    file: path, line: batch.firstLine, column: 1,
                    message: "key '\(escapedForDisplay(extra))' first appears after the first \(batchRows) rows; "
                        + "columns are fixed by the first batch")
            }
            objects = batch.objects
            firstLine = batch.firstLine
            lines = pendingLines
        }
        guard !objects.isEmpty else { return nil }
        var columns: [any ArrayNode] = []
        for (k, field) in schema.fields.enumerated() {
            if let projection, !projection.contains(k) {
                columns.append(ConstantArray(.null(field.dtype), count: objects.count))
                continue
            }
            var raw = RawColumn()
            for (i, o) in objects.enumerated() {
                let v = o[field.name] ?? .null
                switch v {
                case .null: raw.append([], null: true, line: lines[i])
                default: raw.append(Array(v.text.utf8), null: false, line: lines[i])
                }
            }
            columns.append(
                try raw.build(
                    field.dtype, name: field.name, file: path, columnIndex: k,
                    declared: declared.contains(field.name)))
        }
        return RecordBatch(schema: schema, columns: columns, count: objects.count, firstLine: firstLine)
    }

    private var pendingLines: [Int] = []
    public private(set) var projection: Set<Int>?

    /// Only the projection applies: text has no statistics to skip by, and a column is typed as it is split.
    public func scan(_ request: ScanRequest) { projection = request.projection }

    private func readObjects(names: inout [String]) throws -> (objects: [[String: JSONScalar]], firstLine: Int) {
        var objects: [[String: JSONScalar]] = []
        var lines: [Int] = []
        let firstLine = line + 1
        var batchBytes = 0
        // A batch also ends at 1 GiB of input: column offsets are 32-bit.
        while objects.count < batchRows && batchBytes < 1 << 30 {
            guard var range = try nextLine() else { break }
            line += 1
            // A byte-order mark at the start of the file is not part of the first line.
            if line == 1, range.count >= 3, buffer[range.lowerBound] == 0xEF, buffer[range.lowerBound + 1] == 0xBB,
                buffer[range.lowerBound + 2] == 0xBF
            {
                range = (range.lowerBound + 3)..<range.upperBound
            }
            bytesRead += range.count + 1
            batchBytes += range.count
            let parsed: (pairs: [(String, JSONScalar)], end: Int)? = try buffer.withUnsafeBytes { buf in
                var parser = JSONParser(bytes: UnsafeRawBufferPointer(rebasing: buf[range]), file: path, line: line)
                parser.skipSpace()
                if parser.atEnd { return nil }
                let object = try parser.parseObject()
                parser.skipSpace()
                guard parser.atEnd else { throw parser.error("text after the end of the JSON object") }
                return object
            }
            guard let object = parsed else { continue }
            for (k, _) in object.pairs {
                let (inserted, member) = keys.insert(k)
                guard inserted else {
                    // String equality is canonical equivalence: `café` in NFC and in NFD are one key to a
                    // Dictionary, and one of the two values would be dropped without a word. CSV refuses
                    // such a header as a duplicate; so does this reader.
                    if !member.utf8.elementsEqual(k.utf8) {
                        throw IOError(
                            file: path, line: line, column: 1,
                            message: "keys '\(shortForDisplay(member, limit: 60))' and "
                                + "'\(shortForDisplay(k, limit: 60))' differ only in Unicode normalization "
                                + "(\(scalarList(member)) against \(scalarList(k))); column names are compared as "
                                + "text, so they would be one column: write them the same way")
                    }
                    continue
                }
                names.append(k)
                guard names.count <= limits.maxColumns else {
                    throw IOError(
                        file: path, line: line, column: 1,
                        message: "more than \(limits.maxColumns) distinct keys (the limit on columns)")
                }
            }
            objects.append(Dictionary(object.pairs, uniquingKeysWith: { _, b in b }))
            lines.append(line)
        }
        pendingLines = lines
        return (objects, firstLine)
    }
}

extension JSONLinesReader {
    /// The next line, without its newline, as a range of `buffer`; nil at the end of the input.
    /// - Throws: ``IOError`` for a line longer than `limits.maxRecordBytes` (say, `/dev/zero`).
    fileprivate func nextLine() throws -> Range<Int>? {
        var scanFrom = start
        while true {
            let newline: Int? = buffer.withUnsafeBytes { raw in
                guard let base = raw.baseAddress, scanFrom < raw.count,
                    let hit = memchr(base + scanFrom, 0x0A, raw.count - scanFrom)
                else { return nil }
                return base.distance(to: UnsafeRawPointer(hit))
            }
            if let newline {
                // Every line is held to the limit (without its line ending), also one read whole.
                let content = newline - start - (newline > start && buffer[newline - 1] == 0x0D ? 1 : 0)
                guard content <= limits.maxRecordBytes else {
                    throw IOError(
                        file: path, line: line + 1, column: 1,
                        message: "line is longer than \(limits.maxRecordBytes) bytes (--max-record-bytes); "
                            + "is this a JSON Lines file?")
                }
                let range = start..<newline
                start = newline + 1
                return range
            }
            scanFrom = buffer.count
            guard buffer.count - start <= limits.maxRecordBytes else {
                throw IOError(
                    file: path, line: line + 1, column: 1,
                    message: "line is longer than \(limits.maxRecordBytes) bytes (--max-record-bytes); "
                        + "is this a JSON Lines file?")
            }
            if eof {
                guard start < buffer.count else { return nil }
                let range = start..<buffer.count
                start = buffer.count
                return range
            }
            if start > 0 {
                buffer.removeFirst(start)
                scanFrom -= start
                start = 0
            }
            if InputFile.append(from: file, to: &buffer) == 0 { eof = true }
        }
    }
}

/// A JSON value as a column sees it.
enum JSONScalar {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    /// Nested array or object, kept as JSON text.
    case nested(String)

    var kind: InferredKind {
        switch self {
        case .null: .null
        case .bool: .bool
        case .number(let s): s.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) ? .float : .int
        case .string, .nested: .utf8
        }
    }

    var text: String {
        switch self {
        case .null: ""
        case .bool(let b): b ? "true" : "false"
        case .number(let s), .string(let s), .nested(let s): s
        }
    }
}

/// A small JSON parser for one line: objects of scalars, with nested values kept as text.
struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    let file: String
    let line: Int
    var i = 0

    init(bytes: UnsafeRawBufferPointer, file: String, line: Int) {
        var n = bytes.count
        while n > 0 && (bytes[n - 1] == 0x0A || bytes[n - 1] == 0x0D) { n -= 1 }
        self.bytes = UnsafeRawBufferPointer(rebasing: bytes[0..<n])
        self.file = file
        self.line = line
    }

    var atEnd: Bool { i >= bytes.count }

    func error(_ message: String) -> IOError { IOError(file: file, line: line, column: i + 1, message: message) }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0D || bytes[i] == 0x0A { i += 1 }
    }

    mutating func expect(_ c: UInt8) throws {
        skipSpace()
        guard i < bytes.count, bytes[i] == c else {
            throw error("expected '\(Character(Unicode.Scalar(c)))'" + (atEnd ? " before the end of the line" : ""))
        }
        i += 1
    }

    mutating func parseObject() throws -> (pairs: [(String, JSONScalar)], end: Int) {
        try expect(UInt8(ascii: "{"))
        var pairs: [(String, JSONScalar)] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return (pairs, i)
        }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            try expect(UInt8(ascii: ":"))
            pairs.append((key, try parseValue()))
            skipSpace()
            guard i < bytes.count else { throw error("expected ',' or '}' before the end of the line") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "}") {
                i += 1
                return (pairs, i)
            }
            throw error("expected ',' or '}'")
        }
    }

    mutating func parseValue() throws -> JSONScalar {
        skipSpace()
        guard i < bytes.count else { throw error("expected a value before the end of the line") }
        let c = bytes[i]
        switch c {
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let start = i
            try skipNested()
            return .nested(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default:
            let start = i
            while i < bytes.count, let s = Optional(bytes[i]),
                s == UInt8(ascii: "-") || s == UInt8(ascii: "+") || s == UInt8(ascii: ".") || s == UInt8(ascii: "e")
                    || s == UInt8(ascii: "E") || (s >= 48 && s <= 57)
            { i += 1 }
            guard i > start else { throw error("unexpected character '\(Character(Unicode.Scalar(c)))'") }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            guard Double(text) != nil else {
                i = start
                throw error("malformed number '\(text)'")
            }
            return .number(text)
        }
    }

    mutating func literal(_ word: String) throws {
        let start = i
        for b in word.utf8 {
            guard i < bytes.count, bytes[i] == b else {
                i = start
                throw error("expected '\(word)'")
            }
            i += 1
        }
    }

    mutating func skipNested() throws {
        var depth = 0
        repeat {
            guard i < bytes.count else { throw error("unclosed array or object") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                _ = try parseString()
                continue
            }
            if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { depth += 1 }
            if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") { depth -= 1 }
            i += 1
        } while depth > 0
    }

    mutating func parseString() throws -> String {
        let start = i
        i += 1
        var out: [UInt8] = []
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "\"") {
                guard let s = String(validating: out, as: UTF8.self) else {
                    i = start
                    throw error("invalid UTF-8 in a string")
                }
                return s
            }
            if c == UInt8(ascii: "\\") {
                guard i < bytes.count else { break }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    guard i + 4 <= bytes.count,
                        var code = UInt32(
                            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + 4)]), as: UTF8.self),
                            radix: 16)
                    else {
                        throw error("bad \\u escape")
                    }
                    i += 4
                    // A surrogate pair spells one scalar in two escapes.
                    if (0xD800..<0xDC00).contains(code), i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"),
                        bytes[i + 1] == UInt8(ascii: "u"),
                        let low = UInt32(
                            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(i + 2)..<(i + 6)]), as: UTF8.self),
                            radix: 16),
                        (0xDC00..<0xE000).contains(low)
                    {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("bad \\u escape") }
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: out.append(e)
                }
                continue
            }
            out.append(c)
        }
        i = start
        throw error("string is not closed before the end of the line")
    }
}

/// One field of a JSON object, as read by ``JSONObjectFields/parse(_:)``.
public enum JSONFieldValue: Sendable {
    case string(String)
    case number(String)
    case bool(Bool)
    case null
    /// A nested array or object, as its JSON text.
    case nested(String)

    /// "a string", "a number", "an array" … for messages.
    public var typeName: String {
        switch self {
        case .string: "a string"
        case .number: "a number"
        case .bool: "a bool"
        case .null: "null"
        case .nested(let text): text.hasPrefix("[") ? "an array" : "an object"
        }
    }
}

/// Reads a JSON object's fields in order, duplicates included (a request that names a field twice
/// is ambiguous, and the caller can refuse it), with the same bounded parser as JSON Lines.
public enum JSONObjectFields {
    /// - Throws: ``IOError`` (file "body") naming the line and column of the first problem.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> [(name: String, value: JSONFieldValue)] {
        var parser = JSONParser(bytes: bytes, file: "body", line: 1)
        parser.skipSpace()
        let object = try parser.parseObject()
        parser.skipSpace()
        guard parser.atEnd else { throw parser.error("text after the end of the JSON object") }
        return object.pairs.map { name, value in
            switch value {
            case .string(let s): (name, .string(s))
            case .number(let n): (name, .number(n))
            case .bool(let b): (name, .bool(b))
            case .null: (name, .null)
            case .nested(let text): (name, .nested(text))
            }
        }
    }
}

/// `U+0063 U+0061 …` for a name's first scalars: two names that print alike, told apart.
func scalarList(_ name: String, limit: Int = 12) -> String {
    let scalars = name.unicodeScalars.prefix(limit).map { "U+" + String($0.value, radix: 16, uppercase: true) }
    return scalars.joined(separator: " ") + (name.unicodeScalars.count > limit ? " …" : "")
}
