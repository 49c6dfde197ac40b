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
        node.write(to: &out, depth: 0)
        return out
    }

    /// One value of the reply being encoded, and the `Encoder` that fills it in.
    final class Node: Encoder {
        enum Value {
            case empty
            /// A scalar, as JSON text.
            case scalar(String)
            /// JSON text written as it is, after its object's other keys.
            case raw(String)
            case object(Fields)
            case array(Items)
        }
        final class Fields { var byKey: [String: Node] = [:] }
        final class Items { var nodes: [Node] = [] }

        var value = Value.empty
        var codingPath: [any CodingKey] { [] }
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        init() {}
        init(_ value: Value) { self.value = value }

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

        static func of(_ value: some Encodable) throws -> Node {
            let node = Node()
            try value.encode(to: node)
            return node
        }

        var isRaw: Bool {
            if case .raw = value { return true }
            return false
        }

        func write(to out: inout [UInt8], depth: Int) {
            switch value {
            case .empty: out.append(contentsOf: "null".utf8)
            case .scalar(let text), .raw(let text): out.append(contentsOf: text.utf8)
            case .object(let fields):
                out.append(UInt8(ascii: "{"))
                let keys = fields.byKey.keys.sorted()
                var first = true
                // Raw text (the result, possibly megabytes) last: a client reads the facts first.
                for raw in [false, true] {
                    for key in keys {
                        guard let node = fields.byKey[key], node.isRaw == raw else { continue }
                        if !first { out.append(UInt8(ascii: ",")) }
                        first = false
                        out.append(contentsOf: ResultWriter.jsonString(key).utf8)
                        out.append(UInt8(ascii: ":"))
                        node.write(to: &out, depth: depth + 1)
                    }
                }
                out.append(UInt8(ascii: "}"))
            case .array(let items):
                out.append(UInt8(ascii: "["))
                for (k, node) in items.nodes.enumerated() {
                    if k > 0 { out.append(UInt8(ascii: ",")) }
                    node.write(to: &out, depth: depth + 1)
                }
                out.append(UInt8(ascii: "]"))
            }
        }

        static func scalar(_ s: String) -> Node { Node(.scalar(ResultWriter.jsonString(s))) }
        static func scalar(_ b: Bool) -> Node { Node(.scalar(b ? "true" : "false")) }
        /// A non-finite number is written as null (JSON has none).
        static func scalar(_ d: Double) -> Node { Node(.scalar(d.isFinite ? "\(d)" : "null")) }
        static func scalar(_ f: Float) -> Node { Node(.scalar(f.isFinite ? "\(f)" : "null")) }
        static func scalar(_ i: some BinaryInteger) -> Node { Node(.scalar(String(i))) }
        static var null: Node { Node(.scalar("null")) }
    }

    private struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let fields: Node.Fields
        var codingPath: [any CodingKey] { [] }

        private func set(_ key: Key, _ node: Node) { fields.byKey[key.stringValue] = node }

        mutating func encodeNil(forKey key: Key) { set(key, .null) }
        mutating func encode(_ value: Bool, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: String, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: Double, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: Float, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: Int, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: Int8, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: Int16, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: Int32, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: Int64, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: UInt, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: UInt8, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: UInt16, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: UInt32, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode(_ value: UInt64, forKey key: Key) { set(key, .scalar(value)) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { set(key, try .of(value)) }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
            -> KeyedEncodingContainer<NestedKey>
        {
            let node = Node()
            set(key, node)
            return node.container(keyedBy: keyType)
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let node = Node()
            set(key, node)
            return node.unkeyedContainer()
        }

        mutating func superEncoder() -> any Encoder {
            let node = Node()
            fields.byKey["super"] = node
            return node
        }

        mutating func superEncoder(forKey key: Key) -> any Encoder {
            let node = Node()
            set(key, node)
            return node
        }
    }

    private struct Unkeyed: UnkeyedEncodingContainer {
        let items: Node.Items
        var codingPath: [any CodingKey] { [] }
        var count: Int { items.nodes.count }

        private func append(_ node: Node) { items.nodes.append(node) }

        mutating func encodeNil() { append(.null) }
        mutating func encode(_ value: Bool) { append(.scalar(value)) }
        mutating func encode(_ value: String) { append(.scalar(value)) }
        mutating func encode(_ value: Double) { append(.scalar(value)) }
        mutating func encode(_ value: Float) { append(.scalar(value)) }
        mutating func encode(_ value: Int) { append(.scalar(value)) }
        mutating func encode(_ value: Int8) { append(.scalar(value)) }
        mutating func encode(_ value: Int16) { append(.scalar(value)) }
        mutating func encode(_ value: Int32) { append(.scalar(value)) }
        mutating func encode(_ value: Int64) { append(.scalar(value)) }
        mutating func encode(_ value: UInt) { append(.scalar(value)) }
        mutating func encode(_ value: UInt8) { append(.scalar(value)) }
        mutating func encode(_ value: UInt16) { append(.scalar(value)) }
        mutating func encode(_ value: UInt32) { append(.scalar(value)) }
        mutating func encode(_ value: UInt64) { append(.scalar(value)) }
        mutating func encode<T: Encodable>(_ value: T) throws { append(try .of(value)) }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
            -> KeyedEncodingContainer<NestedKey>
        {
            let node = Node()
            append(node)
            return node.container(keyedBy: keyType)
        }

        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let node = Node()
            append(node)
            return node.unkeyedContainer()
        }

        mutating func superEncoder() -> any Encoder {
            let node = Node()
            append(node)
            return node
        }
    }

    private struct Single: SingleValueEncodingContainer {
        let node: Node
        var codingPath: [any CodingKey] { [] }

        private func set(_ other: Node) { node.value = other.value }

        mutating func encodeNil() { set(.null) }
        mutating func encode(_ value: Bool) { set(.scalar(value)) }
        mutating func encode(_ value: String) { set(.scalar(value)) }
        mutating func encode(_ value: Double) { set(.scalar(value)) }
        mutating func encode(_ value: Float) { set(.scalar(value)) }
        mutating func encode(_ value: Int) { set(.scalar(value)) }
        mutating func encode(_ value: Int8) { set(.scalar(value)) }
        mutating func encode(_ value: Int16) { set(.scalar(value)) }
        mutating func encode(_ value: Int32) { set(.scalar(value)) }
        mutating func encode(_ value: Int64) { set(.scalar(value)) }
        mutating func encode(_ value: UInt) { set(.scalar(value)) }
        mutating func encode(_ value: UInt8) { set(.scalar(value)) }
        mutating func encode(_ value: UInt16) { set(.scalar(value)) }
        mutating func encode(_ value: UInt32) { set(.scalar(value)) }
        mutating func encode(_ value: UInt64) { set(.scalar(value)) }
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
