internal import EddyKernelsC

/// Which elements of an array are valid (not null).
public enum Validity: Sendable {
    /// Every element is valid (always the case for a non-nullable type).
    case allValid
    /// Every element is null.
    case allInvalid
    /// Bit `i` set means element `i` is valid.
    case bitmap(Bitmap)

    /// Whether element `index` is valid.
    @inlinable
    public func isValid(_ index: Int) -> Bool {
        switch self {
        case .allValid: true
        case .allInvalid: false
        case .bitmap(let b): b[index]
        }
    }

    /// Number of nulls among `count` elements.
    public func nullCount(_ count: Int) -> Int {
        switch self {
        case .allValid: 0
        case .allInvalid: count
        case .bitmap(let b): count - b.trueCount
        }
    }

    /// The validity of elements `start ..< start + length`.
    /// - Throws: ``EddyError/Code/outOfBounds`` when a bitmap does not hold the range.
    public func slice(_ start: Int, _ length: Int) throws -> Validity {
        switch self {
        case .allValid, .allInvalid: self
        case .bitmap(let b): .bitmap(try b.slice(start, length))
        }
    }

    /// ``slice(_:_:)`` where the engine knows the range is within the bitmap.
    func uncheckedSlice(_ start: Int, _ length: Int) -> Validity {
        switch self {
        case .allValid, .allInvalid: self
        case .bitmap(let b): .bitmap(b.uncheckedSlice(start, length))
        }
    }

    /// The validity as a bitmap of `count` bits.
    public func toBitmap(count: Int) -> Bitmap {
        switch self {
        case .allValid: Bitmap(repeating: true, count: count)
        case .allInvalid: Bitmap(repeating: false, count: count)
        case .bitmap(let b): b
        }
    }

    /// Valid where both are valid.
    public func and(_ other: Validity, count: Int) -> Validity {
        switch (self, other) {
        case (.allValid, _): other
        case (_, .allValid): self
        case (.allInvalid, _), (_, .allInvalid): .allInvalid
        case (.bitmap(let a), .bitmap(let b)): .bitmap(a & b)
        }
    }

    /// A normalised form: a bitmap that is all set or all clear becomes `.allValid` or `.allInvalid`.
    public func normalized(count: Int) -> Validity {
        guard case .bitmap(let b) = self else { return self }
        let t = b.trueCount
        if t == count { return .allValid }
        if t == 0 { return .allInvalid }
        return self
    }

    /// The validity of the elements at `indices` (each in range).
    public func take(_ indices: [Int]) -> Validity {
        switch self {
        case .allValid, .allInvalid: self
        case .bitmap(let b): .bitmap(Bitmap(count: indices.count) { b[indices[$0]] })
        }
    }

    /// The validity of the elements whose mask bit is set.
    public func filter(_ mask: Bitmap, resultCount: Int) -> Validity {
        switch self {
        case .allValid, .allInvalid: return self
        case .bitmap(let b):
            return .bitmap(Self.compress(b, keeping: mask, resultCount: resultCount))
        }
    }

    /// The bits of `bits` where `mask` is set, in order, 64 rows at a time: each word's kept bits are
    /// gathered (PEXT in C; all 64 at once when the mask keeps the whole word) and appended.
    /// Rows past either bitmap's end, or past `resultCount`, are not taken; a result short of
    /// `resultCount` is padded with zeros.
    static func compress(_ bits: Bitmap, keeping mask: Bitmap, resultCount: Int) -> Bitmap {
        let n = Swift.min(bits.count, mask.count)
        let count = Swift.max(resultCount, 0)
        let words = (count + 63) / 64
        // Zeroed: rows the mask does not reach (it keeps fewer than resultCount) read as null.
        let storage = BufferStorage(byteCount: words * 8)
        withExtendedLifetime((bits, mask)) {
            _ = eddy_bits_compress(
                bits.buffer.baseAddress.assumingMemoryBound(to: UInt8.self), bits.buffer.byteCount, bits.offset,
                mask.buffer.baseAddress.assumingMemoryBound(to: UInt8.self), mask.buffer.byteCount, mask.offset, n,
                storage.pointer.bindMemory(to: UInt64.self, capacity: Swift.max(words, 1)), count)
        }
        return Bitmap(
            uncheckedBuffer: Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: words * 8), offset: 0,
            count: count)
    }
}

extension Validity {
    /// True for ``allValid`` only: a bitmap is not inspected (a bitmap with every bit set still
    /// does not belong in a non-nullable array).
    public var isAllValid: Bool { if case .allValid = self { true } else { false } }
}

/// A validity's bits read through a raw pointer, for loops over many elements: copying a `.bitmap`
/// validity per element costs a retain and a release of its buffer. The caller keeps the validity
/// alive (`withExtendedLifetime`) while this is used.
struct ValidityBits {
    /// 0: all valid, 1: all null, 2: bitmap.
    let kind: UInt8
    let base: UnsafePointer<UInt8>?
    let offset: Int

    init(_ v: Validity) {
        switch v {
        case .allValid: (kind, base, offset) = (0, nil, 0)
        case .allInvalid: (kind, base, offset) = (1, nil, 0)
        case .bitmap(let b):
            (kind, base, offset) = (2, b.buffer.baseAddress.assumingMemoryBound(to: UInt8.self), b.offset)
        }
    }

    @inline(__always)
    func isValid(_ i: Int) -> Bool {
        switch kind {
        case 0: return true
        case 1: return false
        default:
            let bit = offset &+ i
            return (base.unsafelyUnwrapped[bit >> 3] >> UInt8(bit & 7)) & 1 == 1
        }
    }
}
