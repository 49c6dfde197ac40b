// swift-tools-version: 6.1
import PackageDescription

// The delta example plugin, laid out as `eddy new-plugin` lays out a package. The root package of the
// repository builds the same sources as its product EddyPluginDelta (`swift build -c release` there
// makes .build/release/libEddyPluginDelta.so); this package builds and tests them on their own.
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
    name: "DeltaEncoding",
    products: [.library(name: "EddyPluginDelta", type: .dynamic, targets: ["DeltaEncodingEntry"])],
    dependencies: [.package(path: "../../plugin-sdk")],
    targets: [
        // The encoding, its storage and its kernels: also linked into the tests (and the host's tests).
        .target(
            name: "DeltaEncodingPlugin", dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            swiftSettings: lean),
        // The one exported entry symbol, in a target of its own so that tests can link the kernels.
        .target(
            name: "DeltaEncodingEntry",
            dependencies: ["DeltaEncodingPlugin", .product(name: "Eddy", package: "plugin-sdk")],
            swiftSettings: lean),
        .testTarget(
            name: "DeltaEncodingPluginTests",
            dependencies: ["DeltaEncodingPlugin", .product(name: "EddyTesting", package: "plugin-sdk")]),
    ],
    swiftLanguageModes: [.v6]
)
