extension ArrayNode {
    /// This array with only its dtype's nullability changed (values unchanged), when it is canonical.
    func withDType(_ dtype: DType) -> any ArrayNode {
        if self.dtype == dtype { return self }
        // Going non-nullable is only valid when every element is valid; a bitmap saying so is dropped.
        func fit(_ v: Validity) -> Validity { dtype.isNullable ? v : v.normalized(count: count) }
        switch self {
        case let p as PrimitiveArray: return p.with(validity: fit(p.validity), nullability: dtype.nullability)
        case let b as BoolArray:
            return BoolArray(uncheckedBits: b.bits, validity: fit(b.validity), nullability: dtype.nullability)
        case let v as VarBinArray:
            return VarBinArray(
                uncheckedDType: dtype, offsets: v.offsets, bytes: v.bytes, count: v.count, validity: fit(v.validity))
        default: return self
        }
    }
}
