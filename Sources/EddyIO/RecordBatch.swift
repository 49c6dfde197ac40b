@_spi(Host) public import Eddy

/// A slice of a table: one canonical or encoded array per column, all the same length.
public struct RecordBatch: Sendable {
    public var schema: Schema
    public var columns: [any ArrayNode]
    /// Number of rows.
    public var count: Int
    /// The input line of the batch's first row (1-based), for messages.
    public var firstLine: Int
    /// True when the columns are already encoded trees (read from an `.eddy` file): not compressed again.
    public var encoded = false
    /// For an `.eddy` file, the file row of the batch's first row (0-based), for messages.
    public var firstRow = 0
    /// True when statistics left some rows of the batch's range out (Parquet page statistics): its rows
    /// are not consecutive from ``firstRow``, which messages must say.
    public var rowsLeftOut = false
    /// For an `.eddy` file, the plain (canonical) bytes of the columns read, from the footer's statistics.
    public var plainBytes = 0
    /// Columns built after `--where` (late materialisation): given the rows the filter keeps (nil: all
    /// of them), each builds its column of those rows only. ``columns`` holds a placeholder at their
    /// index. See ``ScanRequest/filterColumns``.
    public var late: [Int: @Sendable (Bitmap?) throws -> any ArrayNode] = [:]

    public init(schema: Schema, columns: [any ArrayNode], count: Int, firstLine: Int = 1) {
        self.schema = schema
        self.columns = columns
        self.count = count
        self.firstLine = firstLine
    }
}

/// Column names and types.
public struct Schema: Sendable, Equatable {
    public var fields: [StructField] {
        didSet { byName = Self.lookup(fields) }
    }
    /// Name to first index, for schemas wide enough that a linear search per name (the binder looks up
    /// every selected column) made a query over 40,000 columns quadratic: 27.8 s.
    private var byName: [String: Int]?

    public init(_ fields: [StructField]) {
        self.fields = fields
        byName = Self.lookup(fields)
    }

    public var names: [String] { fields.map(\.name) }

    /// The index of the column called `name` (the first, if two compare equal).
    public func index(of name: String) -> Int? {
        if let byName { return byName[name] }
        return fields.firstIndex { $0.name == name }
    }

    public static func == (a: Schema, b: Schema) -> Bool { a.fields == b.fields }

    private static func lookup(_ fields: [StructField]) -> [String: Int]? {
        guard fields.count > 32 else { return nil }
        var map: [String: Int] = [:]
        map.reserveCapacity(fields.count)
        for (k, f) in fields.enumerated() where map[f.name] == nil { map[f.name] = k }
        return map
    }

    /// Parses an override such as `price:f64,name:utf8` (types: bool, i8…i64, u8…u64, f32, f64, utf8).
    /// - Throws: ``IOError`` naming the entry that does not parse.
    public static func parseOverrides(_ text: String) throws -> [String: DType] {
        var out: [String: DType] = [:]
        for entry in text.split(separator: ",") {
            let parts = entry.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: " ") }
            guard parts.count == 2, let t = DType.parse(parts[1]) else {
                throw IOError(
                    file: "--schema", line: 0, column: 0,
                    message:
                        "cannot read schema entry '\(entry)'; expected name:type with type one of \(DType.typeNames)")
            }
            out[parts[0]] = t.with(.nullable)
        }
        return out
    }
}

extension DType {
    /// Type names accepted in schemas and casts.
    public static let typeNames = "bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, utf8"

    /// Parses a type name such as `i64`, `int`, `double`, `utf8`, `varchar` (non-nullable).
    public static func parse(_ name: String) -> DType? {
        switch name.lowercased() {
        case "bool", "boolean": .bool(.nonNullable)
        case "i8", "int8", "tinyint": .primitive(.int8, .nonNullable)
        case "i16", "int16", "smallint": .primitive(.int16, .nonNullable)
        case "i32", "int32", "int", "integer": .primitive(.int32, .nonNullable)
        case "i64", "int64", "bigint", "long": .primitive(.int64, .nonNullable)
        case "u8", "uint8": .primitive(.uint8, .nonNullable)
        case "u16", "uint16": .primitive(.uint16, .nonNullable)
        case "u32", "uint32": .primitive(.uint32, .nonNullable)
        case "u64", "uint64": .primitive(.uint64, .nonNullable)
        case "f32", "float32", "float", "real": .primitive(.float32, .nonNullable)
        case "f64", "float64", "double": .primitive(.float64, .nonNullable)
        case "utf8", "string", "text", "varchar": .utf8(.nonNullable)
        default: nil
        }
    }
}

/// A malformed input: names the file, the line and column, and what was wrong.
public struct IOError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        let name = escapedForDisplay(file)
        return line > 0 ? "\(name):\(line):\(column): \(message)" : "\(name): \(message)"
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
