/// The non-null values of one column chunk as its pages decode them, in Parquet's physical type
/// (only the array of that type is used).
struct ParquetPhysicalValues {
    let type: Int32
    let typeLength: Int
    var bools: [Bool] = []
    var i32: [Int32] = []
    var i64: [Int64] = []
    var f32: [Float] = []
    var f64: [Double] = []
    /// Byte arrays: `offsets` starts with 0 and has one more entry than there are values.
    var offsets: [Int] = [0]
    var bytes: [UInt8] = []

    init(type: Int32, typeLength: Int = 0) {
        self.type = type
        self.typeLength = typeLength
    }

    var count: Int {
        switch type {
        case 0: bools.count
        case 1: i32.count
        case 2: i64.count
        case 4: f32.count
        case 5: f64.count
        default: offsets.count - 1
        }
    }

    // MARK: PLAIN

    /// Appends `n` PLAIN-encoded values read from `r`; with `keep` (a bit per value), only those kept.
    mutating func appendPlain(_ r: inout ParquetBytes, _ n: Int, keep: ParquetRowKeep? = nil) throws {
        guard keep.map({ $0.count == n }) ?? true else {
            throw ParquetProblem("a filter of \(keep?.count ?? 0) values for a page of \(n)")
        }
        switch type {
        case 0:
            let data = try r.take((n + 7) / 8)
            bools.reserveCapacity(bools.count + n)
            for k in 0..<n where keep?.isKept(k) ?? true { bools.append(data[k >> 3] >> UInt8(k & 7) & 1 == 1) }
        case 1: try appendFixed(&i32, &r, n, keep)
        case 2: try appendFixed(&i64, &r, n, keep)
        case 4: try appendFixed(&f32, &r, n, keep)
        case 5: try appendFixed(&f64, &r, n, keep)
        case 6: try appendPlainByteArrays(&r, n, keep: keep)
        default: throw ParquetProblem("\(ParquetNames.physicalType(type)) values are not read")
        }
    }

    private func appendFixed<T: BitwiseCopyable>(
        _ out: inout [T], _ r: inout ParquetBytes, _ n: Int, _ keep: ParquetRowKeep?
    ) throws {
        let stride = MemoryLayout<T>.size
        let (size, overflow) = n.multipliedReportingOverflow(by: stride)
        guard !overflow else { throw ParquetProblem("\(n) values overflow the page") }
        let data = try r.take(size)
        guard let base = data.baseAddress, n > 0 else { return }
        if let keep {
            // Only the values kept, gathered from the page (copying it all, then compacting, cost more).
            out.reserveCapacity(out.count + keep.count(in: 0..<n))
            for (k, word) in keep.words.enumerated() {
                var rest = word
                while rest != 0 {
                    out.append(
                        base.loadUnaligned(fromByteOffset: (k * 64 + rest.trailingZeroBitCount) * stride, as: T.self))
                    rest &= rest - 1
                }
            }
            return
        }
        // One copy of the page's bytes (little-endian, as this machine is), not a load per value.
        let page = UnsafeRawBufferPointer(start: base, count: size)
        if out.isEmpty {
            out = [T](unsafeUninitializedCapacity: n) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: page)
                initialized = n
            }
            return
        }
        let start = out.count
        out.reserveCapacity(start + n)
        let tail = [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: page)
            initialized = n
        }
        out.append(contentsOf: tail)
    }

    /// `n` PLAIN byte arrays (a 4-byte length, then the bytes, each): the lengths are checked in a
    /// first pass, then the values are copied into one block (appending value by value cost a tenth
    /// of a query over strings). With `keep` (one flag per value), only the values kept are copied:
    /// a filter that keeps few rows does not pay for copying the others.
    mutating func appendPlainByteArrays(_ r: inout ParquetBytes, _ n: Int, keep: ParquetRowKeep? = nil) throws {
        // First pass: every length checked against the bytes left, on the raw bytes (a checked cursor
        // per value cost a fifth of a query over strings).
        var end = r.position
        var total = 0
        var kept = 0
        let limit = r.bytes.count
        for k in 0..<n {
            guard limit - end >= 4 else { throw ParquetProblem("page data ends early") }
            let length = Int(UInt32(littleEndian: r.bytes.loadUnaligned(fromByteOffset: end, as: UInt32.self)))
            end += 4
            guard length <= limit - end else {
                throw ParquetProblem("\(length) bytes wanted, \(limit - end) left in the page")
            }
            end += length
            if keep?.isKept(k) ?? true {
                total += length
                kept += 1
            }
        }
        guard let base = r.bytes.baseAddress, kept > 0 else {
            r.position = end
            return
        }
        // Second pass: straight into `bytes` (no page-sized temporary), a value of up to 16 bytes as two
        // 8-byte moves where the bytes around it allow (a memmove call per value was a tenth of a query
        // over strings); the bytes a move writes past a value's end are the next values' place.
        let start = r.position
        let before = bytes.count
        bytes.reserveCapacity(before + total)
        bytes.append(contentsOf: repeatElement(0, count: total))
        var ends = [Int](repeating: 0, count: kept)
        bytes.withUnsafeMutableBufferPointer { out in
            ends.withUnsafeMutableBufferPointer { ends in
                guard let target = out.baseAddress.map(UnsafeMutableRawPointer.init) else { return }
                let last = out.count
                var p = start
                var w = before
                var e = 0
                for k in 0..<n {
                    let length = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: p, as: UInt32.self)))
                    p &+= 4
                    if keep?.isKept(k) ?? true {
                        if length <= 16 && p &+ 16 <= limit && w &+ 16 <= last {
                            let a = base.loadUnaligned(fromByteOffset: p, as: UInt64.self)
                            let b = base.loadUnaligned(fromByteOffset: p &+ 8, as: UInt64.self)
                            target.storeBytes(of: a, toByteOffset: w, as: UInt64.self)
                            target.storeBytes(of: b, toByteOffset: w &+ 8, as: UInt64.self)
                        } else if length > 0 {
                            (target + w).copyMemory(from: base + p, byteCount: length)
                        }
                        w &+= length
                        ends[e] = w
                        e &+= 1
                    }
                    p &+= length
                }
            }
        }
        offsets.append(contentsOf: ends)
        r.position = end
    }

    /// Keeps, of the values from `start` on, those whose bit in `keep` is set (one bit per value).
    /// - Throws: ``ParquetProblem`` unless there is one bit per value from `start` on.
    mutating func retain(from start: Int, _ keep: ParquetRowKeep) throws {
        guard start >= 0, count - start == keep.count else {
            throw ParquetProblem("\(count - start) values decoded in a page of \(keep.count)")
        }
        /// The positions kept, in order.
        func forEachKept(_ body: (Int) -> Void) {
            for (k, word) in keep.words.enumerated() {
                var rest = word
                while rest != 0 {
                    body(start + k * 64 + rest.trailingZeroBitCount)
                    rest &= rest - 1
                }
            }
        }
        func compact<T>(_ a: inout [T]) {
            var w = start
            a.withUnsafeMutableBufferPointer { p in
                forEachKept { i in
                    p[w] = p[i]
                    w += 1
                }
            }
            a.removeLast(a.count - w)
        }
        switch type {
        case 0: compact(&bools)
        case 1: compact(&i32)
        case 2: compact(&i64)
        case 4: compact(&f32)
        case 5: compact(&f64)
        default:
            var w = offsets[start]
            var o = start
            bytes.withUnsafeMutableBufferPointer { b in
                offsets.withUnsafeMutableBufferPointer { offsets in
                    forEachKept { i in
                        let from = offsets[i]
                        let length = offsets[i + 1] - from
                        if length > 0, let p = b.baseAddress, from != w {
                            // Moving down within one buffer (memmove: the ranges may overlap).
                            UnsafeMutableRawPointer(p + w).copyMemory(from: p + from, byteCount: length)
                        }
                        w += length
                        o += 1
                        offsets[o] = w
                    }
                }
            }
            bytes.removeLast(bytes.count - w)
            offsets.removeLast(offsets.count - o - 1)
        }
    }

    mutating func appendBytes(_ value: UnsafeRawBufferPointer) throws {
        bytes.append(contentsOf: value)
        offsets.append(bytes.count)
    }

    // MARK: Dictionary codes

    /// Appends `dictionary[code]` for each code (a page that fell back from codes to values).
    mutating func appendGather(_ dictionary: ParquetPhysicalValues, _ codes: [UInt32]) {
        switch type {
        case 0: for c in codes { bools.append(dictionary.bools[Int(c)]) }
        case 1: for c in codes { i32.append(dictionary.i32[Int(c)]) }
        case 2: for c in codes { i64.append(dictionary.i64[Int(c)]) }
        case 4: for c in codes { f32.append(dictionary.f32[Int(c)]) }
        case 5: for c in codes { f64.append(dictionary.f64[Int(c)]) }
        default:
            for c in codes {
                let i = Int(c)
                bytes.append(contentsOf: dictionary.bytes[dictionary.offsets[i]..<dictionary.offsets[i + 1]])
                offsets.append(bytes.count)
            }
        }
    }

    // MARK: RLE booleans, DELTA_*, BYTE_STREAM_SPLIT

    /// Appends `n` booleans in the RLE encoding (a 4-byte length, then the hybrid at width 1).
    mutating func appendRLEBooleans(_ r: inout ParquetBytes, _ n: Int) throws {
        guard type == 0 else { throw ParquetProblem("RLE values are read for BOOLEAN only") }
        let length = try r.littleEndian(4)
        let bits = try ParquetRLE.decode(try r.take(Int(length)), bitWidth: 1, count: n)
        bools.append(contentsOf: bits.map { $0 == 1 })
    }

    mutating func appendDeltaBinaryPacked(_ r: inout ParquetBytes, _ n: Int) throws {
        let values = try Self.deltaBinaryPacked(&r, count: n)
        switch type {
        case 1: i32.append(contentsOf: values.map { Int32(truncatingIfNeeded: $0) })
        case 2: i64.append(contentsOf: values)
        default: throw ParquetProblem("DELTA_BINARY_PACKED is read for INT32 and INT64 only")
        }
    }

    mutating func appendDeltaLengthByteArray(_ r: inout ParquetBytes, _ n: Int) throws {
        guard type == 6 else { throw ParquetProblem("DELTA_LENGTH_BYTE_ARRAY is read for BYTE_ARRAY only") }
        let lengths = try Self.deltaBinaryPacked(&r, count: n)
        for length in lengths {
            guard length >= 0, length <= Int64(r.remaining) else {
                throw ParquetProblem("a value of \(length) bytes with \(r.remaining) left")
            }
            try appendBytes(try r.take(Int(length)))
        }
    }

    mutating func appendDeltaByteArray(_ r: inout ParquetBytes, _ n: Int) throws {
        guard type == 6 else { throw ParquetProblem("DELTA_BYTE_ARRAY is read for BYTE_ARRAY only") }
        let prefixes = try Self.deltaBinaryPacked(&r, count: n)
        let suffixLengths = try Self.deltaBinaryPacked(&r, count: n)
        var previous: [UInt8] = []
        for (prefix, length) in zip(prefixes, suffixLengths) {
            guard prefix >= 0, prefix <= Int64(previous.count) else {
                throw ParquetProblem("a prefix of \(prefix) bytes of a \(previous.count)-byte value")
            }
            guard length >= 0, length <= Int64(r.remaining) else {
                throw ParquetProblem("a suffix of \(length) bytes with \(r.remaining) left")
            }
            previous.removeLast(previous.count - Int(prefix))
            previous.append(contentsOf: try r.take(Int(length)))
            bytes.append(contentsOf: previous)
            offsets.append(bytes.count)
        }
    }

    mutating func appendByteStreamSplit(_ r: inout ParquetBytes, _ n: Int) throws {
        let width: Int
        switch type {
        case 1, 4: width = 4
        case 2, 5: width = 8
        default: throw ParquetProblem("BYTE_STREAM_SPLIT is read for INT32, INT64, FLOAT and DOUBLE only")
        }
        let (size, overflow) = n.multipliedReportingOverflow(by: width)
        guard !overflow, r.remaining >= size else {
            throw ParquetProblem("BYTE_STREAM_SPLIT: \(n) values need \(size) bytes, \(r.remaining) left")
        }
        let data = try r.take(size)
        func value(_ k: Int) -> UInt64 {
            var v: UInt64 = 0
            for b in 0..<width { v |= UInt64(data[b * n + k]) << UInt64(8 * b) }
            return v
        }
        for k in 0..<n {
            switch type {
            case 1: i32.append(Int32(truncatingIfNeeded: Int64(bitPattern: value(k))))
            case 2: i64.append(Int64(bitPattern: value(k)))
            case 4: f32.append(Float(bitPattern: UInt32(truncatingIfNeeded: value(k))))
            default: f64.append(Double(bitPattern: value(k)))
            }
        }
    }

    /// Reads a DELTA_BINARY_PACKED run of exactly `count` values, leaving `r` after its last miniblock.
    static func deltaBinaryPacked(_ r: inout ParquetBytes, count: Int) throws -> [Int64] {
        let blockSize = try r.varint()
        let miniblocks = try r.varint()
        let total = try r.varint()
        var value = try r.zigzag()
        guard blockSize > 0, blockSize % 128 == 0, blockSize <= 1 << 16, miniblocks > 0, miniblocks <= blockSize,
            blockSize % miniblocks == 0, (blockSize / miniblocks) % 32 == 0
        else {
            throw ParquetProblem("DELTA_BINARY_PACKED: block of \(blockSize) values in \(miniblocks) miniblocks")
        }
        guard total == UInt64(count) else {
            throw ParquetProblem("DELTA_BINARY_PACKED holds \(total) values where \(count) are expected")
        }
        var out: [Int64] = []
        guard count > 0 else { return out }
        out.reserveCapacity(count)
        out.append(value)
        let perMini = Int(blockSize / miniblocks)
        while out.count < count {
            let minDelta = try r.zigzag()
            let widths = try r.take(Int(miniblocks))
            for m in 0..<Int(miniblocks) where out.count < count {
                let w = Int(widths[m])
                guard w <= 64 else { throw ParquetProblem("DELTA_BINARY_PACKED: a miniblock of \(w)-bit deltas") }
                let data = try r.take(perMini * w / 8)
                for k in 0..<perMini where out.count < count {
                    value = value &+ minDelta &+ Int64(bitPattern: Self.bits(data, at: k * w, width: w))
                    out.append(value)
                }
            }
        }
        return out
    }

    /// The `width`-bit value (0...64) at bit `offset` of `data`, least significant bit first; the caller
    /// has checked that the bits lie within `data`.
    @inline(__always)
    static func bits(_ data: UnsafeRawBufferPointer, at offset: Int, width: Int) -> UInt64 {
        guard width > 0 else { return 0 }
        var i = offset >> 3
        let shift = offset & 7
        var v = UInt64(data[i]) >> UInt64(shift)
        var got = 8 - shift
        i += 1
        while got < width {
            v |= UInt64(data[i]) << UInt64(got)
            got += 8
            i += 1
        }
        return width == 64 ? v : v & ((1 << UInt64(width)) - 1)
    }
}
