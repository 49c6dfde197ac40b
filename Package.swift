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
        .package(path: "plugin-sdk"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "EddyIO",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            swiftSettings: sharedSettings
        ),
        .target(
            name: "EddyQuery",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "EddyIO"],
            swiftSettings: sharedSettings
        ),
        .executableTarget(
            name: "eddy",
            dependencies: [
                .product(name: "Eddy", package: "plugin-sdk"), "EddyIO", "EddyQuery",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "EddyTests",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "EddyIO", "EddyQuery"],
            swiftSettings: sharedSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
