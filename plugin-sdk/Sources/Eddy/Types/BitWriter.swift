/// Bits written a word at a time straight into the memory of the bitmap being built: what
/// ``BoolArray/Builder`` appends into. Unlike ``BitmapBuilder`` (whose layout its inlinable
/// `append(_:)` fixes), nothing here is visible to plugins, so it can keep words in the result's own
/// allocation and skip the growable array's checks: a run costs a few stores.
struct BitWriter {
    private(set) var storage: BufferStorage
    private var words: UnsafeMutablePointer<UInt64>
    /// Words allocated.
    private var capacity: Int
    /// Bits written; the bits of the last word past it are zero.
    private(set) var count = 0

    init(capacity bits: Int) {
        capacity = Swift.max((bits + 63) / 64, 1)
        storage = BufferStorage(byteCount: capacity * 8)
        words = storage.pointer.bindMemory(to: UInt64.self, capacity: capacity)
    }

    /// Bits that fit the allocation.
    var bitCapacity: Int { capacity * 64 }

    /// Room for `n` more bits in memory this writer alone holds (a copy of a builder shares it until
    /// one of them writes).
    @inline(__always)
    private mutating func reserve(_ n: Int) {
        if (count &+ n &+ 63) >> 6 <= capacity && isKnownUniquelyReferenced(&storage) { return }
        grow(n)
    }

    private mutating func grow(_ n: Int) {
        let needed = (count + n + 63) / 64
        let wanted = needed <= capacity ? capacity : Swift.max(needed, capacity * 2)
        let grown = BufferStorage(byteCount: wanted * 8)  // zeroed: runs of false write nothing
        grown.pointer.copyMemory(from: storage.pointer, byteCount: capacity * 8)
        storage = grown
        words = grown.pointer.bindMemory(to: UInt64.self, capacity: wanted)
        capacity = wanted
    }

    /// Appends `n` (at least 0) copies of `bit`.
    mutating func append(_ bit: Bool, count n: Int) {
        if n <= 0 { return }
        reserve(n)
        if bit {
            var i = count
            let end = count + n
            while i < end {
                let used = i & 63
                let take = Swift.min(64 - used, end - i)
                words[i >> 6] |= BitmapBuilder.lowBits(take) << UInt64(used)
                i += take
            }
        }
        count += n
    }

    /// Appends the low `n` (0...64) bits of `word`.
    mutating func append(word: UInt64, count n: Int) {
        if n <= 0 { return }
        reserve(n)
        let w = word & BitmapBuilder.lowBits(n)
        let used = count & 63
        words[count >> 6] |= w << UInt64(used)
        if used + n > 64 { words[(count >> 6) + 1] = w >> UInt64(64 - used) }
        count += n
    }

    /// Appends every bit of `bitmap`.
    mutating func append(contentsOf bitmap: Bitmap) {
        reserve(bitmap.count)
        var i = 0
        while i < bitmap.count {
            let n = Swift.min(64, bitmap.count - i)
            append(word: bitmap.word(at: i), count: n)
            i += 64
        }
    }

    /// The bits written, sharing this writer's memory (the writer must not be written to again).
    func finish() -> Bitmap {
        Bitmap(
            uncheckedBuffer: Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: (count + 63) / 64 * 8),
            offset: 0, count: count)
    }
}
