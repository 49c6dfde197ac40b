// swift-tools-version: 6.1
import PackageDescription

// Fixture: a plugin that compiles the SDK's sources into itself (a static copy) instead of linking
// libEddy.so. Its casts would silently fail in a host; the loader must refuse it.
let package = Package(
    name: "StaticSDKPlugin",
    products: [.library(name: "StaticSDKPlugin", type: .dynamic, targets: ["StaticPlugin"])],
    targets: [
        .target(name: "EddyKernelsC", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "Eddy", dependencies: ["EddyKernelsC"]),
        .target(name: "StaticPlugin", dependencies: ["Eddy"]),
    ],
    swiftLanguageModes: [.v6]
)
