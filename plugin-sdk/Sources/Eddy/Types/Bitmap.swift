/// A packed run of bits, least significant bit first (Arrow's layout), possibly starting mid-byte.
@frozen
public struct Bitmap: Sendable {
    /// The bytes holding the bits: bit `i` is bit `(offset + i) % 8` of byte `(offset + i) / 8`.
    public let buffer: Buffer
    /// Offset of the first bit into `buffer`, in bits.
    public let offset: Int
    /// Number of bits.
    public let count: Int

    /// - Throws: ``EddyError/Code/outOfBounds`` when the bits do not lie within the buffer.
    public init(buffer: Buffer, offset: Int, count: Int) throws {
        let (end, o1) = offset.addingReportingOverflow(count)
        let (padded, o2) = end.addingReportingOverflow(7)
        guard offset >= 0, count >= 0, !o1, !o2, padded / 8 <= buffer.byteCount else {
            throw EddyError(
                .outOfBounds, "bits \(offset)..<\(offset &+ count) do not fit a buffer of \(buffer.byteCount) bytes")
        }
        self.init(uncheckedBuffer: buffer, offset: offset, count: count)
    }

    /// The checks of ``init(buffer:offset:count:)`` hold by construction.
    @inlinable
    init(uncheckedBuffer buffer: Buffer, offset: Int, count: Int) {
        self.buffer = buffer
        self.offset = offset
        self.count = count
    }

    /// A bitmap of `count` bits all set to `value`.
    public init(repeating value: Bool, count: Int) {
        let words = (count + 63) / 64
        let storage = BufferStorage(byteCount: words * 8)
        if value {
            let p = storage.pointer.bindMemory(to: UInt64.self, capacity: max(words, 1))
            for w in 0..<words { p[w] = ~0 }
        }
        self.init(
            uncheckedBuffer: Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: words * 8), offset: 0,
            count: count)
    }

    /// A bitmap of the given bits.
    public init(_ bits: some Sequence<Bool>) {
        var builder = BitmapBuilder(capacity: bits.underestimatedCount)
        for b in bits { builder.append(b) }
        self = builder.finish()
    }

    /// A bitmap whose bit `i` is `body(i)`, written a word at a time.
    @inlinable
    public init(count: Int, _ body: (Int) throws -> Bool) rethrows {
        let words = (count + 63) / 64
        let storage = BufferStorage(uninitializedByteCount: words * 8)
        let p = storage.pointer.bindMemory(to: UInt64.self, capacity: max(words, 1))
        var i = 0
        for w in 0..<words {
            var word: UInt64 = 0
            let end = Swift.min(64, count - i)
            for b in 0..<end where try body(i + b) { word |= 1 << UInt64(b) }
            p[w] = word
            i += 64
        }
        self.init(
            uncheckedBuffer: Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: words * 8), offset: 0,
            count: count)
    }

    /// The bit at `index`.
    @inlinable
    public subscript(index: Int) -> Bool {
        let bit = offset + index
        return (buffer.baseAddress.load(fromByteOffset: bit >> 3, as: UInt8.self) >> UInt8(bit & 7)) & 1 == 1
    }

    /// A zero-copy view of `length` bits starting at `start`.
    /// - Throws: ``EddyError/Code/outOfBounds`` when the range is not within the bitmap.
    public func slice(_ start: Int, _ length: Int) throws -> Bitmap {
        try requireRange(
            start, length, within: count, "bits \(start)..<\(start &+ length) out of bounds for a bitmap of \(count)")
        return uncheckedSlice(start, length)
    }

    /// ``slice(_:_:)`` where the engine knows the range is within the bitmap.
    func uncheckedSlice(_ start: Int, _ length: Int) -> Bitmap {
        let bit = offset + start
        let byte = bit >> 3
        let newBytes = (bit & 7 + length + 7) / 8
        return Bitmap(
            uncheckedBuffer: buffer.uncheckedSlice(byteOffset: byte, byteCount: newBytes), offset: bit & 7,
            count: length)
    }

    /// The 64 bits starting at bit `index` of this bitmap (bits past the end are zero).
    @inlinable
    public func word(at index: Int) -> UInt64 {
        let bit = offset + index
        let byte = bit >> 3
        let shift = UInt64(bit & 7)
        let avail = buffer.byteCount - byte
        var raw: UInt64 = 0
        if avail >= 8 {
            raw = buffer.baseAddress.loadUnaligned(fromByteOffset: byte, as: UInt64.self)
            if shift != 0 {
                let next = avail > 8 ? UInt64(buffer.baseAddress.load(fromByteOffset: byte + 8, as: UInt8.self)) : 0
                raw = (raw >> shift) | (next << (64 - shift))
            }
        } else {
            for k in 0..<avail {
                raw |= UInt64(buffer.baseAddress.load(fromByteOffset: byte + k, as: UInt8.self)) << UInt64(8 * k)
            }
            raw >>= shift
        }
        let remaining = count - index
        if remaining < 64 { raw &= remaining <= 0 ? 0 : (UInt64(1) << UInt64(remaining)) - 1 }
        return raw
    }

    /// The number of set bits.
    public var trueCount: Int {
        var n = 0
        var i = 0
        while i < count {
            n += word(at: i).nonzeroBitCount
            i += 64
        }
        return n
    }

    /// A copy starting at bit offset 0.
    public func aligned() -> Bitmap {
        if offset == 0 { return self }
        return mapWords { $0 }
    }

    /// A new bitmap built word by word from this one.
    @inlinable
    public func mapWords(_ f: (UInt64) -> UInt64) -> Bitmap {
        let words = (count + 63) / 64
        let buf = Buffer.build(count: words, of: UInt64.self) { out in
            for w in 0..<words { out[w] = f(word(at: w * 64)) }
            if count % 64 != 0, words > 0 { out[words - 1] &= (UInt64(1) << UInt64(count % 64)) - 1 }
        }
        return Bitmap(uncheckedBuffer: buf, offset: 0, count: count)
    }

    /// A new bitmap combining this one with `other` word by word.
    @inlinable
    public func zipWords(_ other: Bitmap, _ f: (UInt64, UInt64) -> UInt64) -> Bitmap {
        precondition(other.count == count, "bitmap lengths differ")
        let words = (count + 63) / 64
        let buf = Buffer.build(count: words, of: UInt64.self) { out in
            for w in 0..<words { out[w] = f(word(at: w * 64), other.word(at: w * 64)) }
            if count % 64 != 0, words > 0 { out[words - 1] &= (UInt64(1) << UInt64(count % 64)) - 1 }
        }
        return Bitmap(uncheckedBuffer: buf, offset: 0, count: count)
    }

    /// Bitwise and of two bitmaps of the same length (traps otherwise).
    public static func & (a: Bitmap, b: Bitmap) -> Bitmap { a.combinedWords(b, &) }
    /// Bitwise or of two bitmaps of the same length (traps otherwise).
    public static func | (a: Bitmap, b: Bitmap) -> Bitmap { a.combinedWords(b, |) }
    /// Bitwise not: every bit of `a` flipped.
    public static prefix func ~ (a: Bitmap) -> Bitmap { a.mapWords(~) }

    /// ``zipWords(_:_:)`` reading whole words straight from memory when both bitmaps start on a byte
    /// (the offsets the engine builds), else word by word through ``word(at:)``. Not inlinable: the
    /// inlinable `zipWords` is compiled into plugins and stays as it was.
    func combinedWords(_ other: Bitmap, _ f: (UInt64, UInt64) -> UInt64) -> Bitmap {
        precondition(other.count == count, "bitmap lengths differ")
        let words = (count + 63) / 64
        guard
            offset & 7 == 0 && other.offset & 7 == 0 && buffer.byteCount - (offset >> 3) >= words * 8
                && other.buffer.byteCount - (other.offset >> 3) >= words * 8
        else { return zipWords(other, f) }
        let buf = Buffer.build(count: words, of: UInt64.self) { out in
            withExtendedLifetime((buffer.storage, other.buffer.storage)) {
                let a = buffer.baseAddress + (offset >> 3)
                let b = other.buffer.baseAddress + (other.offset >> 3)
                for w in 0..<words {
                    out[w] = f(
                        a.loadUnaligned(fromByteOffset: w &* 8, as: UInt64.self),
                        b.loadUnaligned(fromByteOffset: w &* 8, as: UInt64.self))
                }
            }
            if count % 64 != 0, words > 0 { out[words - 1] &= (UInt64(1) << UInt64(count % 64)) - 1 }
        }
        return Bitmap(uncheckedBuffer: buf, offset: 0, count: count)
    }

    /// Calls `body` with the index of every set bit, in order.
    @inlinable
    public func forEachSetBit(_ body: (Int) throws -> Void) rethrows {
        let words = (count + 63) / 64
        if offset == 0 && buffer.byteCount >= words * 8 && words > 0 {
            // Whole words straight from memory; only the last needs masking.
            try withExtendedLifetime(buffer.storage) {
                let p = buffer.baseAddress.assumingMemoryBound(to: UInt64.self)
                for w in 0..<words {
                    var word = p[w]
                    if w == words - 1 && count & 63 != 0 { word &= (UInt64(1) << UInt64(count & 63)) - 1 }
                    let base = w &* 64
                    while word != 0 {
                        try body(base &+ word.trailingZeroBitCount)
                        word &= word &- 1
                    }
                }
            }
            return
        }
        var i = 0
        while i < count {
            var w = word(at: i)
            while w != 0 {
                try body(i + w.trailingZeroBitCount)
                w &= w &- 1
            }
            i += 64
        }
    }

    /// The bits as an array of `Bool`.
    public var bools: [Bool] { (0..<count).map { self[$0] } }
}

/// Appends bits one at a time or a word at a time.
public struct BitmapBuilder {
    @usableFromInline var words: [UInt64]
    @usableFromInline var current: UInt64 = 0
    @usableFromInline var count: Int = 0

    /// An empty builder with room reserved for `capacity` bits.
    public init(capacity: Int = 0) {
        words = []
        words.reserveCapacity((capacity + 63) / 64)
    }

    /// Appends one bit.
    @inlinable
    public mutating func append(_ bit: Bool) {
        if bit { current |= 1 << UInt64(count & 63) }
        count += 1
        if count & 63 == 0 {
            words.append(current)
            current = 0
        }
    }

    /// Appends `n` copies of `bit`, a whole word at a time past the first partial word: the way to
    /// fill a range of a result (a run, a constant stretch) at memory speed.
    ///
    /// - Precondition: `n >= 0`.
    public mutating func append(_ bit: Bool, count n: Int) {
        precondition(n >= 0, "BitmapBuilder.append(_:count:) with a negative count \(n)")
        var remaining = n
        let used = count & 63
        if used != 0 && remaining > 0 {
            let take = Swift.min(64 - used, remaining)
            if bit { current |= Self.lowBits(take) << UInt64(used) }
            count += take
            remaining -= take
            if count & 63 == 0 {
                words.append(current)
                current = 0
            }
        }
        let whole = remaining >> 6
        if whole > 0 {
            // A few words one by one: appending a repeated sequence costs more than it saves for them.
            if whole < 8 {
                let fill: UInt64 = bit ? ~0 : 0
                for _ in 0..<whole { words.append(fill) }
            } else {
                words.append(contentsOf: repeatElement(bit ? ~0 : 0, count: whole))
            }
            count += whole << 6
            remaining -= whole << 6
        }
        if remaining > 0 {
            if bit { current = Self.lowBits(remaining) }
            count += remaining
        }
    }

    /// Appends the low `count` bits of `word`, least significant first (bits above `count` are
    /// ignored): the way to copy a result computed 64 rows at a time.
    ///
    /// - Throws: ``EddyError/Code/invalidArgument`` when `count` is not within `0...64`.
    public mutating func append(word: UInt64, count n: Int = 64) throws {
        guard n >= 0 && n <= 64 else {
            throw EddyError(.invalidArgument, "append(word:count:) takes 0...64 bits, not \(n)")
        }
        appendUnchecked(word: word, count: n)
    }

    /// ``append(word:count:)`` for a count already known to be within `0...64`.
    mutating func appendUnchecked(word: UInt64, count n: Int) {
        if n == 0 { return }
        let w = word & Self.lowBits(n)
        let used = count & 63
        current |= w << UInt64(used)
        count += n
        if used + n >= 64 {
            words.append(current)
            // The bits of `w` that did not fit the word just completed (none when `used` is 0).
            current = used == 0 ? 0 : w >> UInt64(64 - used)
        }
    }

    /// Appends every bit of `bitmap` (for instance a slice of another array's bits), a word at a time.
    public mutating func append(contentsOf bitmap: Bitmap) {
        words.reserveCapacity((count + bitmap.count + 63) / 64)
        var i = 0
        while i < bitmap.count {
            let n = Swift.min(64, bitmap.count - i)
            appendUnchecked(word: bitmap.word(at: i), count: n)
            i += 64
        }
    }

    /// The number of bits appended so far.
    public var bitCount: Int { count }

    /// A word whose low `n` bits (0...64) are set.
    static func lowBits(_ n: Int) -> UInt64 { n >= 64 ? ~0 : (UInt64(1) << UInt64(n)) &- 1 }

    /// A bitmap of the bits appended so far, starting at bit offset 0.
    public mutating func finish() -> Bitmap {
        var all = words
        if count & 63 != 0 { all.append(current) }
        return Bitmap(uncheckedBuffer: Buffer(copying: all), offset: 0, count: count)
    }
}
