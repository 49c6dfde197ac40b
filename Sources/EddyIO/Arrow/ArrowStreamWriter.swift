@_spi(Host) public import Eddy

/// Writes results as an Arrow IPC stream (`application/vnd.apache.arrow.stream`): a schema message,
/// one record batch message per result batch, and the end-of-stream marker. Types: bool, the eight
/// integer widths, f32, f64, utf8 and binary; every field is nullable.
public final class ArrowStreamWriter {
    private let names: [String]
    private var types: [DType]
    private let emit: ([UInt8]) -> Void
    private var started = false

    /// - Parameters:
    ///   - names: the output column names.
    ///   - types: their types, used for the schema when no batch comes (an empty result); otherwise
    ///     the first batch's types are written.
    ///   - emit: receives the stream's bytes piece by piece.
    /// - Throws: ``EddyError`` for a type Arrow output does not carry (a struct).
    public init(names: [String], types: [DType], emit: @escaping ([UInt8]) -> Void) throws {
        self.names = names
        self.types = types
        self.emit = emit
        var probe = FlatBufferBuilder()
        for t in types { _ = try Self.type(t, &probe) }
    }

    /// Writes one batch of output columns (any encoding; they are read as they are, or through their
    /// scalars).
    /// - Throws: ``EddyError`` for a type Arrow output does not carry (a struct).
    public func write(_ columns: [any ArrayNode]) throws {
        if !started {
            types = columns.map(\.dtype)
            try start()
        }
        let rows = columns.first?.count ?? 0
        var body: [UInt8] = []
        var nodes: [(Int64, Int64)] = []
        var buffers: [(Int64, Int64)] = []
        func add(_ b: [UInt8]) {
            buffers.append((Int64(body.count), Int64(b.count)))
            body += b
            body += [UInt8](repeating: 0, count: (8 - b.count % 8) % 8)
        }
        for column in columns {
            if case .null = column.dtype {
                nodes.append((Int64(rows), Int64(rows)))  // the null type has no buffers
                continue
            }
            let (nulls, validity, data) = try Self.buffers(column)
            nodes.append((Int64(rows), Int64(nulls)))
            add(validity)
            for d in data { add(d) }
        }
        var fb = FlatBufferBuilder()
        let bufferVector = fb.pairVector(buffers)
        let nodeVector = fb.pairVector(nodes)
        fb.startTable()
        fb.add(0, Int64(rows))
        fb.addOffset(1, nodeVector)
        fb.addOffset(2, bufferVector)
        let batch = fb.endTable()
        message(&fb, headerType: 3, header: batch, bodyLength: body.count)
        emit(body)
    }

    /// Ends the stream (the schema first, for an empty result).
    public func finish() {
        // The types were checked when the writer was made.
        if !started { try? start() }
        emit([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
    }

    private func start() throws {
        started = true
        var fb = FlatBufferBuilder()
        var fields: [Int] = []
        for (name, dtype) in zip(names, types) {
            let (typeID, typeTable) = try Self.type(dtype, &fb)
            let children = fb.offsetVector([])
            let nameOffset = fb.string(name)
            fb.startTable()
            fb.addOffset(0, nameOffset)
            fb.add(1, UInt8(1))
            fb.add(2, typeID)
            fb.addOffset(3, typeTable)
            fb.addOffset(5, children)
            fields.append(fb.endTable())
        }
        let fieldVector = fb.offsetVector(fields)
        fb.startTable()
        fb.add(0, Int16(0))  // little-endian
        fb.addOffset(1, fieldVector)
        let schema = fb.endTable()
        message(&fb, headerType: 1, header: schema, bodyLength: 0)
    }

    /// Wraps a header in a Message table and emits it framed: continuation, length, metadata (padded).
    private func message(_ fb: inout FlatBufferBuilder, headerType: UInt8, header: Int, bodyLength: Int) {
        fb.startTable()
        fb.add(3, Int64(bodyLength))
        fb.addOffset(2, header)
        fb.add(0, Int16(4))  // MetadataVersion V5
        fb.add(1, headerType)
        let root = fb.endTable()
        var meta = fb.finish(root)
        meta += [UInt8](repeating: 0, count: (8 - meta.count % 8) % 8)
        var frame: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]
        withUnsafeBytes(of: Int32(meta.count).littleEndian) { frame += $0 }
        emit(frame + meta)
    }

    /// The Arrow `Type` union member for `dtype`, and its table.
    private static func type(_ dtype: DType, _ fb: inout FlatBufferBuilder) throws -> (UInt8, Int) {
        fb.startTable()
        switch dtype {
        case .null: return (1, fb.endTable())
        case .bool: return (6, fb.endTable())
        case .utf8: return (5, fb.endTable())
        case .binary: return (4, fb.endTable())
        case .primitive(let p, _):
            if p.isFloat {
                fb.add(0, Int16(p == .float32 ? 1 : 2))
                return (3, fb.endTable())
            }
            fb.add(0, Int32(p.byteWidth * 8))
            fb.add(1, UInt8(p.isSignedInteger ? 1 : 0))
            return (2, fb.endTable())
        default:
            throw EddyError(.unsupported, "Arrow output does not carry \(dtype) columns")
        }
    }

    /// A column's null count, validity bitmap (empty when no nulls) and data buffers.
    static func buffers(_ c: any ArrayNode) throws -> (Int, [UInt8], [[UInt8]]) {
        let n = c.count
        func bitmap(_ validity: Validity) -> (Int, [UInt8]) {
            let nulls = validity.nullCount(n)
            guard nulls > 0 else { return (0, []) }
            return (nulls, packed(n) { validity.isValid($0) })
        }
        if case .null = c.dtype { return (n, [], []) }
        if let p = c as? PrimitiveArray {
            let (nulls, v) = bitmap(p.validity)
            let bytes = Array(UnsafeRawBufferPointer(start: p.buffer.baseAddress, count: n * p.ptype.byteWidth))
            return (nulls, v, [bytes])
        }
        if let b = c as? BoolArray {
            let (nulls, v) = bitmap(b.validity)
            return (nulls, v, [packed(n) { b.bits[$0] }])
        }
        if let s = c as? VarBinArray {
            let (nulls, v) = bitmap(s.validity)
            let o = s.offsets.typed(Int32.self)
            let first = n > 0 ? Int(o[0]) : 0
            let last = n > 0 ? Int(o[n]) : 0
            var offsets: [UInt8] = []
            offsets.reserveCapacity(4 * (n + 1))
            for i in 0...n {
                withUnsafeBytes(of: (n > 0 ? Int32(Int(o[i]) - first) : 0).littleEndian) { offsets += $0 }
            }
            let data = Array(UnsafeRawBufferPointer(start: s.bytes.baseAddress + first, count: last - first))
            return (nulls, v, [offsets, data])
        }
        // Anything else (a constant, a dictionary the executor left): through its scalars.
        let scalars = try (0..<n).map { try c.scalar(at: $0) }
        let nulls = scalars.filter(\.isNull).count
        let validity = nulls > 0 ? packed(n) { !scalars[$0].isNull } : []
        switch c.dtype {
        case .bool:
            return (nulls, validity, [packed(n) { scalars[$0].boolValue == true }])
        case .utf8, .binary:
            var offsets: [UInt8] = []
            var data: [UInt8] = []
            withUnsafeBytes(of: Int32(0).littleEndian) { offsets += $0 }
            for s in scalars {
                switch s.value {
                case .utf8(let t): data += Array(t.utf8)
                case .binary(let b): data += b
                default: break
                }
                withUnsafeBytes(of: Int32(data.count).littleEndian) { offsets += $0 }
            }
            return (nulls, validity, [offsets, data])
        case .primitive(let p, _):
            var data: [UInt8] = []
            data.reserveCapacity(n * p.byteWidth)
            for s in scalars {
                func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
                switch (p, s.value) {
                case (.float32, .float(let d)): put(Float(d).bitPattern)
                case (.float64, .float(let d)): put(d.bitPattern)
                case (.int8, .int(let v)): put(Int8(truncatingIfNeeded: v))
                case (.int16, .int(let v)): put(Int16(truncatingIfNeeded: v))
                case (.int32, .int(let v)): put(Int32(truncatingIfNeeded: v))
                case (.int64, .int(let v)): put(v)
                case (.uint8, .uint(let v)): put(UInt8(truncatingIfNeeded: v))
                case (.uint16, .uint(let v)): put(UInt16(truncatingIfNeeded: v))
                case (.uint32, .uint(let v)): put(UInt32(truncatingIfNeeded: v))
                case (.uint64, .uint(let v)): put(v)
                case (_, .null): data += [UInt8](repeating: 0, count: p.byteWidth)
                default: throw EddyError(.typeMismatch, "a \(s.dtype) value in a \(c.dtype) column")
                }
            }
            return (nulls, validity, [data])
        default:
            throw EddyError(.unsupported, "Arrow output does not carry \(c.dtype) columns")
        }
    }

    /// `count` bits, bit `i` = `bit(i)`, least significant first, in whole bytes.
    private static func packed(_ count: Int, _ bit: (Int) -> Bool) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (count + 7) / 8)
        for i in 0..<count where bit(i) { out[i >> 3] |= 1 << UInt8(i & 7) }
        return out
    }
}
