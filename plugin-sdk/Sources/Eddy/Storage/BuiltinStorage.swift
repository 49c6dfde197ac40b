/// The storages of the engine's own canonical and compressed encodings (lazy ones — slice, filter,
/// take, functions — describe work, not data, and are not stored).
extension EncodingStorage {
    /// Every built-in storage, by encoding name.
    @_spi(Host) public static let builtin: [String: EncodingStorage] = {
        let all: [EncodingStorage] = [
            primitive, bool, varbin, null, structs, constant, dict, runEnd, frameOfReference, bitPacked, chunked,
            sparse, intString,
        ]
        return Dictionary(uniqueKeysWithValues: all.map { ($0.encoding.name, $0) })
    }()

    private static func builtin(
        _ id: EncodingID, write: @escaping @Sendable (any ArrayNode) throws -> StoredParts,
        read: @escaping @Sendable (StoredNode) throws -> any ArrayNode
    ) -> EncodingStorage {
        EncodingStorage(
            encoding: id, metadataVersion: 1, readableVersions: 1...1, owner: .builtin, write: write, read: read)
    }

    private static func cast<T: ArrayNode>(_ node: any ArrayNode, _ type: T.Type) throws -> T {
        guard let n = node as? T else {
            throw EddyError(.invalidArgument, "\(node.encoding) node is not a \(T.self)")
        }
        return n
    }

    static let primitive = builtin(
        PrimitiveArray.id,
        write: { node in
            let a = try cast(node, PrimitiveArray.self)
            var m = MetadataWriter()
            var buffers = [try a.buffer.slice(byteOffset: 0, byteCount: a.count * a.ptype.byteWidth)]
            writeValidity(a.validity, &m, &buffers)
            return StoredParts(metadata: m.bytes, buffers: buffers)
        },
        read: { s in
            guard case .primitive(let p, let n) = s.dtype else { throw notStorable(s, "primitive") }
            var m = s.metadataReader
            let validity = try readValidity(&m, s, bufferIndex: 1, count: s.count)
            try m.finish()
            try s.expect(buffers: validity.isBitmap ? 2 : 1, children: 0)
            return try PrimitiveArray(ptype: p, buffer: s.buffer(0), count: s.count, validity: validity, nullability: n)
        })

    static let bool = builtin(
        BoolArray.id,
        write: { node in
            let a = try cast(node, BoolArray.self)
            var m = MetadataWriter()
            let (bits, offset) = try bitmapParts(a.bits)
            m.int(offset)
            var buffers = [bits]
            writeValidity(a.validity, &m, &buffers)
            return StoredParts(metadata: m.bytes, buffers: buffers)
        },
        read: { s in
            guard case .bool(let n) = s.dtype else { throw notStorable(s, "bool") }
            var m = s.metadataReader
            let offset = try m.int(max: 7)
            let validity = try readValidity(&m, s, bufferIndex: 1, count: s.count)
            try m.finish()
            try s.expect(buffers: validity.isBitmap ? 2 : 1, children: 0)
            let bits = try Bitmap(buffer: s.buffer(0), offset: offset, count: s.count)
            try checkNullability(validity, n)
            return try BoolArray(bits: bits, validity: validity, nullability: n)
        })

    static let varbin = builtin(
        VarBinArray.id,
        write: { node in
            let a = try cast(node, VarBinArray.self)
            var m = MetadataWriter()
            var buffers = [try a.offsets.slice(byteOffset: 0, byteCount: (a.count + 1) * 4), a.bytes]
            writeValidity(a.validity, &m, &buffers)
            return StoredParts(metadata: m.bytes, buffers: buffers)
        },
        read: { s in
            guard s.dtype.isVarBin else { throw notStorable(s, "utf8 or binary") }
            var m = s.metadataReader
            let validity = try readValidity(&m, s, bufferIndex: 2, count: s.count)
            try m.finish()
            try s.expect(buffers: validity.isBitmap ? 3 : 2, children: 0)
            return try VarBinArray(
                dtype: s.dtype, offsets: s.buffer(0), bytes: s.buffer(1), count: s.count, validity: validity)
        })

    static let null = builtin(
        NullArray.id,
        write: { _ in StoredParts() },
        read: { s in
            try s.expect(buffers: 0, children: 0)
            try s.metadataReader.finish()
            return NullArray(count: s.count)
        })

    static let structs = builtin(
        StructArray.id,
        write: { node in
            let a = try cast(node, StructArray.self)
            var m = MetadataWriter()
            var buffers: [Buffer] = []
            writeValidity(a.validity, &m, &buffers)
            return StoredParts(metadata: m.bytes, buffers: buffers, children: a.fields)
        },
        read: { s in
            guard case .struct(let fields, let n) = s.dtype else { throw notStorable(s, "struct") }
            var m = s.metadataReader
            let validity = try readValidity(&m, s, bufferIndex: 0, count: s.count)
            try m.finish()
            try s.expect(buffers: validity.isBitmap ? 1 : 0, children: fields.count)
            try checkNullability(validity, n)
            return try StructArray(
                names: fields.map(\.name), fields: s.children, count: s.count, validity: validity, nullability: n)
        })

    static let constant = builtin(
        ConstantArray.id,
        write: { node in
            let a = try cast(node, ConstantArray.self)
            var m = MetadataWriter()
            m.scalarValue(a.scalar.value)
            return StoredParts(metadata: m.bytes)
        },
        read: { s in
            try s.expect(buffers: 0, children: 0)
            var m = s.metadataReader
            let scalar = try m.scalarValue(of: s.dtype)
            try m.finish()
            // A null value makes the scalar's dtype nullable: keep the stored one.
            return ConstantArray(Scalar(scalar.value, s.dtype), count: s.count)
        })

    static let dict = builtin(
        DictArray.id,
        write: { node in
            let a = try cast(node, DictArray.self)
            return StoredParts(children: [a.codes, a.values])
        },
        read: { s in
            try s.expect(buffers: 0, children: 2)
            try s.metadataReader.finish()
            return try DictArray(codes: s.child(0), values: s.child(1))
        })

    static let runEnd = builtin(
        RunEndArray.id,
        write: { node in
            let a = try cast(node, RunEndArray.self)
            var m = MetadataWriter()
            m.int(a.offset)
            return StoredParts(metadata: m.bytes, children: [a.ends, a.values])
        },
        read: { s in
            try s.expect(buffers: 0, children: 2)
            var m = s.metadataReader
            let offset = try m.int(max: Int(Int32.max))
            try m.finish()
            return try RunEndArray(ends: s.child(0), values: s.child(1), offset: offset, count: s.count)
        })

    static let frameOfReference = builtin(
        FoRArray.id,
        write: { node in
            let a = try cast(node, FoRArray.self)
            var m = MetadataWriter()
            m.scalar(a.reference)
            return StoredParts(metadata: m.bytes, children: [a.child])
        },
        read: { s in
            try s.expect(buffers: 0, children: 1)
            var m = s.metadataReader
            let reference = try m.scalar()
            try m.finish()
            return try FoRArray(reference: reference, child: s.child(0))
        })

    static let bitPacked = builtin(
        BitPackedArray.id,
        write: { node in
            let a = try cast(node, BitPackedArray.self)
            var m = MetadataWriter()
            m.int(a.bitWidth)
            m.int(a.offset)
            m.int(a.patchIndices.count)
            var buffers = [a.packed]
            writeValidity(a.validity, &m, &buffers)
            if !a.patchIndices.isEmpty { buffers.append(Buffer(copying: a.patchIndices.map { Int64($0) })) }
            return StoredParts(metadata: m.bytes, buffers: buffers, children: a.patchValues.map { [$0] } ?? [])
        },
        read: { s in
            guard case .primitive(let p, let n) = s.dtype, p.isInteger else { throw notStorable(s, "integer") }
            var m = s.metadataReader
            let width = try m.int(max: 64)
            let offset = try m.int(max: Int(Int32.max))
            // Patch indices are absolute: a slice's window may leave some of them outside it.
            let patches = try m.int(max: Int(Int32.max))
            let validity = try readValidity(&m, s, bufferIndex: 1, count: s.count)
            try m.finish()
            let hasValidity = validity.isBitmap ? 1 : 0
            try s.expect(buffers: 1 + hasValidity + (patches > 0 ? 1 : 0), children: patches > 0 ? 1 : 0)
            try checkNullability(validity, n)
            var indices: [Int] = []
            var values: PrimitiveArray?
            if patches > 0 {
                let raw = try s.buffer(1 + hasValidity)
                guard raw.byteCount / 8 >= patches else {
                    throw EddyError(.invalidArgument, "patch index buffer holds \(raw.byteCount / 8) of \(patches)")
                }
                indices.reserveCapacity(patches)
                var previous = -1
                for v in raw.typed(Int64.self).prefix(patches) {
                    guard v > previous, v <= Int32.max else {
                        throw EddyError(.invalidArgument, "patch index \(v) is out of order or past 2^31")
                    }
                    previous = Int(v)
                    indices.append(Int(v))
                }
                guard let v = try s.child(0) as? PrimitiveArray, v.ptype == p, !v.dtype.isNullable else {
                    throw EddyError(.invalidArgument, "patch values must be a non-nullable \(p) primitive array")
                }
                values = v
            }
            return try BitPackedArray(
                ptype: p, bitWidth: width, packed: s.buffer(0), offset: offset, count: s.count, validity: validity,
                nullability: n, patchIndices: indices, patchValues: values)
        })

    static let chunked = builtin(
        ChunkedArray.id,
        write: { node in StoredParts(children: try cast(node, ChunkedArray.self).chunks) },
        read: { s in
            try s.expect(buffers: 0, children: s.children.count)
            try s.metadataReader.finish()
            return try ChunkedArray(chunks: s.children, dtype: s.dtype)
        })

    static let sparse = builtin(
        SparseArray.id,
        write: { node in
            let a = try cast(node, SparseArray.self)
            var m = MetadataWriter()
            m.scalar(a.fill)
            return StoredParts(metadata: m.bytes, children: [a.indices, a.values])
        },
        read: { s in
            try s.expect(buffers: 0, children: 2)
            var m = s.metadataReader
            let fill = try m.scalar()
            try m.finish()
            // Encoded indices are checked when executed to plain form (the executor rebuilds the node).
            let indices = try s.child(0)
            return try SparseArray(fill: fill, indices: indices, values: s.child(1), count: s.count)
        })

    static let intString = builtin(
        IntStringArray.id,
        write: { node in
            let a = try cast(node, IntStringArray.self)
            var m = MetadataWriter()
            m.blob(a.prefix)
            m.blob(a.suffix)
            m.int(a.width)
            return StoredParts(metadata: m.bytes, children: [a.numbers])
        },
        read: { s in
            try s.expect(buffers: 0, children: 1)
            var m = s.metadataReader
            let prefix = try m.blob()
            let suffix = try m.blob()
            let width = try m.int(max: 20)
            try m.finish()
            return try IntStringArray(
                prefix: prefix, suffix: suffix, width: width, numbers: s.child(0), nullability: s.dtype.nullability)
        })

    // MARK: - Helpers

    static func notStorable(_ s: StoredNode, _ what: String) -> EddyError {
        EddyError(.typeMismatch, "stored dtype \(s.dtype) is not \(what)")
    }

    /// The bytes holding a bitmap's bits and the bit offset into the first of them (0…7).
    static func bitmapParts(_ b: Bitmap) throws -> (Buffer, Int) {
        let first = b.offset / 8
        let end = (b.offset + b.count + 7) / 8
        return (try b.buffer.slice(byteOffset: first, byteCount: end - first), b.offset % 8)
    }

    static func writeValidity(_ v: Validity, _ m: inout MetadataWriter, _ buffers: inout [Buffer]) {
        switch v {
        case .allValid: m.u8(0)
        case .allInvalid: m.u8(1)
        case .bitmap(let b):
            m.u8(2)
            // bitmapParts cannot fail on a bitmap's own buffer: its bits lie within it by construction.
            if let (bytes, offset) = try? bitmapParts(b) {
                m.int(offset)
                buffers.append(bytes)
            } else {
                m.int(0)
                buffers.append(Buffer(copying: [UInt8](repeating: 0xff, count: (b.count + 7) / 8)))
            }
        }
    }

    static func readValidity(_ m: inout MetadataReader, _ s: StoredNode, bufferIndex: Int, count: Int) throws
        -> Validity
    {
        switch try m.u8() {
        case 0: return .allValid
        case 1:
            guard s.dtype.isNullable else { throw EddyError(.invalidArgument, "nulls in a non-nullable \(s.dtype)") }
            return .allInvalid
        case 2:
            let offset = try m.int(max: 7)
            guard s.dtype.isNullable else { throw EddyError(.invalidArgument, "nulls in a non-nullable \(s.dtype)") }
            return .bitmap(try Bitmap(buffer: s.buffer(bufferIndex), offset: offset, count: count))
        case let k: throw EddyError(.invalidArgument, "unknown validity kind \(k)")
        }
    }

    static func checkNullability(_ v: Validity, _ n: Nullability) throws {
        if n == .nonNullable, !v.isAllValid {
            throw EddyError(.invalidArgument, "nulls in a non-nullable array")
        }
    }
}

extension Validity {
    var isBitmap: Bool { if case .bitmap = self { true } else { false } }
}
