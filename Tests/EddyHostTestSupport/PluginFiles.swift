import Foundation
import Testing

/// Plugin files built by this package (next to the `eddy` binary) and by the fixture packages.
package enum PluginFiles {
    package static var buildDirectory: String { URL(fileURLWithPath: Eddy.binary).deletingLastPathComponent().path }
    package static func built(_ product: String) -> String { buildDirectory + "/lib\(product).so" }

    /// Builds a fixture package with its own `swift build`, as a third party would; returns the .so path.
    package static func buildPackage(_ name: String, product: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/\(name)").path
        func build() throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["swift", "build", "--package-path", root]
            let err = Pipe()
            p.standardOutput = err
            p.standardError = err
            try p.run()
            let output = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: output, as: UTF8.self))
        }
        var (status, output) = try build()
        if status != 0 {
            // A source file of the SDK was moved, added or split since the fixture's last build: SwiftPM's
            // incremental build of a package by path does not always pick that up ("missing inputs", or
            // types of a new file not found); a fresh one does.
            try? FileManager.default.removeItem(atPath: root + "/.build")
            (status, output) = try build()
        }
        guard status == 0 else { throw EddyTestError("building \(name) failed:\n" + output) }
        return root + "/.build/debug/lib\(product).so"
    }

    /// The out-of-tree and static-SDK fixtures, built once per test run and one after the other:
    /// both compile the SDK's sources, and two `swift build`s at once on two cores race for time and
    /// memory with the test run itself.
    package static let fixtures = (
        outOfTree: Result { try buildPackage("OutOfTreePlugin", product: "SparseSum") },
        staticSDK: Result { try buildPackage("StaticSDKPlugin", product: "StaticSDKPlugin") },
        scaffold: Result { try buildScaffold() }
    )
    package static var scaffold: Result<Scaffold, any Error> { fixtures.scaffold }

    /// What `eddy new-plugin run-count` made, and what its own `swift test` printed.
    package struct Scaffold {
        package let library: String
        package let testOutput: String
        package let created: String
        /// The generated package's directory.
        package let root: String
    }

    /// The newcomer's path: `eddy new-plugin`, `swift test`, `swift build`, in a fresh package (its
    /// build cache is kept between test runs under .build/scaffold-test/cache).
    package static func buildScaffold() throws -> Scaffold {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/scaffold-test").path
        try? FileManager.default.removeItem(atPath: root + "/run-count")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let created = try Eddy.run(["new-plugin", "run-count", "--path", root])
        guard created.status == 0 else { throw EddyTestError("eddy new-plugin failed: \(created.stderr)") }
        func swift(_ arguments: [String]) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments =
                ["swift"] + arguments + ["--package-path", root + "/run-count", "--scratch-path", root + "/cache"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw EddyTestError("swift \(arguments.joined(separator: " ")) failed:\n" + text)
            }
            return text
        }
        let tested: String
        do {
            tested = try swift(["test"])
        } catch let e as EddyTestError where e.description.contains("because of missing inputs") {
            try? FileManager.default.removeItem(atPath: root + "/cache")  // an SDK file moved since the last run
            tested = try swift(["test"])
        }
        _ = try swift(["build"])
        return Scaffold(
            library: root + "/cache/debug/libRunCount.so", testOutput: tested, created: created.stdout,
            root: root + "/run-count")
    }
    package static var outOfTree: Result<String, any Error> { fixtures.outOfTree }
    package static var staticSDK: Result<String, any Error> { fixtures.staticSDK }
}

/// Rows of `eddy plugins --json`, by file name.
package func pluginReport(_ dir: String) throws -> [String: [String: Any]] {
    let r = try Eddy.run(["plugins", "--plugin-dir", dir, "--json"])
    let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
    let files = object?["files"] as? [[String: Any]] ?? []
    // The exit status says whether a file was refused; the JSON is printed either way.
    let refused = files.contains { ["rejected", "quarantined"].contains($0["status"] as? String ?? "") }
    #expect(r.status == (refused ? 1 : 0), "\(r.stderr)")
    return Dictionary(
        uniqueKeysWithValues: files.map { (URL(fileURLWithPath: $0["file"] as! String).lastPathComponent, $0) })
}

package func tripsCSV(_ dir: ScratchDirectory, rows: Int = 3000) -> String {
    var text = "trip_id,city,fare,extra\n"
    let cities = ["Lyon", "Paris", "Nice", "Lille", "Brest"]
    for i in 0..<rows {
        text += "\(100_000 + i),\(cities[(i * 7 + i / 3) % 5]),\(Double(i % 97) / 4),\(i % 50 == 0 ? i : 0)\n"
    }
    return dir.write("trips.csv", text)
}
