// swift-tools-version: 6.1
import PackageDescription

// The packed-dict-compare example plugin, laid out as `eddy new-plugin` lays out a package, with a C
// target for its inner loop. The root package of the repository builds the same sources as its product
// EddyPluginPackedDictCompare (`swift build -c release` there makes
// .build/release/libEddyPluginPackedDictCompare.so); this package builds and tests them on their own.
let package = Package(
    name: "PackedDictCompare",
    products: [.library(name: "EddyPluginPackedDictCompare", type: .dynamic, targets: ["PackedDictCompareEntry"])],
    dependencies: [.package(path: "../../plugin-sdk")],
    targets: [
        // The kernel: also linked into the tests (and the host's tests).
        .target(
            name: "PackedDictComparePlugin",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "PackedDictCompareC"]),
        // The compare loop over packed codes, in C; -O3 in debug builds too (it is what the kernel is for).
        .target(name: "PackedDictCompareC", cSettings: [.unsafeFlags(["-O3"])]),
        // The one exported entry symbol, in a target of its own so that tests can link the kernel.
        .target(
            name: "PackedDictCompareEntry",
            dependencies: ["PackedDictComparePlugin", .product(name: "Eddy", package: "plugin-sdk")]),
        .testTarget(
            name: "PackedDictComparePluginTests",
            dependencies: ["PackedDictComparePlugin", .product(name: "EddyTesting", package: "plugin-sdk")]),
    ],
    swiftLanguageModes: [.v6]
)
