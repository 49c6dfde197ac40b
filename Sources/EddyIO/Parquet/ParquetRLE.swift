@_spi(Host) import Eddy

/// A cursor over untrusted page bytes: every read checks the bytes left.
struct ParquetBytes: VarintCursor {
    static var overlongVarint: String { "a varint longer than 10 bytes" }

    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw ParquetProblem("page data ends early") }
        defer { position += 1 }
        return bytes[position]
    }

    /// A little-endian unsigned value of `count` bytes (0...8).
    mutating func littleEndian(_ count: Int) throws -> UInt64 {
        guard count <= remaining else { throw ParquetProblem("page data ends early") }
        var v: UInt64 = 0
        for k in 0..<count { v |= UInt64(bytes[position + k]) << (8 * UInt64(k)) }
        position += count
        return v
    }

    /// The next `count` bytes, as a view.
    mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else {
            throw ParquetProblem("\(count) bytes wanted, \(remaining) left in the page")
        }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    /// The rest of the bytes, as a view.
    mutating func rest() -> UnsafeRawBufferPointer {
        defer { position = bytes.count }
        return UnsafeRawBufferPointer(rebasing: bytes[position...])
    }
}

/// Parquet's RLE / bit-packing hybrid (definition levels, dictionary codes, booleans in v2 pages).
enum ParquetRLE {
    /// Decodes exactly `count` values of `bitWidth` bits (0...32) from `data`.
    /// - Throws: ``ParquetProblem`` when the runs end before `count` values.
    static func decode(_ data: UnsafeRawBufferPointer, bitWidth: Int, count: Int) throws -> [UInt32] {
        var out: [UInt32] = []
        _ = try decode(data, bitWidth: bitWidth, count: count, appendingTo: &out)
        return out
    }

    /// Decodes exactly `count` values of `bitWidth` bits (0...32) from `data`, appending them to `out`;
    /// the largest value decoded (0 when none).
    /// - Throws: ``ParquetProblem`` when the runs end before `count` values.
    static func decode(
        _ data: UnsafeRawBufferPointer, bitWidth: Int, count: Int, appendingTo out: inout [UInt32]
    ) throws -> UInt32 {
        guard (0...32).contains(bitWidth) else { throw ParquetProblem("RLE bit width \(bitWidth) is not in 0...32") }
        guard count >= 0 else { throw ParquetProblem("\(count) values wanted") }
        let base = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        var r = ParquetBytes(data)
        var filled = 0
        var largest: UInt32 = 0
        let valueBytes = (bitWidth + 7) / 8
        let mask: UInt64 = bitWidth == 32 ? 0xFFFF_FFFF : (1 << UInt64(bitWidth)) - 1
        try out.withUnsafeMutableBufferPointer { all in
            let out = UnsafeMutableBufferPointer(rebasing: all[base...])
            while filled < count {
                let header = try r.varint()
                if header & 1 == 0 {
                    let run = header >> 1
                    let value = UInt32(truncatingIfNeeded: try r.littleEndian(valueBytes))
                    guard UInt64(value) <= mask else {
                        throw ParquetProblem("an RLE run's value \(value) is wider than \(bitWidth) bits")
                    }
                    let n = Int(Swift.min(run, UInt64(count - filled)))
                    if value != 0 && n > 0 {
                        UnsafeMutableBufferPointer(rebasing: out[filled..<(filled + n)]).update(repeating: value)
                        largest = Swift.max(largest, value)
                    }
                    filled += n
                } else {
                    let groups = header >> 1
                    guard bitWidth > 0 else {
                        // Width 0 (a dictionary of one value): the groups take no bytes, every value is 0.
                        let left = UInt64(count - filled)
                        filled += groups >= (left + 7) / 8 ? Int(left) : Int(groups) * 8
                        continue
                    }
                    // Bytes of the groups, checked before multiplying (a hostile header can be 2^63).
                    guard groups <= UInt64(r.remaining) else {
                        throw ParquetProblem("\(groups) bit-packed groups with \(r.remaining) bytes left")
                    }
                    let byteCount = Int(groups) * bitWidth
                    let packed = try r.take(Swift.min(byteCount, r.remaining))
                    let values = Swift.min(Int(groups) * 8, count - filled)
                    guard values * bitWidth <= packed.count * 8 else {
                        throw ParquetProblem("bit-packed run cut short")
                    }
                    let high = unpack(packed, bitWidth: bitWidth, mask: mask, count: values, into: out, at: filled)
                    if high > largest {
                        // `high` bounds the values from above (their OR); the exact maximum only when needed.
                        for i in filled..<(filled + values) where out[i] > largest { largest = out[i] }
                    }
                    filled += values
                }
            }
        }
        guard filled == count else { throw ParquetProblem("RLE runs hold \(filled) values, \(count) expected") }
        return largest
    }

    /// Unpacks `count` values of `bitWidth` bits (1...32, `mask` their low bits set) from `packed`, which
    /// holds them all, into `out` from index `start`.
    /// - Returns: the values' OR, an upper bound of their maximum.
    @inline(__always)
    private static func unpack(
        _ packed: UnsafeRawBufferPointer, bitWidth: Int, mask: UInt64, count values: Int,
        into out: UnsafeMutableBufferPointer<UInt32>, at filled: Int
    ) -> UInt32 {
        // Value k starts at bit k * bitWidth: one unaligned 8-byte load holds it (width ≤ 32,
        // shift ≤ 7) while 8 bytes remain; the last few values read byte by byte.
        var high: UInt32 = 0
        var k = 0
        let width = UInt64(bitWidth)
        while k < values {
            let bit = k * bitWidth
            let byte = bit >> 3
            guard byte + 8 <= packed.count else { break }
            let word = UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: byte, as: UInt64.self))
            let v = UInt32(truncatingIfNeeded: (word >> UInt64(bit & 7)) & mask)
            out[filled + k] = v
            high |= v
            k += 1
        }
        while k < values {
            let bit = k * bitWidth
            var word: UInt64 = 0
            var b = bit >> 3
            var shift: UInt64 = 0
            while b < packed.count && shift < 64 && shift < UInt64(bit & 7) + width {
                word |= UInt64(packed[b]) << shift
                b += 1
                shift += 8
            }
            let v = UInt32(truncatingIfNeeded: (word >> UInt64(bit & 7)) & mask)
            out[filled + k] = v
            high |= v
            k += 1
        }
        return high
    }
}

/// A flat column chunk's definition levels as validity bits (bit `i` set: row `i` has a value), kept as
/// words here while pages are decoded: appending a level at a time through the SDK's builder cost a
/// quarter of a Parquet query.
struct ParquetLevels {
    private(set) var words: [UInt64]
    private(set) var count = 0
    private(set) var present = 0

    init(capacity: Int) {
        words = []
        words.reserveCapacity((capacity + 63) / 64)
    }

    /// Whether row `i` (< ``count``) has a value.
    @inline(__always) func isValid(_ i: Int) -> Bool { words[i >> 6] >> UInt64(i & 63) & 1 == 1 }

    var nulls: Int { count - present }

    /// Appends `n` levels of `bit`.
    mutating func append(_ bit: Bool, count n: Int) {
        guard n > 0 else { return }
        let end = count + n
        let needed = (end + 63) >> 6
        if words.count < needed { words.append(contentsOf: repeatElement(0, count: needed - words.count)) }
        if bit {
            var i = count
            while i < end {
                let w = i >> 6
                let from = i & 63
                let to = Swift.min(64, from + (end - i))
                let mask: UInt64 = (to == 64 ? ~0 : (1 << UInt64(to)) - 1) & ~((1 << UInt64(from)) - 1)
                words[w] |= mask
                i += to - from
            }
            present += n
        }
        count = end
    }

    /// Appends the low `n` (0...64) bits of `word` as levels.
    mutating func append(word: UInt64, count n: Int) {
        guard n > 0 else { return }
        let bits = n == 64 ? word : word & ((1 << UInt64(n)) - 1)
        let end = count + n
        let needed = (end + 63) >> 6
        if words.count < needed { words.append(contentsOf: repeatElement(0, count: needed - words.count)) }
        let shift = UInt64(count & 63)
        words[count >> 6] |= bits << shift
        if shift > 0 && shift + UInt64(n) > 64 { words[(count >> 6) + 1] |= bits >> (64 - shift) }
        present += bits.nonzeroBitCount
        count = end
    }

    /// Appends the first `n` (at most `packed.count * 8`) levels packed LSB first in `packed`, 64 at a
    /// time (a byte at a time cost a tenth of a query over nullable columns).
    mutating func append(packed: UnsafeRawBufferPointer, count n: Int) {
        guard n > 0 else { return }
        let end = count + n
        let needed = (end + 63) >> 6
        if words.count < needed { words.append(contentsOf: repeatElement(0, count: needed - words.count)) }
        let start = count
        var added = 0
        words.withUnsafeMutableBufferPointer { w in
            var i = 0
            while i < n {
                let take = Swift.min(64, n - i)
                let byte = i >> 3
                var bits: UInt64 = 0
                if byte + 8 <= packed.count {
                    bits = UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: byte, as: UInt64.self))
                } else {
                    for b in 0..<Swift.min(8, packed.count - byte) { bits |= UInt64(packed[byte + b]) << UInt64(8 * b) }
                }
                if take < 64 { bits &= (1 << UInt64(take)) - 1 }
                let at = start + i
                let shift = UInt64(at & 63)
                w[at >> 6] |= bits << shift
                if shift > 0 && shift + UInt64(take) > 64 { w[(at >> 6) + 1] |= bits >> (64 - shift) }
                added += bits.nonzeroBitCount
                i += take
            }
        }
        present += added
        count = end
    }

    /// Decodes exactly `n` definition levels (bit width 1: 0 a null, 1 a value) from `data` and
    /// appends them; the number of values among them.
    /// - Throws: ``ParquetProblem`` when the runs end before `n` levels, or a level is not 0 or 1.
    @discardableResult
    mutating func decode(_ data: UnsafeRawBufferPointer, count n: Int) throws -> Int {
        var r = ParquetBytes(data)
        let before = present
        var filled = 0
        while filled < n {
            let header = try r.varint()
            if header & 1 == 0 {
                let value = try r.byte()
                guard value <= 1 else { throw ParquetProblem("a definition level \(value) in a flat column") }
                let run = Int(Swift.min(header >> 1, UInt64(n - filled)))
                append(value == 1, count: run)
                filled += run
            } else {
                let groups = header >> 1
                guard groups <= UInt64(r.remaining) else {
                    throw ParquetProblem("\(groups) bit-packed groups with \(r.remaining) bytes left")
                }
                let packed = try r.take(Int(groups))
                let take = Swift.min(packed.count * 8, n - filled)
                append(packed: packed, count: take)
                filled += take
            }
        }
        return present - before
    }

    /// The levels as an engine validity: all valid, all null, or a bitmap over the words.
    func validity() throws -> Validity {
        if present == count { return .allValid }
        if present == 0 { return .allInvalid }
        return .bitmap(try Bitmap(buffer: Buffer(copying: words), offset: 0, count: count))
    }
}
