/// Filter and take straight on canonical data (the fast typed paths; the nodes' own `execute` is
/// the element-by-element reference).
enum CanonicalKernels {
    static let canonicalIDs = [PrimitiveArray.id, BoolArray.id, VarBinArray.id, NullArray.id, StructArray.id]

    static var all: [ExecuteParentKernel] {
        canonicalIDs.flatMap { id in
            [
                ExecuteParentKernel("filter canonical", parent: FilterArray.id, child: id) { parent, child, slot, _ in
                    guard slot == 0, child.isCanonical, let f = parent as? FilterArray, let bits = f.maskBits else {
                        return nil
                    }
                    return try Canonical.filter(child, mask: bits)
                },
                ExecuteParentKernel("take canonical", parent: TakeArray.id, child: id) { parent, child, slot, _ in
                    guard slot == 0, child.isCanonical, let t = parent as? TakeArray,
                        let idx = t.indices as? PrimitiveArray
                    else { return nil }
                    return try Canonical.take(child, indices: idx)
                },
            ]
        }
    }
}
