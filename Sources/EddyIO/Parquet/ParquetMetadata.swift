/// Parquet's footer (`FileMetaData`), reduced to the fields this reader uses; see parquet.thrift.
struct ParquetFileMetaData {
    var version: Int32 = 0
    var schema: [ParquetSchemaElement] = []
    var numRows: Int64 = -1
    var rowGroups: [ParquetRowGroup] = []
    var createdBy: String?

    /// Bounds on a footer's lists, far above what real writers produce.
    static let maxSchemaElements = 100_000
    static let maxRowGroups = 1_000_000
    static let maxEncodings = 64
    static let maxPathParts = 256

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> ParquetFileMetaData {
        var r = ThriftCompactReader(bytes)
        var m = ParquetFileMetaData()
        try r.readStruct { r, id, type in
            switch id {
            case 1:
                try ThriftCompactReader.expect(type, .i32, "FileMetaData.version")
                m.version = try r.i32()
            case 2:
                m.schema = try r.structList(limit: maxSchemaElements, what: "schema elements") {
                    try ParquetSchemaElement.decode(&$0)
                }
            case 3:
                try ThriftCompactReader.expect(type, .i64, "FileMetaData.num_rows")
                m.numRows = try r.i64()
            case 4:
                m.rowGroups = try r.structList(limit: maxRowGroups, what: "row groups") {
                    try ParquetRowGroup.decode(&$0)
                }
            case 6:
                try ThriftCompactReader.expect(type, .binary, "FileMetaData.created_by")
                m.createdBy = try r.string()
            default: return false
            }
            return true
        }
        return m
    }
}

/// One node of the flattened schema tree.
struct ParquetSchemaElement {
    var type: Int32?
    var typeLength: Int32?
    var repetition: Int32?
    var name = ""
    var numChildren: Int32?
    var convertedType: Int32?
    var scale: Int32?
    var precision: Int32?
    var logicalType: ParquetLogicalType?

    static func decode(_ r: inout ThriftCompactReader) throws -> ParquetSchemaElement {
        var e = ParquetSchemaElement()
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (1, 5): e.type = try r.i32()
            case (2, 5): e.typeLength = try r.i32()
            case (3, 5): e.repetition = try r.i32()
            case (4, 8): e.name = try r.string()
            case (5, 5): e.numChildren = try r.i32()
            case (6, 5): e.convertedType = try r.i32()
            case (7, 5): e.scale = try r.i32()
            case (8, 5): e.precision = try r.i32()
            case (10, 12): e.logicalType = try ParquetLogicalType.decode(&r)
            default: return false
            }
            return true
        }
        return e
    }
}

/// The `LogicalType` union, with the parameters this reader needs.
enum ParquetLogicalType: Equatable {
    case string, map, list, enumeration, decimal, date, json, bson, uuid, float16, unknown
    case time(unit: ParquetTimeUnit)
    case timestamp(unit: ParquetTimeUnit, utc: Bool)
    case integer(bits: Int, signed: Bool)
    case other(Int16)

    static func decode(_ r: inout ThriftCompactReader) throws -> ParquetLogicalType {
        var out: ParquetLogicalType = .other(0)
        try r.readStruct { r, id, type in
            guard type == ThriftCompactReader.WireType.struct.rawValue else { return false }
            switch id {
            case 1: out = .string
            case 2: out = .map
            case 3: out = .list
            case 4: out = .enumeration
            case 5: out = .decimal
            case 6: out = .date
            case 7, 8:
                var unit = ParquetTimeUnit.millis
                var utc = false
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, 1), (1, 2): utc = try r.bool(type)
                    case (2, 12): unit = try ParquetTimeUnit.decode(&r)
                    default: return false
                    }
                    return true
                }
                out = id == 7 ? .time(unit: unit) : .timestamp(unit: unit, utc: utc)
                return true
            case 10:
                var bits = 0
                var signed = true
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, 3): bits = Int(Int8(bitPattern: try r.byte()))
                    case (2, 1), (2, 2): signed = try r.bool(type)
                    default: return false
                    }
                    return true
                }
                out = .integer(bits: bits, signed: signed)
                return true
            case 11: out = .unknown
            case 12: out = .json
            case 13: out = .bson
            case 14: out = .uuid
            case 15: out = .float16
            default: out = .other(id)
            }
            return false  // the empty struct of the variant: skipped
        }
        return out
    }
}

enum ParquetTimeUnit: Equatable {
    case millis, micros, nanos

    var name: String {
        switch self {
        case .millis: "ms"
        case .micros: "us"
        case .nanos: "ns"
        }
    }

    static func decode(_ r: inout ThriftCompactReader) throws -> ParquetTimeUnit {
        var unit = ParquetTimeUnit.millis
        try r.readStruct { _, id, _ in
            switch id {
            case 1: unit = .millis
            case 2: unit = .micros
            case 3: unit = .nanos
            default: throw ParquetProblem("unknown time unit \(id)")
            }
            return false
        }
        return unit
    }
}

struct ParquetRowGroup {
    var columns: [ParquetColumnChunk] = []
    var numRows: Int64 = -1

    static func decode(_ r: inout ThriftCompactReader) throws -> ParquetRowGroup {
        var g = ParquetRowGroup()
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (1, 9):
                g.columns = try r.structList(limit: ParquetFileMetaData.maxSchemaElements, what: "column chunks") {
                    try ParquetColumnChunk.decode(&$0)
                }
            case (3, 6): g.numRows = try r.i64()
            default: return false
            }
            return true
        }
        return g
    }
}

struct ParquetColumnChunk {
    var filePath: String?
    var meta: ParquetColumnMetaData?
    /// Where the chunk's page index lies (`OffsetIndex`, `ColumnIndex`), when the writer wrote one.
    var offsetIndexOffset: Int64?
    var offsetIndexLength: Int32?
    var columnIndexOffset: Int64?
    var columnIndexLength: Int32?

    static func decode(_ r: inout ThriftCompactReader) throws -> ParquetColumnChunk {
        var c = ParquetColumnChunk()
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (1, 8): c.filePath = try r.string()
            case (3, 12): c.meta = try ParquetColumnMetaData.decode(&r)
            case (4, 6): c.offsetIndexOffset = try r.i64()
            case (5, 5): c.offsetIndexLength = try r.i32()
            case (6, 6): c.columnIndexOffset = try r.i64()
            case (7, 5): c.columnIndexLength = try r.i32()
            default: return false
            }
            return true
        }
        return c
    }
}

struct ParquetColumnMetaData {
    var type: Int32 = -1
    var encodings: [Int32] = []
    var path: [String] = []
    var codec: Int32 = -1
    var numValues: Int64 = -1
    var totalUncompressedSize: Int64 = -1
    var totalCompressedSize: Int64 = -1
    var dataPageOffset: Int64 = -1
    var dictionaryPageOffset: Int64?
    var statistics: ParquetStatistics?

    static func decode(_ r: inout ThriftCompactReader) throws -> ParquetColumnMetaData {
        var m = ParquetColumnMetaData()
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (1, 5): m.type = try r.i32()
            case (2, 9): m.encodings = try r.i32List(limit: ParquetFileMetaData.maxEncodings, what: "encodings")
            case (3, 9): m.path = try r.stringList(limit: ParquetFileMetaData.maxPathParts, what: "path parts")
            case (4, 5): m.codec = try r.i32()
            case (5, 6): m.numValues = try r.i64()
            case (6, 6): m.totalUncompressedSize = try r.i64()
            case (7, 6): m.totalCompressedSize = try r.i64()
            case (9, 6): m.dataPageOffset = try r.i64()
            case (11, 6): m.dictionaryPageOffset = try r.i64()
            case (12, 12): m.statistics = try ParquetStatistics.decode(&r)
            default: return false
            }
            return true
        }
        return m
    }
}

/// A column chunk's (or page's) statistics. Only `min_value` / `max_value` are used: the older `min` /
/// `max` were written with a signed byte order that is wrong for strings and unsigned integers.
struct ParquetStatistics {
    var nullCount: Int64?
    var minValue: [UInt8]?
    var maxValue: [UInt8]?

    /// Bounds longer than this are not kept (writers truncate theirs well below it).
    static let maxBoundBytes = 4096

    static func decode(_ r: inout ThriftCompactReader) throws -> ParquetStatistics {
        var s = ParquetStatistics()
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (3, 6): s.nullCount = try r.i64()
            case (5, 8):
                let b = try r.binary()
                s.maxValue = b.count <= maxBoundBytes ? Array(b) : nil
            case (6, 8):
                let b = try r.binary()
                s.minValue = b.count <= maxBoundBytes ? Array(b) : nil
            default: return false
            }
            return true
        }
        return s
    }
}

/// A page header: what kind of page follows, its sizes and its encodings.
struct ParquetPageHeader {
    enum Kind: Int32 { case data = 0, index = 1, dictionary = 2, dataV2 = 3 }

    var type: Int32 = -1
    var uncompressedSize: Int32 = -1
    var compressedSize: Int32 = -1
    /// Values in the page, nulls included (data pages), or entries (dictionary pages).
    var numValues: Int32 = -1
    var encoding: Int32 = -1
    var definitionLevelEncoding: Int32 = 3
    /// Data page v2 only.
    var numNulls: Int32 = 0
    var numRows: Int32 = -1
    var definitionLevelsBytes: Int32 = 0
    var repetitionLevelsBytes: Int32 = 0
    var isCompressed = true
    /// A data page's statistics (v1 or v2), when the writer put them in its header.
    var statistics: ParquetStatistics?

    static func decode(_ r: inout ThriftCompactReader) throws -> ParquetPageHeader {
        var h = ParquetPageHeader()
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (1, 5): h.type = try r.i32()
            case (2, 5): h.uncompressedSize = try r.i32()
            case (3, 5): h.compressedSize = try r.i32()
            case (5, 12):
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, 5): h.numValues = try r.i32()
                    case (2, 5): h.encoding = try r.i32()
                    case (3, 5): h.definitionLevelEncoding = try r.i32()
                    case (5, 12): h.statistics = try ParquetStatistics.decode(&r)
                    default: return false
                    }
                    return true
                }
            case (7, 12):
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, 5): h.numValues = try r.i32()
                    case (2, 5): h.encoding = try r.i32()
                    default: return false
                    }
                    return true
                }
            case (8, 12):
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, 5): h.numValues = try r.i32()
                    case (2, 5): h.numNulls = try r.i32()
                    case (3, 5): h.numRows = try r.i32()
                    case (4, 5): h.encoding = try r.i32()
                    case (5, 5): h.definitionLevelsBytes = try r.i32()
                    case (6, 5): h.repetitionLevelsBytes = try r.i32()
                    case (7, 1), (7, 2): h.isCompressed = try r.bool(type)
                    case (8, 12): h.statistics = try ParquetStatistics.decode(&r)
                    default: return false
                    }
                    return true
                }
            default: return false
            }
            return true
        }
        return h
    }
}

/// Names of Parquet's enums, for messages that refuse what this reader does not read.
enum ParquetNames {
    static func physicalType(_ t: Int32) -> String {
        switch t {
        case 0: "BOOLEAN"
        case 1: "INT32"
        case 2: "INT64"
        case 3: "INT96"
        case 4: "FLOAT"
        case 5: "DOUBLE"
        case 6: "BYTE_ARRAY"
        case 7: "FIXED_LEN_BYTE_ARRAY"
        default: "physical type \(t)"
        }
    }

    static func encoding(_ e: Int32) -> String {
        switch e {
        case 0: "PLAIN"
        case 2: "PLAIN_DICTIONARY"
        case 3: "RLE"
        case 4: "BIT_PACKED"
        case 5: "DELTA_BINARY_PACKED"
        case 6: "DELTA_LENGTH_BYTE_ARRAY"
        case 7: "DELTA_BYTE_ARRAY"
        case 8: "RLE_DICTIONARY"
        case 9: "BYTE_STREAM_SPLIT"
        default: "encoding \(e)"
        }
    }

    static func codec(_ c: Int32) -> String {
        switch c {
        case 0: "UNCOMPRESSED"
        case 1: "SNAPPY"
        case 2: "GZIP"
        case 3: "LZO"
        case 4: "BROTLI"
        case 5: "LZ4 (Hadoop framing)"
        case 6: "ZSTD"
        case 7: "LZ4_RAW"
        default: "\(c) (unknown)"
        }
    }

    static func convertedType(_ c: Int32) -> String {
        let names = [
            "UTF8", "MAP", "MAP_KEY_VALUE", "LIST", "ENUM", "DECIMAL", "DATE", "TIME_MILLIS", "TIME_MICROS",
            "TIMESTAMP_MILLIS", "TIMESTAMP_MICROS", "UINT_8", "UINT_16", "UINT_32", "UINT_64", "INT_8", "INT_16",
            "INT_32", "INT_64", "JSON", "BSON", "INTERVAL",
        ]
        return c >= 0 && Int(c) < names.count ? names[Int(c)] : "converted type \(c)"
    }
}
