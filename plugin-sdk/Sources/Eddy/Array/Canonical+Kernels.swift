/// Filter and take straight on canonical data (the fast typed paths; the nodes' own `execute` is
/// the element-by-element reference).
enum CanonicalKernels {
    static func register(into registrar: PluginRegistrar) {
        register(PrimitiveArray.self, into: registrar)
        register(BoolArray.self, into: registrar)
        register(VarBinArray.self, into: registrar)
        register(NullArray.self, into: registrar)
        register(StructArray.self, into: registrar)
    }

    private static func register<E: Encoding>(_ encoding: E.Type, into registrar: PluginRegistrar) {
        registrar.filterNode(on: E.self, name: "filter canonical") { array, f, _ in
            guard array.isCanonical, let bits = f.maskBits else { return nil }
            return try Canonical.filter(array, mask: bits)
        }
        registrar.takeNode(on: E.self, name: "take canonical") { array, t, _ in
            guard array.isCanonical, let idx = t.indices as? PrimitiveArray else { return nil }
            return try Canonical.take(array, indices: idx)
        }
    }
}
