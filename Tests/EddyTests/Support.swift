@_spi(Host) import Eddy
import Foundation
import Testing

/// Asserts that two arrays hold the same dtype and the same values (NaN equal to NaN).
func expectSameValues(
    _ actual: any ArrayNode, _ expected: any ArrayNode, _ context: @autoclosure () -> String = "",
    approximateFloats: Bool = false, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    #expect(
        actual.dtype == expected.dtype, "dtype \(actual.dtype) vs \(expected.dtype) \(context())",
        sourceLocation: sourceLocation)
    #expect(
        actual.count == expected.count, "length \(actual.count) vs \(expected.count) \(context())",
        sourceLocation: sourceLocation)
    guard actual.count == expected.count else { return }
    for i in 0..<actual.count {
        let a = try actual.scalar(at: i)
        let e = try expected.scalar(at: i)
        if case .float(let x) = a.value, case .float(let y) = e.value, approximateFloats,
            abs(x - y) <= 1e-9 * max(1, abs(x), abs(y))
        {
            continue
        }
        if !a.value.isIdentical(to: e.value) {
            Issue.record("element \(i): \(a) vs \(e) \(context())", sourceLocation: sourceLocation)
            return
        }
    }
}

/// The values of an array as plain scalar values.
func values(_ array: any ArrayNode) throws -> [ScalarValue] { try array.scalars().map(\.value) }

/// Executes with the built-in kernels, and with none (pure decode-then-compute).
func executeBothWays(_ array: any ArrayNode, session: Session) throws -> (
    withKernels: any ArrayNode, reference: any ArrayNode
) {
    let fast = try session.makeContext().execute(array)
    let slow = try session.makeContext(options: ExecutionOptions(useKernels: false)).execute(array)
    return (fast, slow)
}

/// Runs a compiler (`cc`, `swiftc`: `arguments[0]`, found on the PATH) for a test fixture and throws
/// its diagnostics, naming `what`, when it fails.
func compile(_ arguments: [String], naming what: String) throws {
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
