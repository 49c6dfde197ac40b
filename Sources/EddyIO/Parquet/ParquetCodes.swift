internal import CEddyCodecs
@_spi(Host) import Eddy

/// A column chunk's dictionary codes, decoded straight into the buffer the engine's code array keeps:
/// one code per non-null value, in the narrowest unsigned type that holds the dictionary's positions,
/// spread to one per row (0 in null rows) at the end. Decoding into `[UInt32]` and narrowing after
/// cost a third of a dictionary-heavy query (two passes and a zero fill over every row).
struct ParquetCodes {
    private let storage: BufferStorage
    /// Bytes per code: 1, 2 or 4.
    let width: Int
    let dictionarySize: Int
    /// Codes room is made for: the chunk's rows.
    let capacity: Int
    /// Codes decoded so far (non-null values only).
    private(set) var count = 0

    init(dictionarySize: Int, rows: Int) throws {
        width = dictionarySize <= 256 ? 1 : dictionarySize <= 65_536 ? 2 : 4
        let (bytes, overflow) = rows.multipliedReportingOverflow(by: width)
        guard rows >= 0, !overflow else { throw ParquetProblem("\(rows) rows of dictionary codes") }
        storage = BufferStorage(uninitializedByteCount: Swift.max(bytes, 1))
        self.dictionarySize = dictionarySize
        capacity = rows
    }

    var ptype: PType { width == 1 ? .uint8 : width == 2 ? .uint16 : .uint32 }

    /// Decodes exactly `n` codes of `bitWidth` bits (0...32) in the RLE / bit-packing hybrid from `data`
    /// and appends them; with `keep` (a bit per code), only the codes kept: a bit-packed run where few
    /// are kept unpacks only those.
    /// - Throws: ``ParquetProblem`` when the runs end early, a run's value is wider than `bitWidth`, or a
    ///   code is not below the dictionary's size (checked by the page's largest code).
    mutating func decode(_ data: UnsafeRawBufferPointer, bitWidth: Int, count n: Int, keep: ParquetRowKeep? = nil)
        throws
    {
        guard (0...32).contains(bitWidth) else { throw ParquetProblem("RLE bit width \(bitWidth) is not in 0...32") }
        guard n >= 0, n <= capacity - count, keep.map({ $0.count == n }) ?? true else {
            throw ParquetProblem("\(n) codes wanted, room for \(capacity - count) in the chunk")
        }
        let out = storage.pointer + count * width
        var r = ParquetBytes(data)
        var filled = 0
        // Codes written at `out` (all of them, or those kept): always at most `filled`.
        var written = 0
        var largest: UInt32 = 0
        let valueBytes = (bitWidth + 7) / 8
        let mask: UInt64 = bitWidth == 32 ? 0xFFFF_FFFF : (1 << UInt64(bitWidth)) - 1
        while filled < n {
            let header = try r.varint()
            if header & 1 == 0 {
                let value = try r.littleEndian(valueBytes)
                guard value <= mask else {
                    throw ParquetProblem("an RLE run's value \(value) is wider than \(bitWidth) bits")
                }
                let run = Int(Swift.min(header >> 1, UInt64(n - filled)))
                let code = UInt32(truncatingIfNeeded: value)
                let kept = keep?.count(in: filled..<(filled + run)) ?? run
                if kept > 0 {
                    fill(out, from: written, count: kept, with: code)
                    largest = Swift.max(largest, code)
                }
                written += kept
                filled += run
            } else {
                let groups = header >> 1
                guard bitWidth > 0 else {
                    // Width 0 (a dictionary of one value): the groups take no bytes, every code is 0.
                    let left = UInt64(n - filled)
                    let run = groups >= (left + 7) / 8 ? Int(left) : Int(groups) * 8
                    let kept = keep?.count(in: filled..<(filled + run)) ?? run
                    fill(out, from: written, count: kept, with: 0)
                    written += kept
                    filled += run
                    continue
                }
                // Bytes of the groups, checked before multiplying (a hostile header can be 2^63).
                guard groups <= UInt64(r.remaining) else {
                    throw ParquetProblem("\(groups) bit-packed groups with \(r.remaining) bytes left")
                }
                let packed = try r.take(Swift.min(Int(groups) * bitWidth, r.remaining))
                let values = Swift.min(Int(groups) * 8, n - filled)
                guard values * bitWidth <= packed.count * 8, let source = packed.baseAddress else {
                    throw ParquetProblem("bit-packed run cut short")
                }
                let run = filled..<(filled + values)
                let kept = keep?.count(in: run) ?? values
                let high = unpack(
                    packed, source, bitWidth: bitWidth, rows: run, kept: kept, keep: keep, into: out, at: written)
                largest = Swift.max(largest, high)
                written += kept
                filled += values
            }
        }
        guard filled == n else { throw ParquetProblem("RLE runs hold \(filled) values, \(n) expected") }
        guard written == 0 || Int(largest) < dictionarySize else {
            throw ParquetProblem("dictionary code \(largest) for a dictionary of \(dictionarySize) values")
        }
        count += written
    }

    /// The codes of one bit-packed run, `bitWidth` bits each in `packed` (starting at `source`), of the
    /// page's rows `rows`, `kept` of them kept by `keep` (all without it): the kept ones written from code
    /// `written` of `out`.
    /// - Returns: the largest code unpacked, 0 when none.
    @inline(__always)
    private func unpack(
        _ packed: UnsafeRawBufferPointer, _ source: UnsafeRawPointer, bitWidth: Int, rows run: Range<Int>,
        kept: Int, keep: ParquetRowKeep?, into out: UnsafeMutableRawPointer, at written: Int
    ) -> UInt32 {
        let filled = run.lowerBound
        let values = run.count
        var largest: UInt32 = 0
        if kept * 4 >= values {
            // Most are kept: all unpacked where the kept ones go (`written + values` stays within
            // the page's room, as `written <= filled`), then the kept ones moved down.
            largest = eddy_unpack_bits(
                source.assumingMemoryBound(to: UInt8.self), packed.count, UInt32(bitWidth), values,
                out + written * width, UInt32(width))
            if let keep, kept < values {
                var t = written
                keep.forEachKept(in: run) { i in
                    move(out, from: written + i - filled, to: t)
                    t += 1
                }
            }
        } else if let keep {
            // Few are kept: only those are unpacked (their bits lie within `packed`, checked by the caller).
            var t = written
            keep.forEachKept(in: run) { i in
                let code = UInt32(
                    truncatingIfNeeded: ParquetPhysicalValues.bits(
                        packed, at: (i - filled) * bitWidth, width: bitWidth))
                store(out, at: t, code)
                largest = Swift.max(largest, code)
                t += 1
            }
        }
        return largest
    }

    @inline(__always)
    private func store(_ out: UnsafeMutableRawPointer, at i: Int, _ code: UInt32) {
        switch width {
        case 1: out.storeBytes(of: UInt8(truncatingIfNeeded: code), toByteOffset: i, as: UInt8.self)
        case 2: out.storeBytes(of: UInt16(truncatingIfNeeded: code), toByteOffset: i * 2, as: UInt16.self)
        default: out.storeBytes(of: code, toByteOffset: i * 4, as: UInt32.self)
        }
    }

    @inline(__always)
    private func move(_ out: UnsafeMutableRawPointer, from: Int, to: Int) {
        switch width {
        case 1: out.storeBytes(of: out.load(fromByteOffset: from, as: UInt8.self), toByteOffset: to, as: UInt8.self)
        case 2:
            out.storeBytes(
                of: out.load(fromByteOffset: from * 2, as: UInt16.self), toByteOffset: to * 2, as: UInt16.self)
        default:
            out.storeBytes(
                of: out.load(fromByteOffset: from * 4, as: UInt32.self), toByteOffset: to * 4, as: UInt32.self)
        }
    }

    private func fill(_ out: UnsafeMutableRawPointer, from start: Int, count run: Int, with code: UInt32) {
        switch width {
        case 1:
            (out.assumingMemoryBound(to: UInt8.self) + start).initialize(
                repeating: UInt8(truncatingIfNeeded: code), count: run)
        case 2:
            (out.assumingMemoryBound(to: UInt16.self) + start).initialize(
                repeating: UInt16(truncatingIfNeeded: code), count: run)
        default: (out.assumingMemoryBound(to: UInt32.self) + start).initialize(repeating: code, count: run)
        }
    }

    /// The codes decoded so far, widened (a chunk whose later pages fell back to plain values).
    var all: [UInt32] {
        let p = storage.pointer
        switch width {
        case 1: return (0..<count).map { UInt32(p.load(fromByteOffset: $0, as: UInt8.self)) }
        case 2: return (0..<count).map { UInt32(p.load(fromByteOffset: $0 * 2, as: UInt16.self)) }
        default: return (0..<count).map { p.load(fromByteOffset: $0 * 4, as: UInt32.self) }
        }
    }

    /// The codes as an array of one code per row, spread in place to the valid rows (0 in the others).
    /// - Throws: ``ParquetProblem`` unless there is one code per non-null row.
    func array(levels: ParquetLevels?, nullability: Nullability, rows: Int) throws -> PrimitiveArray {
        let expected = levels?.present ?? rows
        guard rows <= capacity, count == expected, levels.map({ $0.count == rows }) ?? true else {
            throw ParquetProblem("\(count) codes decoded for \(expected) non-null rows")
        }
        if let levels, levels.nulls > 0 {
            switch width {
            case 1: Self.spread(storage.pointer.assumingMemoryBound(to: UInt8.self), levels, rows, count)
            case 2: Self.spread(storage.pointer.assumingMemoryBound(to: UInt16.self), levels, rows, count)
            default: Self.spread(storage.pointer.assumingMemoryBound(to: UInt32.self), levels, rows, count)
            }
        }
        let validity = try levels?.validity() ?? .allValid
        let buffer = try Buffer(storage: storage, byteOffset: 0, byteCount: rows * width)
        return try PrimitiveArray(
            ptype: ptype, buffer: buffer, count: rows, validity: validity, nullability: nullability)
    }

    /// Moves the `present` values at the front of `p` to the valid rows, back to front (a value never
    /// moves down), writing 0 in null rows; stops once the rows left are all valid (already in place).
    private static func spread<T: FixedWidthInteger>(
        _ p: UnsafeMutablePointer<T>, _ levels: ParquetLevels, _ rows: Int, _ present: Int
    ) {
        var k = present
        var i = rows
        while i > k {
            i -= 1
            if levels.isValid(i) {
                k -= 1
                p[i] = p[k]
            } else {
                p[i] = 0
            }
        }
    }
}
