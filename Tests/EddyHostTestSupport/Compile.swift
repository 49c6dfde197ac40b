import Foundation

/// Runs a compiler (`cc`, `swiftc`: `arguments[0]`, found on the PATH) for a test fixture and throws
/// its diagnostics, naming `what`, when it fails.
package func compile(_ arguments: [String], naming what: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    let err = Pipe()
    p.standardError = err
    try p.run()
    let text = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw EddyTestError(
            "\(arguments.first ?? "the compiler") failed for \(what): " + String(decoding: text, as: UTF8.self))
    }
}
