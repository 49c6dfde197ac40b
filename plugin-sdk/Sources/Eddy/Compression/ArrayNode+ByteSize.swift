extension ArrayNode {
    /// Bytes held by this array's buffers and its children's (an estimate for small metadata).
    public var byteSize: Int {
        func validityBytes(_ v: Validity) -> Int { if case .bitmap(let b) = v { (b.count + 7) / 8 } else { 0 } }
        var own = 16
        switch self {
        case let p as PrimitiveArray: own += p.count * p.ptype.byteWidth + validityBytes(p.validity)
        case let b as BoolArray: own += (b.count + 7) / 8 + validityBytes(b.validity)
        case let v as VarBinArray:
            let o = v.offsets.typed(Int32.self)
            own += (v.count + 1) * 4 + Int(o[v.count] - o[0]) + validityBytes(v.validity)
        case let bp as BitPackedArray:
            own +=
                (bp.count * bp.bitWidth + 7) / 8 + bp.patchIndices.count * 8
                + (bp.patchValues?.byteSize ?? 0) + validityBytes(bp.validity)
        default: break
        }
        return own + children.reduce(0) { $0 + $1.byteSize }
    }
}
