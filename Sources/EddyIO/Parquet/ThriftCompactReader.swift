/// What went wrong in a Parquet file, before the reader adds the file, row group and column.
struct ParquetProblem: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// A cursor over untrusted bytes read one at a time, with the varints that Thrift's compact protocol
/// and Parquet's pages share.
protocol VarintCursor {
    mutating func byte() throws -> UInt8
    /// What a varint longer than 10 bytes is called in the error.
    static var overlongVarint: String { get }
}

extension VarintCursor {
    /// An unsigned LEB128 varint of at most 10 bytes.
    mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw ParquetProblem(Self.overlongVarint) }
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
    }

    /// A zigzag-encoded signed varint.
    mutating func zigzag() throws -> Int64 {
        let u = try varint()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }
}

/// Reads Thrift's compact protocol (the encoding of Parquet's footer and page headers) from untrusted
/// bytes: every length and count is checked against the bytes left, nesting is bounded, and unknown
/// fields are skipped by their wire type.
struct ThriftCompactReader: VarintCursor {
    /// Wire types of the compact protocol.
    enum WireType: UInt8 {
        case stop = 0, boolTrue = 1, boolFalse = 2, byte = 3, i16 = 4, i32 = 5, i64 = 6, double = 7
        case binary = 8, list = 9, set = 10, map = 11, `struct` = 12
    }

    /// Structs nested deeper than this are refused (Parquet's own metadata nests about 5 deep).
    static let maxDepth = 32

    let bytes: UnsafeRawBufferPointer
    private(set) var position: Int
    private var depth = 0

    init(_ bytes: UnsafeRawBufferPointer, at position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    var remaining: Int { bytes.count - position }

    static var overlongVarint: String { "thrift: varint longer than 10 bytes" }

    mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw ParquetProblem("thrift: ends in the middle of a value") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func i32() throws -> Int32 {
        let v = try zigzag()
        guard let r = Int32(exactly: v) else { throw ParquetProblem("thrift: i32 field holds \(v)") }
        return r
    }

    mutating func i64() throws -> Int64 { try zigzag() }

    /// A binary or string field: a view of its bytes (valid while `bytes` is).
    mutating func binary() throws -> UnsafeRawBufferPointer {
        let n = try varint()
        guard n <= UInt64(remaining) else {
            throw ParquetProblem("thrift: a \(n)-byte string with \(remaining) bytes left")
        }
        let start = position
        position += Int(n)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<position])
    }

    mutating func string() throws -> String { String(decoding: try binary(), as: UTF8.self) }

    /// A list header: the element type and a count no larger than the bytes left (every element of
    /// every type takes at least one byte).
    mutating func listHeader() throws -> (type: UInt8, count: Int) {
        let h = try byte()
        var n = UInt64(h >> 4)
        if n == 15 { n = try varint() }
        guard n <= UInt64(remaining) else {
            throw ParquetProblem("thrift: a list of \(n) elements with \(remaining) bytes left")
        }
        return (h & 0x0F, Int(n))
    }

    /// Reads a struct's fields, calling `field` with each id and wire type; `field` reads the value or
    /// returns false to have it skipped.
    mutating func readStruct(_ field: (inout ThriftCompactReader, Int16, UInt8) throws -> Bool) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else {
            throw ParquetProblem("thrift: structs nested deeper than \(Self.maxDepth)")
        }
        var last: Int16 = 0
        while true {
            let h = try byte()
            let type = h & 0x0F
            if type == WireType.stop.rawValue { return }
            let delta = Int16(h >> 4)
            let id: Int16
            if delta == 0 {
                let raw = try zigzag()
                guard let v = Int16(exactly: raw) else { throw ParquetProblem("thrift: field id \(raw)") }
                id = v
            } else {
                id = last &+ delta
            }
            last = id
            if try !field(&self, id, type) { try skip(type) }
        }
    }

    /// A boolean field's value, which the compact protocol keeps in the field's wire type.
    func bool(_ type: UInt8) throws -> Bool {
        switch type {
        case WireType.boolTrue.rawValue: return true
        case WireType.boolFalse.rawValue: return false
        default: throw ParquetProblem("thrift: expected a bool, found wire type \(type)")
        }
    }

    /// Skips a value of wire type `type`.
    mutating func skip(_ type: UInt8) throws {
        guard let t = WireType(rawValue: type) else { throw ParquetProblem("thrift: unknown wire type \(type)") }
        switch t {
        case .stop: throw ParquetProblem("thrift: a stop where a value belongs")
        case .boolTrue, .boolFalse: return
        case .byte: _ = try byte()
        case .i16, .i32, .i64: _ = try varint()
        case .double:
            guard remaining >= 8 else { throw ParquetProblem("thrift: ends in the middle of a double") }
            position += 8
        case .binary: _ = try binary()
        case .list, .set:
            let (elementType, n) = try listHeader()
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maxDepth else { throw ParquetProblem("thrift: lists nested too deep") }
            for _ in 0..<n {
                // Bools inside a list are one byte each.
                if elementType == WireType.boolTrue.rawValue || elementType == WireType.boolFalse.rawValue {
                    _ = try byte()
                } else {
                    try skip(elementType)
                }
            }
        case .map:
            let n = try varint()
            guard n <= UInt64(remaining) else { throw ParquetProblem("thrift: a map of \(n) entries") }
            guard n > 0 else { return }
            let kv = try byte()
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maxDepth else { throw ParquetProblem("thrift: maps nested too deep") }
            for _ in 0..<n {
                try skip(kv >> 4)
                try skip(kv & 0x0F)
            }
        case .struct: try readStruct { _, _, _ in false }
        }
    }

    /// Reads a list of structs, each with `element`, refusing more than `limit` elements.
    mutating func structList<T>(limit: Int, what: String, _ element: (inout ThriftCompactReader) throws -> T) throws
        -> [T]
    {
        let (type, n) = try listHeader()
        guard type == WireType.struct.rawValue else { throw ParquetProblem("thrift: \(what) is not a list of structs") }
        guard n <= limit else { throw ParquetProblem("\(n) \(what), more than the \(limit) this reader takes") }
        var out: [T] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try element(&self)) }
        return out
    }

    /// Reads a list of i32 values (enums), refusing more than `limit`.
    mutating func i32List(limit: Int, what: String) throws -> [Int32] {
        let (type, n) = try listHeader()
        guard type == WireType.i32.rawValue else { throw ParquetProblem("thrift: \(what) is not a list of i32") }
        guard n <= limit else { throw ParquetProblem("\(n) \(what), more than the \(limit) this reader takes") }
        var out: [Int32] = []
        for _ in 0..<n { out.append(try i32()) }
        return out
    }

    /// Reads a list of strings, refusing more than `limit`.
    mutating func stringList(limit: Int, what: String) throws -> [String] {
        let (type, n) = try listHeader()
        guard type == WireType.binary.rawValue else { throw ParquetProblem("thrift: \(what) is not a list of strings") }
        guard n <= limit else { throw ParquetProblem("\(n) \(what), more than the \(limit) this reader takes") }
        var out: [String] = []
        for _ in 0..<n { out.append(try string()) }
        return out
    }

    /// Checks that a field has the wire type its id calls for.
    static func expect(_ type: UInt8, _ wanted: WireType, _ field: String) throws {
        guard type == wanted.rawValue else {
            throw ParquetProblem("thrift: field \(field) has wire type \(type), expected \(wanted)")
        }
    }
}
