@_spi(Host) public import Eddy
public import Testing

/// Asserts that two arrays hold the same dtype and the same values (NaN equal to NaN).
public func expectSameValues(
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
public func values(_ array: any ArrayNode) throws -> [ScalarValue] { try array.scalars().map(\.value) }

/// Executes with the built-in kernels, and with none (pure decode-then-compute).
@_spi(Host) public func executeBothWays(_ array: any ArrayNode, session: Session) throws -> (
    withKernels: any ArrayNode, reference: any ArrayNode
) {
    let fast = try session.makeContext().execute(array)
    let slow = try session.makeContext(options: ExecutionOptions(useKernels: false)).execute(array)
    return (fast, slow)
}
