import Foundation

/// Builds of the `LingeringKernel` fixture (Tests/Fixtures/LingeringKernel), whose kernel leaves a thread,
/// a process or a file behind in its worker after it returned (``WorkerBlameTests``, private copies).
package enum LingeringKernelFixture {
    /// The `LingeringKernel` fixture, built once per run with `swiftc` against the SDK (DESIGN.md §7).
    package static let lingering = Result { try buildFixture(module: "LingeringKernel") }
    /// The same source built as another plugin, `lingering-other` (`-D LINGER_OTHER`).
    package static let other = Result { try buildFixture(module: "LingeringOther", flags: ["-D", "LINGER_OTHER"]) }
    /// Built as `lingering-registration` (`-D LINGER_REGISTRATION`): its registration leaves the thread.
    package static let registration = Result {
        try buildFixture(module: "LingeringRegistration", flags: ["-D", "LINGER_REGISTRATION"])
    }

    package static func buildFixture(module: String, flags: [String] = []) throws -> String {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/LingeringKernel/LingeringKernelPlugin.swift").path
        let out = NSTemporaryDirectory() + "eddy-\(module)-\(getpid()).so"
        let build = PluginFiles.buildDirectory
        try compile(
            ["swiftc", "-O", "-emit-library", "-module-name", module, source, "-I", build + "/Modules"] + flags + [
                "-L", build, "-lEddy", "-o", out,
            ], naming: "\(module)")
        return out
    }
}
