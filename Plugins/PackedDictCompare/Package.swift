// swift-tools-version: 6.1
import PackageDescription

// The packed-dict-compare example plugin, laid out as `eddy new-plugin` lays out a package, with a C
// target for its inner loop. The root package of the repository builds the same sources as its product
// EddyPluginPackedDictCompare (`swift build -c release` there makes
// .build/release/libEddyPluginPackedDictCompare.so); this package builds and tests them on their own.
// Built without Swift's implicit concurrency and string-processing imports (the kernels use neither):
// the .so then needs neither library, and a one-shot `eddy eval` that loads it maps neither (see the
// SDK's "Writing a kernel plugin", Speed).
let lean: [SwiftSetting] = [
    .unsafeFlags([
        "-Xfrontend", "-disable-implicit-concurrency-module-import",
        "-Xfrontend", "-disable-implicit-string-processing-module-import",
    ])
]

let package = Package(
    name: "PackedDictCompare",
    products: [.library(name: "EddyPluginPackedDictCompare", type: .dynamic, targets: ["PackedDictCompareEntry"])],
    dependencies: [.package(path: "../../plugin-sdk")],
    targets: [
        // The kernel: also linked into the tests (and the host's tests).
        .target(
            name: "PackedDictComparePlugin",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "PackedDictCompareC"],
            swiftSettings: lean),
        // The compare loop over packed codes, in C; -O3 in debug builds too (it is what the kernel is for).
        .target(name: "PackedDictCompareC", cSettings: [.unsafeFlags(["-O3"])]),
        // The one exported entry symbol, in a target of its own so that tests can link the kernel.
        .target(
            name: "PackedDictCompareEntry",
            dependencies: ["PackedDictComparePlugin", .product(name: "Eddy", package: "plugin-sdk")],
            swiftSettings: lean),
        .testTarget(
            name: "PackedDictComparePluginTests",
            dependencies: ["PackedDictComparePlugin", .product(name: "EddyTesting", package: "plugin-sdk")]),
    ],
    swiftLanguageModes: [.v6]
)
