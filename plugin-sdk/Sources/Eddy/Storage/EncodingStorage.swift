/// How one encoding's nodes are written to and read from an `.eddy` file.
///
/// The file format stores every node of an encoding tree as its encoding name, dtype, length, a small
/// metadata blob, its buffers (each 64-byte aligned, used in place when the file is read) and its
/// children (stored as nodes of their own). An encoding's storage only says how a node becomes those
/// parts and back: `write` splits a node into ``StoredParts``; `read` builds the node from a
/// ``StoredNode`` whose parts come from a file — an untrusted source, so `read` must check every count,
/// width and offset it takes from the metadata and throw ``EddyError`` rather than trap.
///
/// Metadata is versioned: a storage writes ``metadataVersion`` and reads any version in
/// ``readableVersions``. A file holding a version outside that range fails with a message naming the
/// plugin version that wrote it and the one loaded.
public struct EncodingStorage: Sendable {
    /// The encoding this storage writes and reads.
    public let encoding: EncodingID
    /// The metadata version `write` produces.
    public let metadataVersion: UInt32
    /// The metadata versions `read` accepts.
    public let readableVersions: ClosedRange<UInt32>
    /// Who provides it: ``KernelOwner/builtin`` for the engine's encodings, else the plugin.
    public let owner: KernelOwner
    let writeNode: @Sendable (any ArrayNode) throws -> StoredParts
    let readNode: @Sendable (StoredNode) throws -> any ArrayNode

    /// A storage for `encoding`; `write` may assume its argument has that encoding.
    public init(
        encoding: EncodingID, metadataVersion: UInt32, readableVersions: ClosedRange<UInt32>, owner: KernelOwner,
        write: @escaping @Sendable (any ArrayNode) throws -> StoredParts,
        read: @escaping @Sendable (StoredNode) throws -> any ArrayNode
    ) {
        self.encoding = encoding
        self.metadataVersion = metadataVersion
        self.readableVersions = readableVersions
        self.owner = owner
        self.writeNode = write
        self.readNode = read
    }

    /// The parts of `node` to store.
    /// - Throws: when `node` is not of ``encoding`` or cannot be stored.
    public func write(_ node: any ArrayNode) throws -> StoredParts {
        guard node.encoding == encoding else {
            throw EddyError(.invalidArgument, "storage for \(encoding) asked to write a \(node.encoding) node")
        }
        return try writeNode(node)
    }

    /// The node stored as `stored`, checked: its version must be readable, and the node built must have
    /// the stored dtype and length.
    /// - Throws: ``EddyError`` naming the encoding and what failed; for a plugin's encoding the message
    ///   starts with the plugin's name and version, and ``EddyError/source`` is the plugin.
    public func read(_ stored: StoredNode) throws -> any ArrayNode {
        let node: any ArrayNode
        do {
            node = try readUnverified(stored)
        } catch var e as EddyError where !owner.isBuiltin {
            e.message = "plugin \(owner.name) \(owner.version): " + e.message
            throw e
        }
        guard node.encoding == encoding, node.count == stored.count, node.dtype == stored.dtype else {
            throw EddyError(
                .kernelContract,
                (owner.isBuiltin ? "" : "plugin \(owner.name) \(owner.version): ")
                    + "reading \(encoding) gave \(node.encoding)(\(node.dtype), len=\(node.count)); the file says \(encoding)(\(stored.dtype), len=\(stored.count))",
                source: owner.isBuiltin ? nil : owner.description)
        }
        return node
    }

    /// The node as `read` builds it, before its encoding, dtype and length are compared with what the
    /// file claims: for a host that checks those itself, with messages naming the file and the chunk.
    ///
    /// The metadata version is checked. An error the reader throws comes back as ``EddyError`` (a
    /// foreign error as its ``EddyError/cause``) whose ``EddyError/source`` is the plugin for a plugin's
    /// encoding; the message is the reader's own (the caller says whose it is).
    @_spi(Host) public func readUnverified(_ stored: StoredNode) throws -> any ArrayNode {
        let source = owner.isBuiltin ? nil : owner.description
        guard readableVersions.contains(stored.metadataVersion) else {
            throw EddyError(
                .unsupported,
                "\(encoding) metadata version \(stored.metadataVersion) is not readable by \(owner.isBuiltin ? "this engine" : "\(owner.name) \(owner.version)") (reads versions \(readableVersions.lowerBound)…\(readableVersions.upperBound))",
                source: source)
        }
        do {
            return try readNode(stored)
        } catch var e as EddyError {
            if let source { e.source = source }
            throw e
        } catch {
            throw EddyError(.invalidArgument, "\(encoding): \(error)", cause: error, source: source)
        }
    }
}

/// What ``EncodingStorage`` writes for one node: metadata bytes, buffers and child arrays (children are
/// stored as nodes of their own, with their own encodings).
public struct StoredParts: Sendable {
    /// The node's own small facts (widths, offsets, references), written with ``MetadataWriter``.
    public var metadata: [UInt8]
    /// The node's data, each written 64-byte aligned and handed back in place when read.
    public var buffers: [Buffer]
    /// The node's child arrays, in slot order.
    public var children: [any ArrayNode]

    /// The parts of one node.
    public init(metadata: [UInt8] = [], buffers: [Buffer] = [], children: [any ArrayNode] = []) {
        self.metadata = metadata
        self.buffers = buffers
        self.children = children
    }
}

/// One node as read from a file, for ``EncodingStorage`` to rebuild: the dtype and length the file
/// claims (the rebuilt node must match them), the metadata and its version, the buffers (views of the
/// file, already bounds-checked against it) and the children (already rebuilt).
public struct StoredNode: Sendable {
    /// The dtype the file claims for the node; the node rebuilt must have it.
    public let dtype: DType
    /// The length the file claims for the node; the node rebuilt must have it.
    public let count: Int
    /// The metadata bytes written by ``EncodingStorage/write(_:)``.
    public let metadata: [UInt8]
    /// The metadata version of the storage that wrote them.
    public let metadataVersion: UInt32
    /// The buffers, in the order they were written (views of the file).
    public let buffers: [Buffer]
    /// The children, in slot order, already rebuilt.
    public let children: [any ArrayNode]

    /// One node's parts as read.
    public init(
        dtype: DType, count: Int, metadata: [UInt8], metadataVersion: UInt32, buffers: [Buffer],
        children: [any ArrayNode]
    ) {
        self.dtype = dtype
        self.count = count
        self.metadata = metadata
        self.metadataVersion = metadataVersion
        self.buffers = buffers
        self.children = children
    }

    /// A reader of ``metadata``.
    public var metadataReader: MetadataReader { MetadataReader(metadata) }

    /// Buffer `index`.
    /// - Throws: when the node has fewer buffers.
    public func buffer(_ index: Int) throws -> Buffer {
        guard index >= 0, index < buffers.count else {
            throw EddyError(.invalidArgument, "node has \(buffers.count) buffers, needs buffer \(index)")
        }
        return buffers[index]
    }

    /// Child `index`.
    /// - Throws: when the node has fewer children.
    public func child(_ index: Int) throws -> any ArrayNode {
        guard index >= 0, index < children.count else {
            throw EddyError(.invalidArgument, "node has \(children.count) children, needs child \(index)")
        }
        return children[index]
    }

    /// Throws unless the node has exactly `buffers` buffers and `children` children.
    public func expect(buffers: Int, children: Int) throws {
        guard self.buffers.count == buffers, self.children.count == children else {
            throw EddyError(
                .invalidArgument,
                "node has \(self.buffers.count) buffers and \(self.children.count) children; its encoding stores \(buffers) and \(children)"
            )
        }
    }
}

/// Writes metadata: little-endian integers, doubles, strings, dtypes and scalars.
public struct MetadataWriter: Sendable {
    /// What was written so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty writer.
    public init() {}

    /// One byte.
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    /// A bool as one byte (0 or 1).
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    /// Four bytes, little-endian.
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    /// Eight bytes, little-endian.
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    /// A signed 64-bit integer (its bit pattern).
    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    /// A double (its bit pattern: NaN payloads and signed zeros survive).
    public mutating func f64(_ v: Double) { u64(v.bitPattern) }
    /// A count or offset (stored as an unsigned 64-bit integer; negative values are a caller's bug).
    public mutating func int(_ v: Int) { u64(UInt64(truncatingIfNeeded: Swift.max(v, 0))) }
    /// A length, then the bytes.
    public mutating func blob(_ v: [UInt8]) {
        int(v.count)
        bytes.append(contentsOf: v)
    }
    /// A string as its UTF-8 bytes (a ``blob(_:)``).
    public mutating func string(_ v: String) { blob(Array(v.utf8)) }

    /// A dtype (struct fields included).
    public mutating func dtype(_ t: DType) {
        switch t {
        case .null: u8(0)
        case .bool(let n):
            u8(1)
            bool(n == .nullable)
        case .primitive(let p, let n):
            u8(2)
            bool(n == .nullable)
            u8(p.storageCode)
        case .utf8(let n):
            u8(3)
            bool(n == .nullable)
        case .binary(let n):
            u8(4)
            bool(n == .nullable)
        case .struct(let fields, let n):
            u8(5)
            bool(n == .nullable)
            int(fields.count)
            for f in fields {
                string(f.name)
                dtype(f.dtype)
            }
        }
    }

    /// A scalar's value (its dtype is written separately, when needed, with ``dtype(_:)``).
    public mutating func scalarValue(_ v: ScalarValue) {
        switch v {
        case .null: u8(0)
        case .bool(let b):
            u8(1)
            bool(b)
        case .int(let i):
            u8(2)
            i64(i)
        case .uint(let u):
            u8(3)
            u64(u)
        case .float(let d):
            u8(4)
            f64(d)
        case .utf8(let s):
            u8(5)
            string(s)
        case .binary(let b):
            u8(6)
            blob(b)
        case .struct(let fields):
            u8(7)
            int(fields.count)
            for f in fields { scalarValue(f) }
        }
    }

    /// A scalar: its dtype, then its value.
    public mutating func scalar(_ s: Scalar) {
        dtype(s.dtype)
        scalarValue(s.value)
    }
}

/// Reads what ``MetadataWriter`` wrote, checking every length against the bytes left: a truncated or
/// crafted input throws ``EddyError`` (never traps), and nesting is bounded.
public struct MetadataReader: Sendable {
    let data: [UInt8]
    /// The position of the next byte to read.
    public private(set) var position = 0
    /// Struct dtypes and scalars may nest at most this deep.
    public static let maxDepth = 32

    /// A reader of `bytes`, from the first.
    public init(_ bytes: [UInt8]) { self.data = bytes }

    /// Bytes not read yet.
    public var remaining: Int { data.count - position }

    /// Throws unless every byte was read (trailing bytes mean the metadata is not what the reader thinks).
    public func finish() throws {
        guard remaining == 0 else {
            throw EddyError(.invalidArgument, "metadata has \(remaining) unread bytes")
        }
    }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else {
            throw EddyError(.invalidArgument, "metadata ends early: needs \(n) bytes at \(position), has \(remaining)")
        }
        defer { position += n }
        return data[position..<(position + n)]
    }

    /// One byte.
    public mutating func u8() throws -> UInt8 { try load(UInt8.self) }
    /// A bool; a byte other than 0 or 1 throws.
    public mutating func bool() throws -> Bool {
        let b = try u8()
        guard b <= 1 else { throw EddyError(.invalidArgument, "metadata bool at \(position - 1) is \(b)") }
        return b == 1
    }
    /// Four bytes, little-endian.
    public mutating func u32() throws -> UInt32 {
        UInt32(littleEndian: try load(UInt32.self))
    }
    /// Eight bytes, little-endian.
    public mutating func u64() throws -> UInt64 {
        UInt64(littleEndian: try load(UInt64.self))
    }

    /// The next `T`'s bytes as they are (checked against the bytes left; a footer has thousands).
    mutating func load<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let n = MemoryLayout<T>.size
        guard n <= remaining else {
            throw EddyError(.invalidArgument, "metadata ends early: needs \(n) bytes at \(position), has \(remaining)")
        }
        defer { position += n }
        return data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: position, as: T.self) }
    }
    /// A signed 64-bit integer.
    public mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    /// A double.
    public mutating func f64() throws -> Double { Double(bitPattern: try u64()) }
    /// A count or offset, at most `limit`.
    public mutating func int(max limit: Int = Int(Int32.max)) throws -> Int {
        let v = try u64()
        guard v <= UInt64(limit) else {
            throw EddyError(.invalidArgument, "metadata count \(v) at \(position - 8) exceeds \(limit)")
        }
        return Int(v)
    }
    /// A length, then that many bytes (the length bounded by the bytes left).
    public mutating func blob() throws -> [UInt8] { Array(try take(try int(max: remaining))) }
    /// A string; bytes that are not UTF-8 throw.
    public mutating func string() throws -> String {
        let b = try blob()
        guard let s = String(validating: b, as: UTF8.self) else {
            throw EddyError(.invalidArgument, "metadata string at \(position - b.count) is not UTF-8")
        }
        return s
    }

    /// A dtype written by ``MetadataWriter/dtype(_:)``.
    public mutating func dtype() throws -> DType { try dtype(depth: 0) }

    mutating func dtype(depth: Int) throws -> DType {
        guard depth < Self.maxDepth else {
            throw EddyError(.invalidArgument, "dtype nests deeper than \(Self.maxDepth)")
        }
        let tag = try u8()
        if tag == 0 { return .null }
        let n: Nullability = try bool() ? .nullable : .nonNullable
        switch tag {
        case 1: return .bool(n)
        case 2:
            let code = try u8()
            guard let p = PType(storageCode: code) else {
                throw EddyError(.invalidArgument, "unknown primitive type code \(code)")
            }
            return .primitive(p, n)
        case 3: return .utf8(n)
        case 4: return .binary(n)
        case 5:
            let count = try int(max: remaining)
            var fields: [StructField] = []
            for _ in 0..<count {
                let name = try string()
                fields.append(StructField(name, try dtype(depth: depth + 1)))
            }
            return .struct(fields, n)
        default: throw EddyError(.invalidArgument, "unknown dtype tag \(tag)")
        }
    }

    /// A scalar value of `dtype`, checked to fit it.
    public mutating func scalarValue(of dtype: DType) throws -> Scalar {
        let v = try scalarValue(depth: 0)
        guard v.fits(dtype) else { throw EddyError(.invalidArgument, "stored value \(v) does not fit \(dtype)") }
        return Scalar(v, dtype)
    }

    /// A scalar written by ``MetadataWriter/scalar(_:)``.
    public mutating func scalar() throws -> Scalar { try scalarValue(of: try dtype()) }

    mutating func scalarValue(depth: Int) throws -> ScalarValue {
        guard depth < Self.maxDepth else {
            throw EddyError(.invalidArgument, "scalar nests deeper than \(Self.maxDepth)")
        }
        switch try u8() {
        case 0: return .null
        case 1: return .bool(try bool())
        case 2: return .int(try i64())
        case 3: return .uint(try u64())
        case 4: return .float(try f64())
        case 5: return .utf8(try string())
        case 6: return .binary(try blob())
        case 7:
            let n = try int(max: remaining)
            var fields: [ScalarValue] = []
            for _ in 0..<n { fields.append(try scalarValue(depth: depth + 1)) }
            return .struct(fields)
        case let tag: throw EddyError(.invalidArgument, "unknown scalar tag \(tag)")
        }
    }
}

extension PType {
    /// The primitive type's code in files (stable: never renumbered).
    var storageCode: UInt8 {
        switch self {
        case .int8: 1
        case .int16: 2
        case .int32: 3
        case .int64: 4
        case .uint8: 5
        case .uint16: 6
        case .uint32: 7
        case .uint64: 8
        case .float32: 9
        case .float64: 10
        }
    }

    init?(storageCode: UInt8) {
        let all: [PType] = [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64, .float32, .float64]
        guard let p = all.first(where: { $0.storageCode == storageCode }) else { return nil }
        self = p
    }
}
