// swift-tools-version: 6.1
import PackageDescription

// A host built against "the next minor SDK release": a copy of plugin-sdk that .ci/compat-check
// changes the way a minor release may (see Tests/compat/minor-release.py), at .build/compat/plugin-sdk.
// It loads a plugin built against the unchanged SDK and runs it.
let package = Package(
    name: "CompatHost",
    dependencies: [.package(path: "../../../.build/compat/plugin-sdk")],
    targets: [
        .executableTarget(name: "compat-host", dependencies: [.product(name: "Eddy", package: "plugin-sdk")])
    ],
    swiftLanguageModes: [.v6]
)
