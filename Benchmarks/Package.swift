// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live apart from the tests: run with
//   swift build -c release --package-path Benchmarks && Benchmarks/.build/release/EddyBenchmarks
let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "EddyBenchmarks",
    products: [
        // The example plugin's source, built as a plugin .so here so that it matches the in-host copy's flags.
        .library(name: "BenchPackedCompare", type: .dynamic, targets: ["PluginPackedCompare"]),
        // The host's SHA-256 and Ed25519, opened from the executable's directory (EddyHost's HostCrypto).
        .library(name: "EddyCrypto", type: .dynamic, targets: ["EddyCrypto"]),
    ],
    dependencies: [
        .package(path: "../plugin-sdk"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // The root package's loader, compiled from its sources (a path dependency on the root would be
        // named after whatever folder the clone sits in).
        .target(name: "CEddyHost", dependencies: ["CEddyIO"]),
        .target(name: "CEddyIO", linkerSettings: [.linkedLibrary("dispatch")]),
        .target(
            name: "EddyCrypto", dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: settings),
        .target(name: "CEddyCodecs", linkerSettings: [.linkedLibrary("z"), .linkedLibrary("dl")]),
        .target(
            name: "EddyIO", dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "CEddyIO", "CEddyCodecs"],
            swiftSettings: settings),
        .target(
            name: "EddyHost",
            dependencies: [
                .product(name: "Eddy", package: "plugin-sdk"), "CEddyHost", "EddyIO",
            ],
            swiftSettings: settings),
        .target(name: "PackedDictCompareC", cSettings: [.unsafeFlags(["-O3"])]),
        .target(
            name: "InHostPackedCompare",
            dependencies: [
                .product(name: "Eddy", package: "plugin-sdk"),
                "PackedDictCompareC",
            ],
            swiftSettings: settings),
        .target(
            name: "PluginPackedCompare",
            dependencies: [
                .product(name: "Eddy", package: "plugin-sdk"),
                "PackedDictCompareC",
            ],
            swiftSettings: settings),
        .executableTarget(
            name: "EddyBenchmarks",
            dependencies: [
                .product(name: "Eddy", package: "plugin-sdk"),
                "CEddyHost",
                "EddyHost",
                "InHostPackedCompare",
            ],
            swiftSettings: settings
        ),
    ],
    swiftLanguageModes: [.v6]
)
