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
        var dictionary: ParquetPhysicalValues?
        var values = ParquetPhysicalValues(type: column.physical)
        var codes: ParquetCodes?
        var mode = Mode.values
        if let keep, keep.count != rows {
            throw ParquetProblem("a filter of \(keep.count) rows for a chunk of \(rows)")
        }
        let outRows = keep?.count(in: 0..<rows) ?? rows
        // The levels of the rows decoded (with a filter, of the rows it keeps).
        var levels: ParquetLevels? = column.optional ? ParquetLevels(capacity: outRows) : nil
        var seen = 0
        while seen < rows {
            guard pos < stop else { throw ParquetProblem("the chunk ends after \(seen) of \(rows) values") }
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
                codes = try ParquetCodes(dictionarySize: dict.count, rows: rows)
                mode = .codes
                continue
            case .data?, .dataV2?: break
            default: throw ParquetProblem("page type \(header.type) is not read")
            }
            let n = Int(header.numValues)
            guard n > 0, n <= rows - seen else {
                throw ParquetProblem("a data page of \(header.numValues) values where \(rows - seen) remain")
            }
            if let pages {
                guard page < pages.count, pages[page].offset == headerStart, pages[page].firstRow == seen,
                    pages[page].size == pos - headerStart
                else {
                    let claim =
                        page < pages.count
                        ? "page \(page) at byte \(pages[page].offset) (\(pages[page].size) bytes) from row \(pages[page].firstRow)"
                        : "\(pages.count) pages"
                    throw ParquetProblem(
                        "the offset index disagrees with the pages: it lists \(claim); data page \(page) is at byte "
                            + "\(headerStart) (\(pos - headerStart) bytes) from row \(seen)")
                }
                page += 1
            }
            if let keep, !keep.any(seen..<(seen + n)) {
                // No row of this page is kept: neither its levels nor its values are needed.
                seen += n
                continue
            }
            // A page whose rows are all kept is decoded as without a filter (page statistics keep whole pages).
            let keep = keep.flatMap { $0.count(in: seen..<(seen + n)) == n ? nil : $0 }
            let v2 = header.type == ParquetPageHeader.Kind.dataV2.rawValue
            var data: [UInt8]
            var pageLevels = UnsafeRawBufferPointer(start: nil, count: 0)
            if v2 {
                let rep = Int(header.repetitionLevelsBytes)
                let def = Int(header.definitionLevelsBytes)
                guard rep >= 0, def >= 0, rep + def <= body.count, rep + def <= Int(header.uncompressedSize) else {
                    throw ParquetProblem("a v2 page's level lengths \(rep) + \(def) exceed its \(body.count) bytes")
                }
                guard rep == 0 else { throw ParquetProblem("repetition levels in a flat column") }
                pageLevels = UnsafeRawBufferPointer(rebasing: body[rep..<(rep + def)])
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
                // With a filter, the page's levels are decoded apart and only the kept rows' join the chunk's.
                var pageValid: ParquetLevels? = keep == nil ? nil : levels.map { _ in ParquetLevels(capacity: n) }
                if levels != nil {
                    let levelBytes: UnsafeRawBufferPointer
                    if v2 {
                        levelBytes = pageLevels
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
                var keepValues: ParquetRowKeep?
                if let keep {
                    keepValues = try keep.values(
                        rows: seen..<(seen + n), valid: pageValid, present: present, levels: &levels)
                }
                switch header.encoding {
                case 2, 8:
                    guard let dictionary else {
                        throw ParquetProblem("a dictionary-encoded page without a dictionary page")
                    }
                    let width = Int(try r.byte())
                    let size = dictionary.count
                    if mode == .codes, codes != nil {
                        // Straight into the chunk's codes; checked against the dictionary by their maximum.
                        try codes?.decode(r.rest(), bitWidth: width, count: present, keep: keepValues)
                    } else {
                        var pageCodes = try ParquetRLE.decode(r.rest(), bitWidth: width, count: present)
                        for c in pageCodes where Int(c) >= size {
                            throw ParquetProblem("dictionary code \(c) for a dictionary of \(size) values")
                        }
                        if let keepValues {
                            pageCodes = pageCodes.indices.filter(keepValues.isKept).map { pageCodes[$0] }
                        }
                        values.appendGather(dictionary, pageCodes)
                    }
                default:
                    if mode == .codes, let dictionary {
                        // A page written after the dictionary grew too large: the chunk becomes plain values.
                        values.appendGather(dictionary, codes?.all ?? [])
                        codes = nil
                        mode = .values
                    }
                    let before = values.count
                    switch header.encoding {
                    case 0:
                        try values.appendPlain(&r, present, keep: keepValues)
                        keepValues = nil
                    case 3: try values.appendRLEBooleans(&r, present)
                    case 5: try values.appendDeltaBinaryPacked(&r, present)
                    case 6: try values.appendDeltaLengthByteArray(&r, present)
                    case 7: try values.appendDeltaByteArray(&r, present)
                    case 9: try values.appendByteStreamSplit(&r, present)
                    default:
                        throw ParquetProblem("values in \(ParquetNames.encoding(header.encoding)) are not read")
                    }
                    if let keepValues { try values.retain(from: before, keepValues) }
                }
            }
            seen += n
        }
        if let pages, page != pages.count {
            throw ParquetProblem("the offset index lists \(pages.count) data pages; the chunk has \(page)")
        }
        let n: Nullability = column.optional ? .nullable : .nonNullable
        if mode == .codes, let dictionary, let codes {
            let dictValues = try ParquetArrays.build(
                dictionary, column.dtype.with(.nonNullable), levels: nil, rows: dictionary.count)
            let codeArray = try codes.array(levels: levels, nullability: n, rows: outRows)
            return try DictArray(codes: codeArray, values: dictValues)
        }
        return try ParquetArrays.build(values, column.dtype, levels: levels, rows: outRows)
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
