internal import CEddyCodecs
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
    /// The rows a filter keeps (nil: all): only those are decoded into the array, and pages that hold
    /// none of them are not decompressed.
    var keep: ParquetRowKeep? = nil
    /// The chunk's offset index, when its page bounds decided which rows to read: every data page walked
    /// must start where it says, at the row it says, so that no row is judged by another page's bounds.
    var pages: [ParquetPageIndex.Page]? = nil

    /// Where the chunk's pages lie in the file, checked to be column data.
    static func byteRange(_ meta: ParquetColumnMetaData, dataEnd: Int) throws -> Range<Int> {
        var start = meta.dataPageOffset
        if let d = meta.dictionaryPageOffset, d > 0, d < start { start = d }
        let (end, overflow) = start.addingReportingOverflow(meta.totalCompressedSize)
        guard start >= 4, meta.totalCompressedSize >= 0, !overflow, end <= Int64(dataEnd) else {
            throw ParquetProblem(
                "the chunk claims bytes \(start)..<\(start &+ meta.totalCompressedSize); column data lies in 4..<\(dataEnd)"
            )
        }
        return Int(start)..<Int(end)
    }

    /// Values of a page's dictionary codes as read, or of the page's values.
    private enum Mode { case codes, values }

    /// What the chunk's pages have decoded so far.
    private struct Decoded {
        var dictionary: ParquetPhysicalValues?
        var values: ParquetPhysicalValues
        var codes: ParquetCodes?
        var mode = Mode.values
        /// The levels of the rows decoded (with a filter, of the rows it keeps).
        var levels: ParquetLevels?
    }

    /// A page as it lies in the chunk: its header, where the header starts, and its body as stored.
    private struct StoredPage {
        let header: ParquetPageHeader
        let start: Int
        let body: UnsafeRawBufferPointer
    }

    /// The chunk's pages walked in order: the dictionary page read, each data page checked against the
    /// offset index, skipped when a filter keeps none of its rows, else decoded; then the engine array.
    func decode() throws -> any ArrayNode {
        guard meta.type == column.physical else {
            throw ParquetProblem(
                "the chunk holds \(ParquetNames.physicalType(meta.type)), the schema says "
                    + ParquetNames.physicalType(column.physical))
        }
        guard ParquetCodec.isSupported(meta.codec) else {
            throw ParquetProblem("codec \(ParquetNames.codec(meta.codec)) is not supported")
        }
        let range = try Self.byteRange(meta, dataEnd: dataEnd)
        var pos = range.lowerBound
        let stop = range.upperBound
        var page = 0
        if let keep, keep.count != rows {
            throw ParquetProblem("a filter of \(keep.count) rows for a chunk of \(rows)")
        }
        let outRows = keep?.count(in: 0..<rows) ?? rows
        var chunk = Decoded(
            values: ParquetPhysicalValues(type: column.physical),
            levels: column.optional ? ParquetLevels(capacity: outRows) : nil)
        var seen = 0
        while seen < rows {
            guard pos < stop else { throw ParquetProblem("the chunk ends after \(seen) of \(rows) values") }
            let stored = try readPage(at: &pos, stop: stop)
            let header = stored.header
            switch ParquetPageHeader.Kind(rawValue: header.type) {
            case .index?: continue
            case .dictionary?:
                try readDictionary(header, stored.body, seen: seen, into: &chunk)
                continue
            case .data?, .dataV2?: break
            default: throw ParquetProblem("page type \(header.type) is not read")
            }
            let n = Int(header.numValues)
            guard n > 0, n <= rows - seen else {
                throw ParquetProblem("a data page of \(header.numValues) values where \(rows - seen) remain")
            }
            if let pages {
                try Self.checkOffsetIndex(pages, page: page, start: stored.start, size: pos - stored.start, row: seen)
                page += 1
            }
            if let keep, !keep.any(seen..<(seen + n)) {
                // No row of this page is kept: neither its levels nor its values are needed.
                seen += n
                continue
            }
            try decodeDataPage(header, stored.body, rows: seen..<(seen + n), into: &chunk)
            seen += n
        }
        if let pages, page != pages.count {
            throw ParquetProblem("the offset index lists \(pages.count) data pages; the chunk has \(page)")
        }
        return try assemble(chunk, rows: outRows)
    }

    /// The page header at `pos` (moved past the page's body), its body checked to lie before `stop`.
    private func readPage(at pos: inout Int, stop: Int) throws -> StoredPage {
        var t = ThriftCompactReader(UnsafeRawBufferPointer(rebasing: file[pos..<stop]))
        let header = try ParquetPageHeader.decode(&t)
        let headerStart = pos
        pos += t.position
        guard header.compressedSize >= 0, header.uncompressedSize >= 0, Int(header.compressedSize) <= stop - pos
        else {
            throw ParquetProblem(
                "a page of \(header.compressedSize) bytes (\(header.uncompressedSize) uncompressed) at byte \(pos); "
                    + "the chunk ends at \(stop)")
        }
        let body = UnsafeRawBufferPointer(rebasing: file[pos..<(pos + Int(header.compressedSize))])
        pos += Int(header.compressedSize)
        return StoredPage(header: header, start: headerStart, body: body)
    }

    /// The dictionary page: its values, and room for the chunk's codes (pages read as codes from here).
    private func readDictionary(
        _ header: ParquetPageHeader, _ body: UnsafeRawBufferPointer, seen: Int, into chunk: inout Decoded
    ) throws {
        guard chunk.dictionary == nil, seen == 0 else { throw ParquetProblem("a dictionary page after data pages") }
        guard header.encoding == 0 || header.encoding == 2 else {
            throw ParquetProblem("dictionary page in \(ParquetNames.encoding(header.encoding))")
        }
        guard header.numValues >= 0 else { throw ParquetProblem("a dictionary of \(header.numValues) values") }
        let data = try ParquetCodec.decompress(meta.codec, body, size: Int(header.uncompressedSize), limit: pageLimit)
        var dict = ParquetPhysicalValues(type: column.physical)
        try data.withUnsafeBytes { raw in
            var r = ParquetBytes(raw)
            try dict.appendPlain(&r, Int(header.numValues))
        }
        chunk.dictionary = dict
        chunk.codes = try ParquetCodes(dictionarySize: dict.count, rows: rows)
        chunk.mode = .codes
    }

    /// Data page `page`, `size` bytes from byte `start` and from row `row`, must be where the offset index
    /// says.
    private static func checkOffsetIndex(
        _ pages: [ParquetPageIndex.Page], page: Int, start: Int, size: Int, row: Int
    ) throws {
        guard page < pages.count, pages[page].offset == start, pages[page].firstRow == row, pages[page].size == size
        else {
            let claim =
                page < pages.count
                ? "page \(page) at byte \(pages[page].offset) (\(pages[page].size) bytes) from row \(pages[page].firstRow)"
                : "\(pages.count) pages"
            throw ParquetProblem(
                "the offset index disagrees with the pages: it lists \(claim); data page \(page) is at byte "
                    + "\(start) (\(size) bytes) from row \(row)")
        }
    }

    /// A data page of rows `rows` of the chunk, some kept: decompressed, its levels, then its values.
    private func decodeDataPage(
        _ header: ParquetPageHeader, _ body: UnsafeRawBufferPointer, rows: Range<Int>, into chunk: inout Decoded
    ) throws {
        // A page whose rows are all kept is decoded as without a filter (page statistics keep whole pages).
        let keep = keep.flatMap { $0.count(in: rows) == rows.count ? nil : $0 }
        let v2 = header.type == ParquetPageHeader.Kind.dataV2.rawValue
        let (data, pageLevels) = try decompress(header, body, v2: v2)
        try data.withUnsafeBytes { raw in
            var r = ParquetBytes(raw)
            let (present, keepValues) = try readLevels(
                header, v2: v2, pageLevels, &r, rows: rows, keep: keep, into: &chunk.levels)
            try Self.readValues(header.encoding, &r, present: present, keep: keepValues, into: &chunk)
        }
    }

    /// A data page's body decompressed; a v2 page's definition levels, stored uncompressed before its
    /// values, apart.
    private func decompress(_ header: ParquetPageHeader, _ body: UnsafeRawBufferPointer, v2: Bool) throws
        -> (data: [UInt8], levels: UnsafeRawBufferPointer)
    {
        guard v2 else {
            let data = try ParquetCodec.decompress(
                meta.codec, body, size: Int(header.uncompressedSize), limit: pageLimit)
            return (data, UnsafeRawBufferPointer(start: nil, count: 0))
        }
        let rep = Int(header.repetitionLevelsBytes)
        let def = Int(header.definitionLevelsBytes)
        guard rep >= 0, def >= 0, rep + def <= body.count, rep + def <= Int(header.uncompressedSize) else {
            throw ParquetProblem("a v2 page's level lengths \(rep) + \(def) exceed its \(body.count) bytes")
        }
        guard rep == 0 else { throw ParquetProblem("repetition levels in a flat column") }
        let pageLevels = UnsafeRawBufferPointer(rebasing: body[rep..<(rep + def)])
        let rest = UnsafeRawBufferPointer(rebasing: body[(rep + def)...])
        let size = Int(header.uncompressedSize) - rep - def
        let data = try ParquetCodec.decompress(
            header.isCompressed ? meta.codec : 0, rest, size: size, limit: pageLimit)
        return (data, pageLevels)
    }

    /// A data page's definition levels (1 a value, 0 a null; flat columns have no repetition levels),
    /// read from `r` (v1) or `v2Levels`, joined to the chunk's `levels`.
    /// - Returns: the values the page holds, and with a filter which of them are kept (a bit per value).
    private func readLevels(
        _ header: ParquetPageHeader, v2: Bool, _ v2Levels: UnsafeRawBufferPointer, _ r: inout ParquetBytes,
        rows: Range<Int>, keep: ParquetRowKeep?, into levels: inout ParquetLevels?
    ) throws -> (present: Int, keep: ParquetRowKeep?) {
        let n = rows.count
        var present = n
        // With a filter, the page's levels are decoded apart and only the kept rows' join the chunk's.
        var pageValid: ParquetLevels? = keep == nil ? nil : levels.map { _ in ParquetLevels(capacity: n) }
        if levels != nil {
            let levelBytes: UnsafeRawBufferPointer
            if v2 {
                levelBytes = v2Levels
            } else {
                guard header.definitionLevelEncoding == 3 else {
                    throw ParquetProblem(
                        "definition levels in \(ParquetNames.encoding(header.definitionLevelEncoding))")
                }
                let length = try r.littleEndian(4)
                levelBytes = try r.take(Int(length))
            }
            if pageValid != nil {
                present = try pageValid?.decode(levelBytes, count: n) ?? n
            } else {
                present = try levels?.decode(levelBytes, count: n) ?? n
            }
        }
        // A v2 header states its nulls apart from the levels: a file where the two disagree is
        // refused rather than trusting either (a reader that sizes by the header would misread).
        if v2 && Int(header.numNulls) != n - present {
            throw ParquetProblem(
                "a v2 data page claims \(header.numNulls) nulls; its definition levels hold \(n - present)")
        }
        // With a filter: which of the page's values are kept (a bit per non-null value), and the
        // kept rows' levels.
        guard let keep else { return (present, nil) }
        return (present, try keep.values(rows: rows, valid: pageValid, present: present, levels: &levels))
    }

    /// A data page's `present` values in `encoding` from `r` (with `keep`, only those kept): dictionary
    /// codes into the chunk's codes while every page is so encoded, else values.
    private static func readValues(
        _ encoding: Int32, _ r: inout ParquetBytes, present: Int, keep: ParquetRowKeep?, into chunk: inout Decoded
    ) throws {
        var keepValues = keep
        switch encoding {
        case 2, 8:
            guard let dictionary = chunk.dictionary else {
                throw ParquetProblem("a dictionary-encoded page without a dictionary page")
            }
            let width = Int(try r.byte())
            let size = dictionary.count
            if chunk.mode == .codes, chunk.codes != nil {
                // Straight into the chunk's codes; checked against the dictionary by their maximum.
                try chunk.codes?.decode(r.rest(), bitWidth: width, count: present, keep: keepValues)
            } else {
                var pageCodes = try ParquetRLE.decode(r.rest(), bitWidth: width, count: present)
                for c in pageCodes where Int(c) >= size {
                    throw ParquetProblem("dictionary code \(c) for a dictionary of \(size) values")
                }
                if let keepValues {
                    pageCodes = pageCodes.indices.filter(keepValues.isKept).map { pageCodes[$0] }
                }
                chunk.values.appendGather(dictionary, pageCodes)
            }
        default:
            if chunk.mode == .codes, let dictionary = chunk.dictionary {
                // A page written after the dictionary grew too large: the chunk becomes plain values.
                chunk.values.appendGather(dictionary, chunk.codes?.all ?? [])
                chunk.codes = nil
                chunk.mode = .values
            }
            let before = chunk.values.count
            switch encoding {
            case 0:
                try chunk.values.appendPlain(&r, present, keep: keepValues)
                keepValues = nil
            case 3: try chunk.values.appendRLEBooleans(&r, present)
            case 5: try chunk.values.appendDeltaBinaryPacked(&r, present)
            case 6: try chunk.values.appendDeltaLengthByteArray(&r, present)
            case 7: try chunk.values.appendDeltaByteArray(&r, present)
            case 9: try chunk.values.appendByteStreamSplit(&r, present)
            default:
                throw ParquetProblem("values in \(ParquetNames.encoding(encoding)) are not read")
            }
            if let keepValues { try chunk.values.retain(from: before, keepValues) }
        }
    }

    /// The engine array of the chunk's `rows` decoded rows: a ``DictArray`` when every data page held
    /// dictionary codes, else a canonical array.
    private func assemble(_ chunk: Decoded, rows: Int) throws -> any ArrayNode {
        let n: Nullability = column.optional ? .nullable : .nonNullable
        if chunk.mode == .codes, let dictionary = chunk.dictionary, let codes = chunk.codes {
            let dictValues = try ParquetArrays.build(
                dictionary, column.dtype.with(.nonNullable), levels: nil, rows: dictionary.count)
            let codeArray = try codes.array(levels: chunk.levels, nullability: n, rows: rows)
            return try DictArray(codes: codeArray, values: dictValues)
        }
        return try ParquetArrays.build(chunk.values, column.dtype, levels: chunk.levels, rows: rows)
    }
}

/// The rows of a chunk that a filter keeps, as words (bit `i` set: row `i` is kept); also the values of
/// a page that are kept.
struct ParquetRowKeep: Sendable {
    let words: [UInt64]
    let count: Int

    init(_ bitmap: Bitmap) {
        count = bitmap.count
        words = stride(from: 0, to: bitmap.count, by: 64).map { bitmap.word(at: $0) }
    }

    init(words: [UInt64], count: Int) {
        self.words = words
        self.count = count
    }

    @inline(__always) func isKept(_ i: Int) -> Bool { words[i >> 6] >> UInt64(i & 63) & 1 == 1 }

    /// Calls `body` with each kept row of `range` (within ``count``), in order.
    @inline(__always)
    func forEachKept(in range: Range<Int>, _ body: (Int) -> Void) {
        var i = range.lowerBound
        while i < range.upperBound {
            let from = i & 63
            let to = Swift.min(64, from + (range.upperBound - i))
            let mask: UInt64 = (to == 64 ? ~0 : (1 << UInt64(to)) - 1) & ~((1 << UInt64(from)) - 1)
            var w = words[i >> 6] & mask
            let base = i - from
            while w != 0 {
                body(base + w.trailingZeroBitCount)
                w &= w - 1
            }
            i += to - from
        }
    }

    /// Whether any row of `range` (within ``count``) is kept.
    func any(_ range: Range<Int>) -> Bool { count(in: range, stopAtFirst: true) > 0 }

    /// The rows of `range` (within ``count``) that are kept.
    func count(in range: Range<Int>, stopAtFirst: Bool = false) -> Int {
        var n = 0
        var i = range.lowerBound
        while i < range.upperBound {
            let from = i & 63
            let to = Swift.min(64, from + (range.upperBound - i))
            let mask: UInt64 = (to == 64 ? ~0 : (1 << UInt64(to)) - 1) & ~((1 << UInt64(from)) - 1)
            n += (words[i >> 6] & mask).nonzeroBitCount
            if stopAtFirst && n > 0 { return n }
            i += to - from
        }
        return n
    }

    /// The `take` (1...64) bits from bit `start` of `words`, in the low bits.
    @inline(__always)
    static func bits(_ words: UnsafeBufferPointer<UInt64>, _ start: Int, _ take: Int) -> UInt64 {
        let w = start >> 6
        let shift = UInt64(start & 63)
        var v = words[w] >> shift
        if shift > 0 && Int(shift) + take > 64 { v |= words[w + 1] << (64 - shift) }
        return take == 64 ? v : v & ((1 << UInt64(take)) - 1)
    }

    /// Of a page's rows `rows` (their levels `valid`, nil when all have a value; `present` values): a bit
    /// per value, set when its row is kept, and the kept rows' levels appended to `levels`. Word by word:
    /// a flag per row cost more than the rows it saved decoding.
    /// - Throws: ``ParquetProblem`` when the levels do not hold `present` values.
    func values(rows: Range<Int>, valid: ParquetLevels?, present: Int, levels: inout ParquetLevels?) throws
        -> ParquetRowKeep
    {
        let n = rows.count
        guard (valid?.count ?? n) == n, (valid?.present ?? n) == present else {
            throw ParquetProblem("\(present) values for \(n) rows")
        }
        var out = [UInt64](repeating: 0, count: (present + 63) / 64)
        var j = 0
        let validWords = valid?.words ?? []
        try words.withUnsafeBufferPointer { kw in
            try validWords.withUnsafeBufferPointer { vw in
                try out.withUnsafeMutableBufferPointer { o in
                    var i = 0
                    while i < n {
                        let take = Swift.min(64, n - i)
                        let all: UInt64 = take == 64 ? ~0 : (1 << UInt64(take)) - 1
                        let k = Self.bits(kw, rows.lowerBound + i, take)
                        let v = valid == nil ? all : Self.bits(vw, i, take)
                        var packed: UInt64 = 0
                        var m = 0
                        if k == 0 {
                            m = v.nonzeroBitCount
                        } else if v == all {
                            packed = k
                            m = take
                        } else {
                            // The kept bits of the rows with a value, packed.
                            packed = eddy_pext64(k, v)
                            m = v.nonzeroBitCount
                        }
                        guard j + m <= present else { throw ParquetProblem("more values than the levels hold") }
                        if packed != 0 {
                            let shift = UInt64(j & 63)
                            o[j >> 6] |= packed << shift
                            if shift > 0 && Int(shift) + m > 64 { o[(j >> 6) + 1] |= packed >> (64 - shift) }
                        }
                        j += m
                        if k != 0, levels != nil {
                            // The kept rows' validity, packed.
                            levels?.append(word: v == all ? ~0 : eddy_pext64(v, k), count: k.nonzeroBitCount)
                        }
                        i += take
                    }
                }
            }
        }
        guard j == present else { throw ParquetProblem("\(j) values where the levels hold \(present)") }
        return ParquetRowKeep(words: out, count: present)
    }
}
