@_spi(Host) public import Eddy

/// One column of a flat Parquet schema, and the engine type its values become.
struct ParquetColumn: Sendable {
    var name: String
    /// Parquet's physical type (0 BOOLEAN … 6 BYTE_ARRAY).
    var physical: Int32
    var dtype: DType
    /// OPTIONAL: definition levels of width 1 say which rows are null.
    var optional: Bool
    /// What the column is, for messages and `--explain` (`INT32 (UINT_16)`, `INT64 (TIMESTAMP us)`).
    var parquetType: String
}

/// Maps a footer's schema elements to engine columns, refusing by name what is not read.
enum ParquetSchemaMapping {
    static func columns(_ elements: [ParquetSchemaElement]) throws -> [ParquetColumn] {
        guard let root = elements.first else { throw ParquetProblem("the schema is empty") }
        let children = Int(root.numChildren ?? 0)
        guard children == elements.count - 1 else {
            // A group below the root (a struct, list or map) makes the flat count differ.
            let nested = elements.dropFirst().first { ($0.numChildren ?? 0) > 0 }
            if let nested {
                throw ParquetProblem(
                    "column '\(escapedForDisplay(nested.name))' is nested (a group of \(nested.numChildren ?? 0) fields); "
                        + "only flat schemas are read")
            }
            throw ParquetProblem("the root declares \(children) columns, the schema lists \(elements.count - 1)")
        }
        return try elements.dropFirst().map(column)
    }

    static func column(_ e: ParquetSchemaElement) throws -> ParquetColumn {
        let name = e.name
        func refuse(_ what: String) -> ParquetProblem {
            ParquetProblem("column '\(escapedForDisplay(name))' is \(what), which this reader does not read")
        }
        if (e.numChildren ?? 0) > 0 { throw refuse("a nested group") }
        let repetition = e.repetition ?? 0
        guard repetition != 2 else { throw refuse("REPEATED (a list)") }
        guard repetition == 0 || repetition == 1 else { throw refuse("of repetition \(repetition)") }
        guard let physical = e.type else { throw refuse("without a physical type") }
        let n: Nullability = repetition == 1 ? .nullable : .nonNullable
        let physicalName = ParquetNames.physicalType(physical)
        let logical = e.logicalType
        let converted = e.convertedType
        if converted == 5 || logical == .decimal { throw refuse("\(physicalName) (DECIMAL)") }
        if let logical, case .other(let id) = logical { throw refuse("\(physicalName) (logical type \(id))") }
        func make(_ dtype: DType, _ detail: String?) -> ParquetColumn {
            ParquetColumn(
                name: name, physical: physical, dtype: dtype, optional: repetition == 1,
                parquetType: physicalName + (detail.map { " (\($0))" } ?? ""))
        }
        switch physical {
        case 0: return make(.bool(n), nil)
        case 1, 2:
            let (p, detail) = try integer(physical, logical, converted, refuse)
            return make(.primitive(p, n), detail)
        case 4, 5:
            if logical != nil && logical != .unknown {
                throw refuse("\(physicalName) (\(logical.map { "\($0)" } ?? ""))")
            }
            return make(.primitive(physical == 4 ? .float32 : .float64, n), nil)
        case 6:
            switch logical {
            case .string?, .enumeration?, .json?: return make(.utf8(n), "STRING")
            case nil, .unknown?:
                switch converted {
                case 0?, 4?, 19?: return make(.utf8(n), ParquetNames.convertedType(converted ?? 0))
                case nil: return make(.binary(n), nil)
                case let c?: throw refuse("\(physicalName) (\(ParquetNames.convertedType(c)))")
                }
            case .bson?: return make(.binary(n), "BSON")
            default: throw refuse("\(physicalName) (\(logical.map { "\($0)" } ?? ""))")
            }
        default:
            throw refuse(physicalName)
        }
    }

    /// The engine type of an INT32 (`physical` 1) or INT64 (2) column from its logical or converted
    /// type, and what to say of it.
    private static func integer(
        _ physical: Int32, _ logical: ParquetLogicalType?, _ converted: Int32?, _ refuse: (String) -> ParquetProblem
    ) throws -> (PType, String?) {
        let physicalName = ParquetNames.physicalType(physical)
        var bits = physical == 1 ? 32 : 64
        var signed = true
        var detail: String?
        switch logical {
        case .integer(let b, let s)?:
            bits = b
            signed = s
            detail = (s ? "INT" : "UINT") + "(\(b))"
        case .date?: detail = "DATE, days"
        case .time(let unit)?: detail = "TIME \(unit.name)"
        case .timestamp(let unit, let utc)?: detail = "TIMESTAMP \(unit.name)" + (utc ? " UTC" : "")
        case nil, .unknown?:
            if let converted {
                switch converted {
                case 11...14:
                    signed = false
                    bits = [8, 16, 32, 64][Int(converted) - 11]
                case 15...18: bits = [8, 16, 32, 64][Int(converted) - 15]
                case 6, 7, 8, 9, 10: break
                default: throw refuse("\(physicalName) (\(ParquetNames.convertedType(converted)))")
                }
                detail = ParquetNames.convertedType(converted)
            }
        default: throw refuse("\(physicalName) (\(logical.map { "\($0)" } ?? ""))")
        }
        guard [8, 16, 32, 64].contains(bits), bits <= (physical == 1 ? 32 : 64), physical == 1 || bits == 64 else {
            throw refuse("\(physicalName) holding \(signed ? "" : "un")signed \(bits)-bit integers")
        }
        let p: PType =
            switch (bits, signed) {
            case (8, true): .int8
            case (16, true): .int16
            case (32, true): .int32
            case (64, true): .int64
            case (8, false): .uint8
            case (16, false): .uint16
            case (32, false): .uint32
            default: .uint64
            }
        return (p, detail)
    }
}
