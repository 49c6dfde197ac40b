// swift-tools-version: 6.1
import PackageDescription

// The Eddy engine and the plugin API. It ships as ONE dynamic library that the host and every
// plugin link, so that class identity and protocol conformances are shared across the boundary.
// Library evolution keeps plugins built against an older SDK working after the SDK grows.
let sharedSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// Neither module imports Swift's concurrency or string-processing library: with the implicit imports
// every module gets, libEddy.so needed both (and _RegexParser) at load, which cost every host start,
// `eddy eval` on a 10-row file among them, about a millisecond though nothing here uses them. Plugins
// compiled against the SDK keep their own implicit imports.
let withoutImplicitRuntimeImports: [SwiftSetting] = [
    .unsafeFlags([
        "-Xfrontend", "-disable-implicit-concurrency-module-import",
        "-Xfrontend", "-disable-implicit-string-processing-module-import",
    ])
]

let package = Package(
    name: "EddySDK",
    products: [
        .library(name: "Eddy", type: .dynamic, targets: ["Eddy"]),
        // The conformance kit for plugin authors' tests: not part of the library plugins ship.
        .library(name: "EddyTesting", targets: ["EddyTesting"]),
        // Assertions shared by this package's tests and the host's (not for plugin authors).
        .library(name: "EddyTestSupport", targets: ["EddyTestSupport"]),
    ],
    targets: [
        // Vectorised inner loops in C, linked into the one SDK library; not part of the public API.
        .target(
            name: "EddyKernelsC",
            cSettings: [.unsafeFlags(["-O3"])]
        ),
        .target(
            name: "Eddy",
            dependencies: ["EddyKernelsC"],
            swiftSettings: sharedSettings + withoutImplicitRuntimeImports + [
                .unsafeFlags(["-enable-library-evolution"])
            ]
        ),
        .target(
            name: "EddyTesting",
            dependencies: ["Eddy"],
            swiftSettings: sharedSettings + withoutImplicitRuntimeImports
        ),
        .target(
            name: "EddyTestSupport",
            dependencies: ["Eddy"],
            path: "Tests/EddyTestSupport",
            swiftSettings: sharedSettings
        ),
        // The engine's own tests: arrays, encodings, kernels, the registry and its snapshots, the
        // compressor, differential runs against decode-then-compute. The host's are in ../Tests.
        .testTarget(
            name: "EddySDKTests",
            dependencies: ["Eddy", "EddyTesting", "EddyTestSupport"],
            swiftSettings: sharedSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
