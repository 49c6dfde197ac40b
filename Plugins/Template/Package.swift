// swift-tools-version: 6.1
import PackageDescription

// An Eddy kernel plugin. The product must be a dynamic library (type: .dynamic): without it
// `swift build` succeeds and makes no .so. It links the SDK's libEddy.so, never a copy of it.
let package = Package(
    name: "PluginTemplate",
    products: [.library(name: "PluginTemplate", type: .dynamic, targets: ["PluginTemplateEntry"])],
    dependencies: [.package(path: "../../plugin-sdk")],
    targets: [
        // The kernels: also linked into the tests.
        .target(name: "PluginTemplate", dependencies: [.product(name: "Eddy", package: "plugin-sdk")]),
        // The one exported entry symbol, in a target of its own so that tests can link the kernels.
        .target(
            name: "PluginTemplateEntry",
            dependencies: ["PluginTemplate", .product(name: "Eddy", package: "plugin-sdk")]),
        .testTarget(
            name: "PluginTemplateTests",
            dependencies: ["PluginTemplate", .product(name: "EddyTesting", package: "plugin-sdk")]),
    ],
    swiftLanguageModes: [.v6]
)
