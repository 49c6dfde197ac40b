// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live apart from the tests: run with `swift run -c release --package-path Benchmarks`.
let package = Package(
    name: "EddyBenchmarks",
    dependencies: [
        .package(path: "../plugin-sdk")
    ],
    targets: [
        .executableTarget(
            name: "EddyBenchmarks",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
