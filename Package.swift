// swift-tools-version: 6.1
import PackageDescription

let sharedSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// The tests leave out MemberImportVisibility: in a target whose files import NIO and Glibc, which
// C module a `stat` or `timespec` is attributed to depends on how the compiler batches the files
// (Glibc in one build, CDispatch in another), and the feature then fails the build by chance.
let testSettings: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

// The modules on `eddy eval`'s path import neither Swift's concurrency nor its string-processing
// library: with the implicit imports every module gets, `eddy` needed both (and _RegexParser) at
// load — about a millisecond of every start — though the eval path uses neither (EddyEval's EddyFront).
let leanSettings: [SwiftSetting] =
    sharedSettings + [
        .unsafeFlags([
            "-Xfrontend", "-disable-implicit-concurrency-module-import",
            "-Xfrontend", "-disable-implicit-string-processing-module-import",
        ])
    ]

let package = Package(
    name: "Eddy",
    products: [
        .executable(name: "eddy", targets: ["eddy"]),
        .executable(name: "eddy-server", targets: ["eddy-server"]),
        // Example kernel plugins: each is a .so that links libEddy.so; drop it into a plugin directory.
        // SHA-256 and Ed25519 (swift-crypto) for the host, opened when a plugin is hashed or a signature
        // checked: linked into `eddy`, swift-crypto's Foundation would load in every process (HostCrypto).
        .library(name: "EddyCrypto", type: .dynamic, targets: ["EddyCrypto"]),
        .library(name: "EddyPluginDelta", type: .dynamic, targets: ["DeltaEncodingEntry"]),
        .library(name: "EddyPluginPackedDictCompare", type: .dynamic, targets: ["PackedDictCompareEntry"]),
        // Deliberately bad plugins for the tests (not shipped as examples).
        .library(name: "EddyFixtureThrowing", type: .dynamic, targets: ["ThrowingPlugin"]),
        .library(name: "EddyFixtureWrongABI", type: .dynamic, targets: ["WrongABIPlugin"]),
        .library(name: "EddyFixtureWrongLength", type: .dynamic, targets: ["WrongLengthPlugin"]),
        .library(name: "EddyFixtureDeltaV2", type: .dynamic, targets: ["DeltaV2Plugin"]),
        .library(name: "EddyFixtureCrashing", type: .dynamic, targets: ["CrashingPlugin"]),
        .library(name: "EddyFixtureCrashingKernel", type: .dynamic, targets: ["CrashingKernelPlugin"]),
        .library(name: "EddyFixtureCrashingKernelFixed", type: .dynamic, targets: ["CrashingKernelFixedPlugin"]),
    ],
    dependencies: [
        .package(path: "plugin-sdk"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "EddyIO",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "CEddyIO", "CEddyCodecs"],
            swiftSettings: leanSettings
        ),
        // Decompressors for Parquet pages: zlib linked; zstd, lz4 and brotli opened by soname at run time.
        .target(
            name: "CEddyCodecs", path: "Sources/CEddyCodecs",
            linkerSettings: [.linkedLibrary("z"), .linkedLibrary("dl")]),
        // SIMD byte masks for the CSV reader (Swift has no portable movemask).
        // …and libdispatch's C interface for loops over the cores (parallel.c).
        .target(name: "CEddyIO", path: "Sources/CEddyIO", linkerSettings: [.linkedLibrary("dispatch")]),
        // prctl and other C-only calls the host needs (variadic in C, so not callable from Swift).
        .target(name: "CEddyHost", dependencies: ["CEddyIO"], path: "Sources/CEddyHost"),
        .target(
            name: "EddyHost",
            dependencies: [
                .product(name: "Eddy", package: "plugin-sdk"), "CEddyHost", "EddyIO",
            ],
            swiftSettings: leanSettings
        ),
        .target(
            name: "EddyCrypto", dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: sharedSettings),
        .target(
            name: "EddyQuery",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "EddyIO"],
            swiftSettings: leanSettings
        ),
        .target(
            name: "EddyServer",
            dependencies: [
                .product(name: "Eddy", package: "plugin-sdk"), "EddyIO", "EddyQuery", "EddyHost", "CEddyHost",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: sharedSettings
        ),
        // `eddy eval` without ArgumentParser: its settings, plugin loading and the evaluation, what `eddy`
        // runs itself; EddyCommands reads the same settings with ArgumentParser.
        .target(
            name: "EddyEval",
            dependencies: [
                .product(name: "Eddy", package: "plugin-sdk"), "EddyIO", "EddyQuery", "EddyHost",
                // The conformance kit: `--verify` runs it on each new plugin before it serves.
                .product(name: "EddyTesting", package: "plugin-sdk"),
            ],
            swiftSettings: leanSettings
        ),
        // The command tree: every command but the server's (those live in eddy-server).
        .target(
            name: "EddyCommands",
            dependencies: [
                .product(name: "Eddy", package: "plugin-sdk"), "EddyIO", "EddyQuery", "EddyHost", "EddyEval",
                .product(name: "EddyTesting", package: "plugin-sdk"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: sharedSettings
        ),
        // `eddy`: `eval` alone, built without ArgumentParser, swift-crypto or the server so that a one-shot
        // query starts fast; it hands every other command line to eddy-server (EddyFront).
        .executableTarget(
            name: "eddy",
            dependencies: ["EddyEval"],
            swiftSettings: leanSettings,
            // CEddyHost's pthread_create (threads.c) must be what plugins, Foundation and Dispatch call:
            // it records which plugin code started a thread, so that a crash on that thread later is
            // charged to it. Exported from the executable, it comes first in symbol lookup.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--export-dynamic-symbol=pthread_create"])]
        ),
        // `eddy-server`: every command, the server, its workers and `replay` among them.
        .executableTarget(
            name: "eddy-server",
            dependencies: [
                "EddyCommands", .product(name: "Eddy", package: "plugin-sdk"), "EddyIO", "EddyHost", "EddyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: sharedSettings,
            linkerSettings: [.unsafeFlags(["-Xlinker", "--export-dynamic-symbol=pthread_create"])]
        ),
        // The example plugins are packages of their own under Plugins/ (laid out as `eddy new-plugin` lays one
        // out, each with a test running the conformance kit); the root package builds the same sources, so
        // that `swift build -c release` makes their .so files and the host's tests link their kernels. Built
        // lean, as the eval path is: a plugin that needs neither Swift's concurrency nor its string
        // processing then maps neither library (and _RegexParser) into a one-shot `eddy eval` that loads it.
        .target(
            name: "DeltaEncodingPlugin",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            path: "Plugins/DeltaEncoding/Sources/DeltaEncodingPlugin",
            swiftSettings: leanSettings
        ),
        .target(
            name: "DeltaEncodingEntry",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "DeltaEncodingPlugin"],
            path: "Plugins/DeltaEncoding/Sources/DeltaEncodingEntry", swiftSettings: leanSettings),
        .target(
            name: "PackedDictCompareEntry",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "PackedDictComparePlugin"],
            path: "Plugins/PackedDictCompare/Sources/PackedDictCompareEntry", swiftSettings: leanSettings),
        .target(
            name: "PackedDictCompareC", path: "Plugins/PackedDictCompare/Sources/PackedDictCompareC",
            cSettings: [.unsafeFlags(["-O3"])]),
        .target(
            name: "PackedDictComparePlugin",
            dependencies: [.product(name: "Eddy", package: "plugin-sdk"), "PackedDictCompareC"],
            path: "Plugins/PackedDictCompare/Sources/PackedDictComparePlugin",
            swiftSettings: leanSettings
        ),
        .target(
            name: "ThrowingPlugin", dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            path: "Tests/Fixtures/ThrowingPlugin", swiftSettings: sharedSettings),
        .target(
            name: "WrongABIPlugin", dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            path: "Tests/Fixtures/WrongABIPlugin", swiftSettings: sharedSettings),
        .target(
            name: "WrongLengthPlugin", dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            path: "Tests/Fixtures/WrongLengthPlugin", swiftSettings: sharedSettings),
        .target(
            name: "CrashingPlugin", dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            path: "Tests/Fixtures/CrashingPlugin", swiftSettings: sharedSettings),
        .target(
            name: "CrashingKernelPlugin", dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            path: "Tests/Fixtures/CrashingKernelPlugin", swiftSettings: sharedSettings),
        .target(
            name: "CrashingKernelFixedPlugin", dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            path: "Tests/Fixtures/CrashingKernelFixed", swiftSettings: sharedSettings + [.define("EDDY_FIXED")]),
        // The delta example "rebuilt" as 2.0.0 with another storage layout: its sources linked, its own plugin type.
        .target(
            name: "DeltaV2Plugin", dependencies: [.product(name: "Eddy", package: "plugin-sdk")],
            path: "Tests/Fixtures/DeltaV2", swiftSettings: sharedSettings),
        // What the host's test targets share: the real binaries and fixture builds, scratch directories,
        // a running `eddy serve`, raw HTTP (one test bundle on Linux: the binaries are found beside it).
        .target(
            name: "EddyHostTestSupport",
            path: "Tests/EddyHostTestSupport",
            swiftSettings: testSettings
        ),
        // EddyIO: CSV, .eddy files, Parquet, the reader's checks of plugin storage, hostile input files.
        .testTarget(
            name: "EddyIOTests",
            dependencies: [
                "EddyHostTestSupport", .product(name: "Eddy", package: "plugin-sdk"),
                .product(name: "EddyTesting", package: "plugin-sdk"),
                .product(name: "EddyTestSupport", package: "plugin-sdk"), "EddyIO", "EddyQuery", "DeltaEncodingPlugin",
            ],
            swiftSettings: testSettings
        ),
        // EddyQuery: the expression language, zone maps, the query path's hostile inputs.
        .testTarget(
            name: "EddyQueryTests",
            dependencies: [
                "EddyHostTestSupport", .product(name: "Eddy", package: "plugin-sdk"), "EddyIO", "EddyQuery",
            ],
            swiftSettings: testSettings
        ),
        // EddyHost: loading, ELF checks, signing, confinement, probes, private copies, quarantine, the kit.
        .testTarget(
            name: "EddyHostTests",
            dependencies: [
                "EddyHostTestSupport", .product(name: "Eddy", package: "plugin-sdk"),
                .product(name: "EddyTesting", package: "plugin-sdk"), "EddyHost", "DeltaEncodingPlugin",
                "PackedDictComparePlugin",
            ],
            swiftSettings: testSettings
        ),
        // EddyServer: eddy serve and its workers through the real binary, its routes, limits and faults.
        .testTarget(
            name: "EddyServerTests",
            dependencies: [
                "EddyHostTestSupport", .product(name: "Eddy", package: "plugin-sdk"),
                .product(name: "EddyTestSupport", package: "plugin-sdk"), "EddyIO", "EddyQuery", "EddyHost",
                "EddyServer", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: testSettings
        ),
        // EddyCommands and the eddy front: the CLI through the real binary, its direct parse, new-plugin.
        .testTarget(
            name: "EddyCommandsTests",
            dependencies: [
                "EddyHostTestSupport", "EddyCommands",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: testSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
