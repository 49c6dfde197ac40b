/// The engine's own kernels, registered into every new ``Session``: one call per encoding, like
/// DataFusion's `functions()`.
///
/// Each encoding registers its kernels from its own folder (`Encodings/<Name>/<Name>Array+Kernels.swift`)
/// through the typed registrations plugins use (``PluginRegistrar/compare(on:name:_:)`` and the
/// others, with the engine-side shapes of `Plugin/TypedKernels+Engine.swift`): compare, filter, take and
/// slice on its layout, element-wise functions once per distinct value, aggregates from its structure.
/// Typed paths on plain data are in `Array/Canonical+Kernels.swift`. Within a (parent, child) key,
/// kernels are tried in the order registered.
enum BuiltinKernels {
    static func register(into registry: ArrayKernels) {
        internKeyEncodings()
        let registrar = PluginRegistrar(owner: .builtin)
        CanonicalKernels.register(into: registrar)
        DictArray.register(into: registrar)
        RunEndArray.register(into: registrar)
        ConstantArray.register(into: registrar)
        FoRArray.register(into: registrar)
        BitPackedArray.register(into: registrar)
        ChunkedArray.register(into: registrar)
        IntStringArray.register(into: registrar)
        registry.register(kernels: registrar.kernels, rules: registrar.rules)
    }

    /// Listings in interning order (``KernelSnapshot/entries``, `/kernels`) follow the order in which
    /// the keys' encodings were first named: name them in one fixed order here, so that those listings
    /// do not depend on the order of the calls above or of the registrations inside them.
    private static func internKeyEncodings() {
        _ =
            [
                PrimitiveArray.id, BoolArray.id, VarBinArray.id, NullArray.id, StructArray.id, FilterArray.id,
                TakeArray.id, CompareFunction.id, DictArray.id, SliceArray.id, RunEndArray.id, ConstantArray.id,
                FoRArray.id, BitPackedArray.id, ChunkedArray.id, IntStringArray.id,
            ] + AggregateFunction.Kind.allCases.map { AggregateFunction($0).encoding } + ElementwiseCall.functions
    }
}
