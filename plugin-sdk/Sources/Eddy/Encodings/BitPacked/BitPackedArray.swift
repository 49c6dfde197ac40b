internal import EddyKernelsC

/// Compressed integers packed into `bitWidth` bits each, least significant bit first, with patches
/// for the few values that do not fit.
///
/// Element `i` is the packed value at position `offset + i`, unless a patch covers that position.
/// Patch positions are absolute (they ignore `offset`), sorted and unique.
public final class BitPackedArray: ArrayNode {
    public static let id = EncodingID("eddy.bitpacked")
    /// The integer type of the values.
    public let ptype: PType
    /// Bits per packed value, in 0...64; at width 0 every unpatched value is zero.
    public let bitWidth: Int
    /// Packed values as little-endian `UInt64` words: always a whole number of words holding every packed
    /// position (a buffer given shorter is copied into one that is, zero-filled), so that whole 64-bit words
    /// may be read up to the last one a value touches.
    public let packed: Buffer
    /// Position of element 0 in the packed stream.
    public let offset: Int
    public let count: Int
    /// Which elements are valid, indexed by element (not by packed position); null slots may hold any bits.
    public let validity: Validity
    /// Absolute positions of values stored outside the packed stream.
    public let patchIndices: [Int]
    /// The patched values, as a canonical array of `ptype`.
    public let patchValues: PrimitiveArray?
    public let dtype: DType

    /// An array of `count` elements whose element 0 is at packed position `offset`; `packed` must hold at
    /// least `(offset + count) * bitWidth` bits. `patchIndices` (absolute, sorted, unique) and the length of
    /// `validity` are not checked; `patchValues` holds one value per patch index.
    /// - Throws: ``EddyError/Code/typeMismatch`` for a non-integer `ptype`; ``EddyError/Code/invalidArgument``
    ///   for a width outside 0...64, a `packed` buffer too small, or patch indices and values of different counts.
    public init(
        ptype: PType, bitWidth: Int, packed: Buffer, offset: Int, count: Int, validity: Validity,
        nullability: Nullability, patchIndices: [Int] = [], patchValues: PrimitiveArray? = nil
    ) throws {
        guard ptype.isInteger else { throw EddyError(.typeMismatch, "bit-packing needs integers, got \(ptype)") }
        guard (0...64).contains(bitWidth) else {
            throw EddyError(.invalidArgument, "bit width \(bitWidth) not in 0...64")
        }
        let (end, o1) = offset.addingReportingOverflow(count)
        let (bits, o2) = end.multipliedReportingOverflow(by: bitWidth)
        guard offset >= 0, count >= 0, !o1, !o2, packed.byteCount >= bits / 8 + (bits % 8 == 0 ? 0 : 1) else {
            throw EddyError(
                .invalidArgument,
                "packed buffer of \(packed.byteCount) bytes too small for values \(offset)..<\(offset &+ count) of \(bitWidth) bits"
            )
        }
        guard patchIndices.count == (patchValues?.count ?? 0) else {
            throw EddyError(.invalidArgument, "patch indices and values differ in count")
        }
        self.ptype = ptype
        self.bitWidth = bitWidth
        // Kernels (the engine's and plugins') read whole words: a buffer ending inside the last word a
        // value touches (a hostile file's segment, a plugin's exact-size buffer) is copied into whole words.
        let words = bits / 64 + (bits % 64 == 0 ? 0 : 1)
        if packed.byteCount >= words * 8 {
            self.packed = packed
        } else {
            self.packed = Buffer.build(count: words, of: UInt64.self) { out in
                let raw = UnsafeMutableRawBufferPointer(out)
                raw.initializeMemory(as: UInt8.self, repeating: 0)
                raw.copyMemory(from: UnsafeRawBufferPointer(start: packed.baseAddress, count: packed.byteCount))
            }
        }
        self.offset = offset
        self.count = count
        self.validity = validity
        self.patchIndices = patchIndices
        self.patchValues = patchValues
        self.dtype = .primitive(ptype, nullability)
    }

    /// Packs non-negative integers into `bitWidth` bits; values that do not fit become patches.
    public static func encode(_ array: PrimitiveArray, bitWidth: Int) throws -> BitPackedArray {
        guard array.ptype.isInteger else { throw EddyError(.typeMismatch, "bit-packing needs integers") }
        let values = array.int128Values()
        let limit: Int128 = bitWidth == 64 ? Int128(UInt64.max) : (Int128(1) << bitWidth) - 1
        var patchIdx: [Int] = []
        let words = (values.count * bitWidth + 63) / 64
        let packed = Buffer.build(count: words, of: UInt64.self) { out in
            out.initialize(repeating: 0)
            for (i, v) in values.enumerated() {
                guard array.validity.isValid(i) else { continue }
                if v < 0 || v > limit {
                    patchIdx.append(i)
                    continue
                }
                guard bitWidth > 0 else { continue }
                let u = UInt64(v)
                let bit = i * bitWidth
                out[bit >> 6] |= u << UInt64(bit & 63)
                if (bit & 63) + bitWidth > 64 { out[(bit >> 6) + 1] |= u >> UInt64(64 - (bit & 63)) }
            }
        }
        let patches =
            patchIdx.isEmpty ? nil : try Canonical.take(array, indices: PrimitiveArray(patchIdx.map { Int64($0) }))
        return try BitPackedArray(
            ptype: array.ptype, bitWidth: bitWidth, packed: packed, offset: 0, count: values.count,
            validity: array.validity, nullability: array.dtype.nullability,
            patchIndices: patchIdx,
            patchValues: (patches as? PrimitiveArray)?.with(validity: .allValid, nullability: .nonNullable))
    }

    public var encoding: EncodingID { Self.id }
    public var metadataDescription: String {
        "width=\(bitWidth)" + (patchIndices.isEmpty ? "" : " patches=\(patchIndices.count)")
            + (offset == 0 ? "" : " offset=\(offset)")
    }

    /// The packed (unpatched) value at absolute position `position`.
    public func packedValue(at position: Int) -> UInt64 {
        withExtendedLifetime(packed) {
            Self.unpack(packed.baseAddress.assumingMemoryBound(to: UInt64.self), bitWidth, position)
        }
    }

    /// The value at `position` of a stream of `width`-bit values in `words`.
    @inline(__always)
    static func unpack(_ words: UnsafePointer<UInt64>, _ width: Int, _ position: Int) -> UInt64 {
        if width == 0 { return 0 }
        let bit = position &* width
        let shift = UInt64(bit & 63)
        var v = words[bit >> 6] >> shift
        if Int(shift) &+ width > 64 { v |= words[(bit >> 6) + 1] << (64 &- shift) }
        return width == 64 ? v : v & ((1 << UInt64(width)) &- 1)
    }

    /// Calls `body` with a reader of single packed values, `array.packed` kept alive meanwhile.
    @inline(__always)
    func withPackedValues<R>(_ body: (PackedValues) -> R) -> R {
        withExtendedLifetime(packed) { body(PackedValues(self)) }
    }

    /// Values `base ..< base + count`, each plus `add` (wrapping; a frame of reference adds its
    /// reference in the same pass), into `out`. Whole blocks of 64 values (64 × width bits, which start
    /// on a word) go through `eddy_unpack_blocks` (one unrolled loop per width, every shift a constant):
    /// straight into `out` for 64-bit values, else through a 64-value scratch block that is narrowed.
    /// The values before the first block and after the last go one at a time.
    @inline(__always)
    static func unpackAll<T: FixedWidthInteger>(
        _ words: UnsafePointer<UInt64>, _ width: Int, _ base: Int, _ count: Int, adding add: UInt64 = 0,
        into out: UnsafeMutableBufferPointer<T>
    ) {
        guard width > 0 else {
            for i in 0..<count { out[i] = T(truncatingIfNeeded: add) }
            return
        }
        var i = 0
        while i < count && (base &+ i) & 63 != 0 {
            out[i] = T(truncatingIfNeeded: unpack(words, width, base &+ i) &+ add)
            i += 1
        }
        guard let o = out.baseAddress else { return }
        let blocks = (count &- i) >> 6
        if blocks > 0 {
            unpackBlocks(words, width, (base &+ i) >> 6, blocks, adding: add, into: o + i)
            i &+= blocks << 6
        }
        while i < count {
            out[i] = T(truncatingIfNeeded: unpack(words, width, base &+ i) &+ add)
            i += 1
        }
    }

    /// Blocks `firstBlock ..< firstBlock + blocks` (64 values each, width 1...64), each value plus
    /// `add` (wrapping), truncated to `T`, into `out`.
    @inline(__always)
    static func unpackBlocks<T: FixedWidthInteger>(
        _ words: UnsafePointer<UInt64>, _ width: Int, _ firstBlock: Int, _ blocks: Int, adding add: UInt64,
        into out: UnsafeMutablePointer<T>
    ) {
        let source = words + firstBlock &* width
        if T.bitWidth == 64 {
            UnsafeMutableRawPointer(out).withMemoryRebound(to: UInt64.self, capacity: blocks << 6) {
                eddy_unpack_blocks(source, Int32(width), blocks, add, $0)
            }
            return
        }
        if T.bitWidth < 64, width <= T.bitWidth,
            eddy_unpack_blocks_narrow(source, Int32(width), blocks, add, out, Int32(T.bitWidth / 8)) != 0
        {
            return
        }
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 64) { scratch in
            guard let tmp = scratch.baseAddress else { return }
            for b in 0..<blocks {
                eddy_unpack_blocks(source + b &* width, Int32(width), 1, add, tmp)
                let dst = out + (b << 6)
                for k in 0..<64 { dst[k] = T(truncatingIfNeeded: tmp[k]) }
            }
        }
    }

    /// The range of patches that fall inside this array's window.
    var patchRange: Range<Int> {
        let lo = lowerBound(patchIndices, offset)
        let hi = lowerBound(patchIndices, offset + count)
        return lo..<hi
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        .done(ptype.visitIntegerUnchecked(Unpack(array: self)))
    }

    private struct Unpack: IntegerPTypeVisitor {
        let array: BitPackedArray
        func visit<T: NativeInteger>(_ type: T.Type) -> any ArrayNode {
            let a = array
            return withExtendedLifetime(a.packed) {
                PrimitiveArray.build(T.self, count: a.count, validity: a.validity, nullability: a.dtype.nullability) {
                    out in
                    let words = a.packed.baseAddress.assumingMemoryBound(to: UInt64.self)
                    BitPackedArray.unpackAll(words, a.bitWidth, a.offset, a.count, into: out)
                    if let pv = a.patchValues {
                        pv.withValuesUnchecked(T.self) { v in
                            for k in a.patchRange { out[a.patchIndices[k] - a.offset] = v[k] }
                        }
                    }
                }
            }
        }
    }

    /// A zero-copy view of `length` elements from `start`.
    public func slice(_ start: Int, _ length: Int) throws -> BitPackedArray {
        try BitPackedArray(
            ptype: ptype, bitWidth: bitWidth, packed: packed, offset: offset + start, count: length,
            validity: validity.slice(start, length), nullability: dtype.nullability,
            patchIndices: patchIndices, patchValues: patchValues)
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        guard validity.isValid(index) else { return .null(dtype) }
        let position = offset + index
        let k = lowerBound(patchIndices, position)
        if k < patchIndices.count && patchIndices[k] == position, let pv = patchValues {
            return try pv.scalar(at: k).with(dtype.nullability)
        }
        let bits = packedValue(at: position)
        let value: ScalarValue = ptype.isSignedInteger ? .int(signExtend(bits, ptype.byteWidth)) : .uint(bits)
        return Scalar(value, dtype)
    }
}

/// The first index in sorted `list` whose element is at least `value`.
func lowerBound(_ list: [Int], _ value: Int) -> Int {
    var lo = 0
    var hi = list.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if list[mid] < value { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

/// Reads single values at absolute positions of a bit-packed buffer, for gathers that pick rows out
/// of it (a filter's kept rows). Valid while the array's ``BitPackedArray/packed`` buffer lives: get
/// one from ``BitPackedArray/withPackedValues(_:)``.
struct PackedValues {
    let words: UnsafePointer<UInt64>
    let bytes: UnsafeRawPointer
    let byteCount: Int
    let width: Int
    let valueMask: UInt64
    /// A value of up to 57 bits lies within the 8 bytes from its first byte: one unaligned load and a
    /// shift, no branch on whether it straddles two words (except near the end).
    let fast: Bool

    init(_ array: BitPackedArray) {
        bytes = array.packed.baseAddress
        words = bytes.assumingMemoryBound(to: UInt64.self)
        byteCount = array.packed.byteCount
        width = array.bitWidth
        valueMask = width >= 64 ? ~0 : (1 << UInt64(width)) &- 1
        fast = width <= 57
    }

    /// The packed value at absolute position `position`.
    @inline(__always)
    func value(at position: Int) -> UInt64 {
        let bit = position &* width
        let byte = bit >> 3
        if fast && byte &+ 8 <= byteCount {
            return (bytes.loadUnaligned(fromByteOffset: byte, as: UInt64.self) >> UInt64(bit & 7)) & valueMask
        }
        return BitPackedArray.unpack(words, width, position)
    }
}
