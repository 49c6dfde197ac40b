@_spi(Host) import Eddy

/// Decodes one column chunk (one column of one row group) from the mapped file into an engine array:
/// a ``DictArray`` over the codes when every data page is dictionary-encoded, else a canonical array.
struct ParquetColumnChunkDecoder {
    let file: UnsafeRawBufferPointer
    /// Where column data may lie: after the leading magic, before the footer.
    let dataEnd: Int
    let column: ParquetColumn
    let meta: ParquetColumnMetaData
    let rows: Int
    /// Largest page, decompressed.
    let pageLimit: Int

    /// Values of a page's dictionary codes as read, or of the page's values.
    private enum Mode { case codes, values }

    func decode() throws -> any ArrayNode {
        guard meta.type == column.physical else {
            throw ParquetProblem(
                "the chunk holds \(ParquetNames.physicalType(meta.type)), the schema says "
                    + ParquetNames.physicalType(column.physical))
        }
        guard ParquetCodec.isSupported(meta.codec) else {
            throw ParquetProblem("codec \(ParquetNames.codec(meta.codec)) is not supported")
        }
        var start = meta.dataPageOffset
        if let d = meta.dictionaryPageOffset, d > 0, d < start { start = d }
        let (end, overflow) = start.addingReportingOverflow(meta.totalCompressedSize)
        guard start >= 4, meta.totalCompressedSize >= 0, !overflow, end <= Int64(dataEnd) else {
            throw ParquetProblem(
                "the chunk claims bytes \(start)..<\(start &+ meta.totalCompressedSize); column data lies in 4..<\(dataEnd)"
            )
        }
        var pos = Int(start)
        let stop = Int(end)
        var dictionary: ParquetPhysicalValues?
        var values = ParquetPhysicalValues(type: column.physical)
        var codes: [UInt32] = []
        var mode = Mode.values
        var levels: ParquetLevels? = column.optional ? ParquetLevels(capacity: rows) : nil
        var seen = 0
        while seen < rows {
            guard pos < stop else { throw ParquetProblem("the chunk ends after \(seen) of \(rows) values") }
            var t = ThriftCompactReader(UnsafeRawBufferPointer(rebasing: file[pos..<stop]))
            let header = try ParquetPageHeader.decode(&t)
            pos += t.position
            guard header.compressedSize >= 0, header.uncompressedSize >= 0, Int(header.compressedSize) <= stop - pos
            else {
                throw ParquetProblem(
                    "a page of \(header.compressedSize) bytes (\(header.uncompressedSize) uncompressed) at byte \(pos); "
                        + "the chunk ends at \(stop)")
            }
            let body = UnsafeRawBufferPointer(rebasing: file[pos..<(pos + Int(header.compressedSize))])
            pos += Int(header.compressedSize)
            switch ParquetPageHeader.Kind(rawValue: header.type) {
            case .index?: continue
            case .dictionary?:
                guard dictionary == nil, seen == 0 else { throw ParquetProblem("a dictionary page after data pages") }
                guard header.encoding == 0 || header.encoding == 2 else {
                    throw ParquetProblem("dictionary page in \(ParquetNames.encoding(header.encoding))")
                }
                guard header.numValues >= 0 else { throw ParquetProblem("a dictionary of \(header.numValues) values") }
                let data = try ParquetCodec.decompress(
                    meta.codec, body, size: Int(header.uncompressedSize), limit: pageLimit)
                var dict = ParquetPhysicalValues(type: column.physical)
                try data.withUnsafeBytes { raw in
                    var r = ParquetBytes(raw)
                    try dict.appendPlain(&r, Int(header.numValues))
                }
                dictionary = dict
                mode = .codes
                continue
            case .data?, .dataV2?: break
            default: throw ParquetProblem("page type \(header.type) is not read")
            }
            let n = Int(header.numValues)
            guard n > 0, n <= rows - seen else {
                throw ParquetProblem("a data page of \(header.numValues) values where \(rows - seen) remain")
            }
            let v2 = header.type == ParquetPageHeader.Kind.dataV2.rawValue
            var data: [UInt8]
            var pageLevels: [UInt8] = []
            if v2 {
                let rep = Int(header.repetitionLevelsBytes)
                let def = Int(header.definitionLevelsBytes)
                guard rep >= 0, def >= 0, rep + def <= body.count, rep + def <= Int(header.uncompressedSize) else {
                    throw ParquetProblem("a v2 page's level lengths \(rep) + \(def) exceed its \(body.count) bytes")
                }
                guard rep == 0 else { throw ParquetProblem("repetition levels in a flat column") }
                pageLevels = Array(body[rep..<(rep + def)])
                let rest = UnsafeRawBufferPointer(rebasing: body[(rep + def)...])
                let size = Int(header.uncompressedSize) - rep - def
                data = try ParquetCodec.decompress(
                    header.isCompressed ? meta.codec : 0, rest, size: size, limit: pageLimit)
            } else {
                data = try ParquetCodec.decompress(
                    meta.codec, body, size: Int(header.uncompressedSize), limit: pageLimit)
            }
            try data.withUnsafeBytes { raw in
                var r = ParquetBytes(raw)
                // Definition levels: 1 a value, 0 a null (flat columns have no repetition levels).
                var present = n
                if levels != nil {
                    if v2 {
                        present = try pageLevels.withUnsafeBytes { try levels?.decode($0, count: n) ?? n }
                    } else {
                        guard header.definitionLevelEncoding == 3 else {
                            throw ParquetProblem(
                                "definition levels in \(ParquetNames.encoding(header.definitionLevelEncoding))")
                        }
                        let length = try r.littleEndian(4)
                        present = try levels?.decode(try r.take(Int(length)), count: n) ?? n
                    }
                }
                switch header.encoding {
                case 2, 8:
                    guard let dictionary else {
                        throw ParquetProblem("a dictionary-encoded page without a dictionary page")
                    }
                    let width = Int(try r.byte())
                    let size = dictionary.count
                    if mode == .codes {
                        // Straight into the chunk's codes; checked against the dictionary by their maximum.
                        let largest = try ParquetRLE.decode(
                            r.rest(), bitWidth: width, count: present, appendingTo: &codes)
                        guard Int(largest) < size || present == 0 else {
                            throw ParquetProblem("dictionary code \(largest) for a dictionary of \(size) values")
                        }
                    } else {
                        let pageCodes = try ParquetRLE.decode(r.rest(), bitWidth: width, count: present)
                        for c in pageCodes where Int(c) >= size {
                            throw ParquetProblem("dictionary code \(c) for a dictionary of \(size) values")
                        }
                        values.appendGather(dictionary, pageCodes)
                    }
                default:
                    if mode == .codes, let dictionary {
                        // A page written after the dictionary grew too large: the chunk becomes plain values.
                        values.appendGather(dictionary, codes)
                        codes = []
                        mode = .values
                    }
                    switch header.encoding {
                    case 0: try values.appendPlain(&r, present)
                    case 3: try values.appendRLEBooleans(&r, present)
                    case 5: try values.appendDeltaBinaryPacked(&r, present)
                    case 6: try values.appendDeltaLengthByteArray(&r, present)
                    case 7: try values.appendDeltaByteArray(&r, present)
                    case 9: try values.appendByteStreamSplit(&r, present)
                    default:
                        throw ParquetProblem("values in \(ParquetNames.encoding(header.encoding)) are not read")
                    }
                }
            }
            seen += n
        }
        let n: Nullability = column.optional ? .nullable : .nonNullable
        if mode == .codes, let dictionary {
            let dictValues = try ParquetArrays.build(
                dictionary, column.dtype.with(.nonNullable), levels: nil, rows: dictionary.count)
            let codeType: PType = dictionary.count <= 256 ? .uint8 : dictionary.count <= 65_536 ? .uint16 : .uint32
            let codeArray = try ParquetArrays.codes(codes, codeType, levels: levels, nullability: n, rows: rows)
            return try DictArray(codes: codeArray, values: dictValues)
        }
        return try ParquetArrays.build(values, column.dtype, levels: levels, rows: rows)
    }
}
