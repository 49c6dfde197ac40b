internal import EddyKernelsC

extension BitPackedArray {
    /// Whether every element decodes to its packed bits as they are, a value in 0 ..< 2^width: no patch
    /// in the window, and no width wider than the type (decoding truncates) or packing a signed type's
    /// sign bit (decoding reads it negative).
    var readsAsPacked: Bool {
        patchRange.isEmpty
            && (ptype.isUnsignedInteger ? bitWidth <= ptype.byteWidth * 8 : bitWidth < ptype.byteWidth * 8)
    }

    /// The rows, valid rows and exact sum of the array, summed straight from the packed words under
    /// the validity bitmap (no decoded column, no per-row null test); min and max are not computed.
    /// Nil — the caller decodes — when a value could read differently than packed (a patch inside the
    /// window, a width wider than the type, which decoding truncates, a signed type whose sign bit is
    /// packed), for widths over 32 bits, windows of 2^32 rows or more, or a validity bitmap shorter than
    /// the window.
    func sumPartial() -> AggregatePartial? {
        guard bitWidth <= 32, count < 1 << 32, readsAsPacked else { return nil }
        var p = AggregatePartial()
        p.rows = count
        let mask: (UnsafePointer<UInt8>?, Int, Buffer?)
        switch validity {
        case .allValid: mask = (nil, 0, nil)
        case .allInvalid: return p
        case .bitmap(let m):
            let (end, o1) = m.offset.addingReportingOverflow(count)
            let (bits, o2) = m.buffer.byteCount.multipliedReportingOverflow(by: 8)
            guard !o1, !o2, m.offset >= 0, m.count >= count, end <= bits else { return nil }
            mask = (m.buffer.baseAddress.assumingMemoryBound(to: UInt8.self), m.offset, m.buffer)
        }
        withExtendedLifetime((packed, mask.2)) {
            var counted = 0
            let sum = eddy_packed_masked_sum(
                packed.baseAddress.assumingMemoryBound(to: UInt64.self), Int32(bitWidth), offset, count, mask.0,
                mask.1, &counted)
            p.intSum = Int128(sum)
            p.nonNull = counted
        }
        return p
    }
}
