import EddyIO
import Foundation

/// The JSON the server writes for a reply (``Replies.swift``): an `Encodable` value with its keys
/// sorted, nil fields left out, strings escaped as the engine's results are, and a ``RawJSON`` field
/// (the result) written last, as it is. Foundation's `JSONEncoder` took 12 µs for a small reply (a
/// request in a worker costs about 90 µs in all), writes `3.0` as `3` and sorts no raw field last.
enum ReplyJSON {
    /// `value` as the server's JSON text.
    static func encode(_ value: some Encodable) -> [UInt8] {
        let node = Node()
        do {
            try value.encode(to: node)
        } catch {
            // The encoder throws nothing; a value's own `encode(to:)` might.
            return Array("{\"error\":\(ResultWriter.jsonString("cannot write the reply: \(error)"))}".utf8)
        }
        var out: [UInt8] = []
        out.reserveCapacity(256)
        Node.write(node.value, to: &out, depth: 0)
        return out
    }

    /// One value of the reply being encoded, and the `Encoder` that fills it in. Scalars are kept as
    /// their JSON text in their container (no node each): a node is made only for a value that encodes
    /// itself (a nested struct, an array).
    final class Node: Encoder {
        enum Value {
            case empty
            /// A scalar, as JSON text.
            case scalar(String)
            /// JSON text written as it is, after its object's other keys.
            case raw(String)
            case object(Fields)
            case array(Items)
            /// A value still being encoded (`superEncoder`).
            case node(Node)
        }
        /// An object's fields in the order they were encoded; written sorted by key.
        final class Fields {
            var entries: [(key: String, value: Value)] = []

            func set(_ key: String, _ value: Value) {
                if let i = entries.firstIndex(where: { $0.key == key }) {
                    entries[i].value = value
                } else {
                    entries.append((key, value))
                }
            }
        }
        final class Items { var values: [Value] = [] }

        var value = Value.empty
        var codingPath: [any CodingKey] { [] }
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        init() {}

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            if case .object(let fields) = value { return KeyedEncodingContainer(Keyed(fields: fields)) }
            let fields = Fields()
            value = .object(fields)
            return KeyedEncodingContainer(Keyed(fields: fields))
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            if case .array(let items) = value { return Unkeyed(items: items) }
            let items = Items()
            value = .array(items)
            return Unkeyed(items: items)
        }

        func singleValueContainer() -> any SingleValueEncodingContainer { Single(node: self) }

        /// Writes `text`, JSON already, as this value.
        func raw(_ text: String) { value = .raw(text) }

        /// `value` encoded: its scalar text, or the object or array it made.
        static func of(_ value: some Encodable) throws -> Value {
            let node = Node()
            try value.encode(to: node)
            return node.value
        }

        static func write(_ value: Value, to out: inout [UInt8], depth: Int) {
            switch value {
            case .empty: out.append(contentsOf: "null".utf8)
            case .scalar(let text), .raw(let text): out.append(contentsOf: text.utf8)
            case .node(let node): write(node.value, to: &out, depth: depth)
            case .object(let fields):
                out.append(UInt8(ascii: "{"))
                let sorted = fields.entries.sorted { $0.key < $1.key }
                var first = true
                // Raw text (the result, possibly megabytes) last: a client reads the facts first.
                for raw in [false, true] {
                    for (key, value) in sorted where isRaw(value) == raw {
                        if !first { out.append(UInt8(ascii: ",")) }
                        first = false
                        out.append(contentsOf: ResultWriter.jsonString(key).utf8)
                        out.append(UInt8(ascii: ":"))
                        write(value, to: &out, depth: depth + 1)
                    }
                }
                out.append(UInt8(ascii: "}"))
            case .array(let items):
                out.append(UInt8(ascii: "["))
                for (k, value) in items.values.enumerated() {
                    if k > 0 { out.append(UInt8(ascii: ",")) }
                    write(value, to: &out, depth: depth + 1)
                }
                out.append(UInt8(ascii: "]"))
            }
        }

        static func isRaw(_ value: Value) -> Bool {
            switch value {
            case .raw: true
            case .node(let node): isRaw(node.value)
            default: false
            }
        }

        static func scalar(_ s: String) -> Value { .scalar(ResultWriter.jsonString(s)) }
        static func scalar(_ b: Bool) -> Value { .scalar(b ? "true" : "false") }
        /// A non-finite number is written as null (JSON has none).
        static func scalar(_ d: Double) -> Value { .scalar(d.isFinite ? "\(d)" : "null") }
        static func scalar(_ f: Float) -> Value { .scalar(f.isFinite ? "\(f)" : "null") }
        static func scalar(_ i: some BinaryInteger) -> Value { .scalar(String(i)) }
        static var null: Value { .scalar("null") }
    }

    private struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let fields: Node.Fields
        var codingPath: [any CodingKey] { [] }

        private func set(_ key: Key, _ value: Node.Value) { fields.set(key.stringValue, value) }

        mutating func encodeNil(forKey key: Key) { set(key, Node.null) }
        mutating func encode(_ value: Bool, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: String, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: Double, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: Float, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: Int, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: Int8, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: Int16, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: Int32, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: Int64, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: UInt, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: UInt8, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: UInt16, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: UInt32, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode(_ value: UInt64, forKey key: Key) { set(key, Node.scalar(value)) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { set(key, try Node.of(value)) }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
            -> KeyedEncodingContainer<NestedKey>
        {
            let nested = Node.Fields()
            set(key, .object(nested))
            return KeyedEncodingContainer(Keyed<NestedKey>(fields: nested))
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let items = Node.Items()
            set(key, .array(items))
            return Unkeyed(items: items)
        }

        mutating func superEncoder() -> any Encoder {
            let node = Node()
            fields.set("super", .node(node))
            return node
        }

        mutating func superEncoder(forKey key: Key) -> any Encoder {
            let node = Node()
            set(key, .node(node))
            return node
        }
    }

    private struct Unkeyed: UnkeyedEncodingContainer {
        let items: Node.Items
        var codingPath: [any CodingKey] { [] }
        var count: Int { items.values.count }

        private func append(_ value: Node.Value) { items.values.append(value) }

        mutating func encodeNil() { append(Node.null) }
        mutating func encode(_ value: Bool) { append(Node.scalar(value)) }
        mutating func encode(_ value: String) { append(Node.scalar(value)) }
        mutating func encode(_ value: Double) { append(Node.scalar(value)) }
        mutating func encode(_ value: Float) { append(Node.scalar(value)) }
        mutating func encode(_ value: Int) { append(Node.scalar(value)) }
        mutating func encode(_ value: Int8) { append(Node.scalar(value)) }
        mutating func encode(_ value: Int16) { append(Node.scalar(value)) }
        mutating func encode(_ value: Int32) { append(Node.scalar(value)) }
        mutating func encode(_ value: Int64) { append(Node.scalar(value)) }
        mutating func encode(_ value: UInt) { append(Node.scalar(value)) }
        mutating func encode(_ value: UInt8) { append(Node.scalar(value)) }
        mutating func encode(_ value: UInt16) { append(Node.scalar(value)) }
        mutating func encode(_ value: UInt32) { append(Node.scalar(value)) }
        mutating func encode(_ value: UInt64) { append(Node.scalar(value)) }
        mutating func encode<T: Encodable>(_ value: T) throws { append(try Node.of(value)) }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
            -> KeyedEncodingContainer<NestedKey>
        {
            let nested = Node.Fields()
            append(.object(nested))
            return KeyedEncodingContainer(Keyed<NestedKey>(fields: nested))
        }

        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let nested = Node.Items()
            append(.array(nested))
            return Unkeyed(items: nested)
        }

        mutating func superEncoder() -> any Encoder {
            let node = Node()
            append(.node(node))
            return node
        }
    }

    private struct Single: SingleValueEncodingContainer {
        let node: Node
        var codingPath: [any CodingKey] { [] }

        private func set(_ value: Node.Value) { node.value = value }

        mutating func encodeNil() { set(Node.null) }
        mutating func encode(_ value: Bool) { set(Node.scalar(value)) }
        mutating func encode(_ value: String) { set(Node.scalar(value)) }
        mutating func encode(_ value: Double) { set(Node.scalar(value)) }
        mutating func encode(_ value: Float) { set(Node.scalar(value)) }
        mutating func encode(_ value: Int) { set(Node.scalar(value)) }
        mutating func encode(_ value: Int8) { set(Node.scalar(value)) }
        mutating func encode(_ value: Int16) { set(Node.scalar(value)) }
        mutating func encode(_ value: Int32) { set(Node.scalar(value)) }
        mutating func encode(_ value: Int64) { set(Node.scalar(value)) }
        mutating func encode(_ value: UInt) { set(Node.scalar(value)) }
        mutating func encode(_ value: UInt8) { set(Node.scalar(value)) }
        mutating func encode(_ value: UInt16) { set(Node.scalar(value)) }
        mutating func encode(_ value: UInt32) { set(Node.scalar(value)) }
        mutating func encode(_ value: UInt64) { set(Node.scalar(value)) }
        mutating func encode<T: Encodable>(_ value: T) throws { try value.encode(to: node) }
    }
}

/// JSON text that goes into a reply as it is, never parsed: an evaluation's result (the engine's JSON
/// with `format: json`, one string literal with the other formats). Parsing JSON into objects and
/// writing it again cost more than the query (600 ms for 30,000 rows). ``ReplyJSON`` writes it last
/// in its object; another encoder (a client's `JSONEncoder`) gets the value the text holds.
package struct RawJSON: Codable, Sendable, Equatable {
    package var text: String

    package init(text: String) { self.text = text }

    package func encode(to encoder: any Encoder) throws {
        if let node = encoder as? ReplyJSON.Node {
            node.raw(text)
            return
        }
        var container = encoder.singleValueContainer()
        try container.encode(try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)))
    }

    /// Decoded from any JSON value, kept as its text (as ``ReplyJSON`` writes it).
    package init(from decoder: any Decoder) throws {
        text = String(decoding: ReplyJSON.encode(try JSONValue(from: decoder)), as: UTF8.self)
    }
}

/// Any JSON value, for reading a ``RawJSON`` result back (a client's side).
package enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    package init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}
