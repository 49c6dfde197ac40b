// swift-tools-version: 6.1
import PackageDescription

// A third-party plugin, built on its own against the SDK by path — as someone outside the project would.
let package = Package(
    name: "SparseSum",
    products: [.library(name: "SparseSum", type: .dynamic, targets: ["SparseSum"])],
    dependencies: [.package(path: "../../../plugin-sdk")],
    targets: [
        .target(name: "SparseSum", dependencies: [.product(name: "Eddy", package: "plugin-sdk")])
    ],
    swiftLanguageModes: [.v6]
)
