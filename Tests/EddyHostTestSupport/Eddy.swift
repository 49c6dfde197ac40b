import Foundation
import Testing

/// Runs the real `eddy` binary built next to this test bundle.
package struct Eddy {
    package static var binary: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("eddy").path
    }

    package struct Result {
        package var status: Int32
        package var stdout: String
        package var stderr: String
    }

    /// This process's environment with the test run's own private-copy directory (see
    /// `testCopiesDirectory`), for every `eddy` a test starts.
    package static var childEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        if env["EDDY_SHADOW_DIR"] == nil { env["EDDY_SHADOW_DIR"] = testCopiesDirectory }
        return env
    }

    /// - Parameters:
    ///   - launcher: a command that runs `eddy` (`timeout 120`), found by path.
    ///   - executable: another copy of `eddy` to run (default: the one built beside the tests).
    package static func run(
        _ args: [String], environment: [String: String] = [:], launcher: [String] = [], executable: String? = nil
    ) throws -> Result {
        let binary = executable ?? binary
        let p = Process()
        p.executableURL = URL(fileURLWithPath: launcher.first ?? binary)
        p.arguments = launcher.isEmpty ? args : launcher.dropFirst() + [binary] + args
        var env = childEnvironment
        // Never pick up a ./plugins directory from wherever the tests run.
        env["EDDY_PLUGIN_DIR"] = emptyPluginDirectory
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(
            status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }
}

/// The private copies, quarantine and probe records of this test run, never the machine's shared
/// default (`$TMPDIR/eddy-plugins-<euid>`): a quarantine left there by anything else run on the
/// machine (a developer's server, a hostile review) would refuse the bundled plugins in these tests.
/// A test that names its own `EDDY_SHADOW_DIR` keeps it.
package let testCopiesDirectory: String = {
    let p = NSTemporaryDirectory() + "eddy-test-copies-\(getpid())"
    mkdir(p, 0o700)
    return p
}()

/// An empty directory that stands in for the default plugin directory in every test run.
package let emptyPluginDirectory: String = {
    let p = NSTemporaryDirectory() + "eddy-test-no-plugins"
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}()
