/// The engine's own kernels and rules, registered into every new ``Session``.
///
/// Where a kernel lives: with the code whose knowledge it uses. Kernels that exploit one encoding's
/// layout are `static var kernels` in `Encodings/<Name>/<Name>Array+Kernels.swift`; kernels that push a
/// function through any encoding with separable values, or compute an aggregate per encoding, are in
/// `Functions/<Name>/<Name>+Kernels.swift`; typed paths on plain data are in
/// `Array/Canonical+Kernels.swift`. This file only lists them; helpers they share are in
/// `Kernels/KernelSupport.swift`. Plugins use the same typed registrations through ``PluginRegistrar``.
enum BuiltinKernels {
    static func register(into registry: ArrayKernels) {
        var kernels: [ExecuteParentKernel] = []
        kernels += CanonicalKernels.all
        kernels += DictArray.kernels
        kernels += RunEndArray.kernels
        kernels += ConstantArray.kernels
        kernels += FoRArray.kernels
        kernels += BitPackedArray.kernels
        kernels += ChunkedArray.kernels
        kernels += IntStringArray.kernels
        kernels += AggregateFunction.kernels
        kernels += ScalarKernels.all
        registry.register(kernels: kernels, rules: [])
    }
}
