// swift-tools-version: 6.1
import PackageDescription

// The delta example plugin, laid out as `eddy new-plugin` lays out a package. The root package of the
// repository builds the same sources as its product EddyPluginDelta (`swift build -c release` there
// makes .build/release/libEddyPluginDelta.so); this package builds and tests them on their own.
let package = Package(
    name: "DeltaEncoding",
    products: [.library(name: "EddyPluginDelta", type: .dynamic, targets: ["DeltaEncodingEntry"])],
    dependencies: [.package(path: "../../plugin-sdk")],
    targets: [
        // The encoding, its storage and its kernels: also linked into the tests (and the host's tests).
        .target(name: "DeltaEncodingPlugin", dependencies: [.product(name: "Eddy", package: "plugin-sdk")]),
        // The one exported entry symbol, in a target of its own so that tests can link the kernels.
        .target(
            name: "DeltaEncodingEntry",
            dependencies: ["DeltaEncodingPlugin", .product(name: "Eddy", package: "plugin-sdk")]),
        .testTarget(
            name: "DeltaEncodingPluginTests",
            dependencies: ["DeltaEncodingPlugin", .product(name: "EddyTesting", package: "plugin-sdk")]),
    ],
    swiftLanguageModes: [.v6]
)
