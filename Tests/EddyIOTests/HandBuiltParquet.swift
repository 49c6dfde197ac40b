import EddyHostTestSupport
import Foundation

@testable import EddyIO

/// Writes Thrift's compact protocol, for hand-built (and deliberately broken) Parquet footers.
struct ThriftWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func zigzag(_ v: Int64) { varint(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }

    /// A field header in the long form (the id written out), so that no delta state is needed.
    mutating func field(_ id: Int16, _ type: UInt8) {
        bytes.append(type)
        zigzag(Int64(id))
    }

    mutating func i32(_ id: Int16, _ v: Int64) {
        field(id, 5)
        zigzag(v)
    }

    mutating func i64(_ id: Int16, _ v: Int64) {
        field(id, 6)
        zigzag(v)
    }

    mutating func string(_ id: Int16, _ s: String) {
        field(id, 8)
        varint(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    mutating func structField(_ id: Int16, _ body: (inout ThriftWriter) -> Void) {
        field(id, 12)
        body(&self)
        stop()
    }

    mutating func list(_ id: Int16, elementType: UInt8, count: Int, _ body: (inout ThriftWriter) -> Void) {
        field(id, 9)
        if count < 15 {
            bytes.append(UInt8(count) << 4 | elementType)
        } else {
            bytes.append(0xF0 | elementType)
            varint(UInt64(count))
        }
        body(&self)
    }

    mutating func stop() { bytes.append(0) }
}

/// A one-column Parquet file (INT64 `x`, REQUIRED), built by hand so that each field can be broken.
struct HandBuiltParquet {
    var values: [Int64] = Array(0..<100)
    var codec: Int64 = 0
    /// Overrides of what the footer and page header claim.
    var rowGroupRows: Int64?
    var pageValues: Int64?
    var dataPageOffset: Int64?
    var uncompressedSize: Int64?
    /// Replaces the page body (after compression).
    var body: [UInt8]?
    /// A second schema element under a group (a nested column).
    var nested = false
    /// Extra bytes spliced into the footer before its end.
    var footerTail: [UInt8] = []
    /// Writes the page as a data page v2 whose header claims this many nulls.
    var v2Nulls: Int64?

    func bytes() -> [UInt8] {
        var plain: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.littleEndian) { plain.append(contentsOf: $0) } }
        let pageBody = body ?? (codec == 1 ? Self.snappyLiteral(plain) : plain)
        var header = ThriftWriter()
        header.i32(1, v2Nulls == nil ? 0 : 3)
        header.i32(2, uncompressedSize ?? Int64(plain.count))
        header.i32(3, Int64(pageBody.count))
        if let v2Nulls {
            header.structField(8) { h in
                h.i32(1, pageValues ?? Int64(values.count))
                h.i32(2, v2Nulls)
                h.i32(3, Int64(values.count))
                h.i32(4, 0)
                h.i32(5, 0)
                h.i32(6, 0)
            }
        } else {
            header.structField(5) { h in
                h.i32(1, pageValues ?? Int64(values.count))
                h.i32(2, 0)
                h.i32(3, 3)
                h.i32(4, 3)
            }
        }
        header.stop()
        var file = Array("PAR1".utf8)
        let pageOffset = Int64(file.count)
        file += header.bytes + pageBody
        let chunkSize = Int64(header.bytes.count + pageBody.count)
        let rows = rowGroupRows ?? Int64(values.count)
        var m = ThriftWriter()
        m.i32(1, 1)
        m.list(2, elementType: 12, count: nested ? 3 : 2) { w in
            w.string(4, "schema")
            w.i32(5, nested ? 1 : 1)
            w.stop()
            if nested {
                w.i32(3, 1)
                w.string(4, "group")
                w.i32(5, 1)
                w.stop()
            }
            w.i32(1, 2)
            w.i32(3, 0)
            w.string(4, "x")
            w.stop()
        }
        m.i64(3, rows)
        m.list(4, elementType: 12, count: 1) { w in
            w.list(1, elementType: 12, count: 1) { w in
                w.i64(2, pageOffset)
                w.structField(3) { c in
                    c.i32(1, 2)
                    c.list(2, elementType: 5, count: 1) { $0.zigzag(0) }
                    c.list(3, elementType: 8, count: 1) { l in
                        l.varint(1)
                        l.bytes.append(contentsOf: "x".utf8)
                    }
                    c.i32(4, codec)
                    c.i64(5, Int64(values.count))
                    c.i64(6, chunkSize)
                    c.i64(7, chunkSize)
                    c.i64(9, dataPageOffset ?? pageOffset)
                }
                w.stop()
            }
            w.i64(2, chunkSize)
            w.i64(3, rows)
            w.stop()
        }
        m.bytes += footerTail
        m.stop()
        file += m.bytes
        let n = UInt32(m.bytes.count)
        file += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
        file += Array("PAR1".utf8)
        return file
    }

    /// `data` as a Snappy block of literals (a valid stream any decoder reads).
    static func snappyLiteral(_ data: [UInt8]) -> [UInt8] {
        var out = ThriftWriter()
        out.varint(UInt64(data.count))
        var i = 0
        while i < data.count {
            let n = min(60, data.count - i)
            out.bytes.append(UInt8(n - 1) << 2)
            out.bytes += data[i..<(i + n)]
            i += n
        }
        return out.bytes
    }
}
