// swift-tools-version: 6.1
import PackageDescription

let sharedSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Eddy",
    products: [
        .executable(name: "eddy", targets: ["eddy"])
    ],
    dependencies: [
        .package(path: "plugin-sdk")
    ],
    targets: [
        .executableTarget(
            name: "eddy",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "EddyTests",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            swiftSettings: sharedSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
