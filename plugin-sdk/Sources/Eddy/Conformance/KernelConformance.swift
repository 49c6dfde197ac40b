/// Checks kernels against decode-then-compute: the harness a plugin author runs before shipping.
///
/// For every input tree, the tree is executed twice: in a session holding the built-ins plus the
/// kernels under test, and with no kernels at all (each encoding decodes itself, each function
/// computes on plain data). Both must agree on dtype, length and every value — or both must fail.
/// The harness also reports kernels that never fired, since a kernel that is never tried is not tested.
///
/// ```swift
/// let registrar = PluginRegistrar(owner: .plugin("mine", version: "1"))
/// try MyPlugin.register(into: registrar)
/// var generator = ArrayGenerator(seed: 1)
/// let inputs = (0..<500).map { _ in try! generator.compareOverEncoded() }
/// let report = KernelConformance.check(registrar.kernels, on: inputs)
/// precondition(report.failures.isEmpty, report.description)
/// ```
public enum KernelConformance {
    /// One disagreement between the kernels and the reference.
    public struct Failure: Sendable, CustomStringConvertible {
        public let input: String
        public let problem: String
        public var description: String { "\(problem)\n  input:\n" + input.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n") }
    }

    /// What a check found.
    public struct Report: Sendable, CustomStringConvertible {
        public var failures: [Failure] = []
        /// Kernels under test that fired at least once, by name, with how often.
        public var fired: [String: Int] = [:]
        /// Kernels under test that never fired on any input.
        public var neverFired: [String] = []
        public var inputs = 0

        public var passed: Bool { failures.isEmpty && neverFired.isEmpty }

        public var description: String {
            var s = "\(inputs) inputs, \(failures.count) failures"
            if !neverFired.isEmpty { s += ", never fired: " + neverFired.joined(separator: ", ") }
            for f in failures.prefix(5) { s += "\n" + f.description }
            return s
        }
    }

    /// Runs every input with and without the kernels.
    public static func check(_ kernels: [ExecuteParentKernel], rules: [ReduceParentRule] = [], on inputs: [any ArrayNode])
        -> Report
    {
        let session = Session()
        session.kernels.register(kernels: kernels, rules: rules)
        let reference = Session(builtins: false)
        let names = Set(kernels.map(\.name) + rules.map(\.name))
        var report = Report()
        for input in inputs {
            report.inputs += 1
            let trace = ExecutionTrace()
            let fast = Result { try session.makeContext(trace: trace).execute(input) }
            let slow = Result { try reference.makeContext(options: ExecutionOptions(useKernels: false)).execute(input) }
            for e in trace.events where names.contains(e.name) && !e.owner.isBuiltin { report.fired[e.name, default: 0] += 1 }
            switch (fast, slow) {
            case (.success(let a), .success(let b)):
                if let problem = difference(a, b) {
                    report.failures.append(Failure(input: input.treeDescription(), problem: problem))
                }
            case (.failure(let e), .success):
                report.failures.append(Failure(input: input.treeDescription(), problem: "kernels failed where the reference did not: \(e)"))
            case (.success, .failure(let e)):
                report.failures.append(Failure(input: input.treeDescription(), problem: "the reference failed where kernels did not: \(e)"))
            case (.failure, .failure):
                break
            }
        }
        report.neverFired = names.subtracting(report.fired.keys).sorted()
        return report
    }

    /// nil when both arrays hold the same dtype, length and values (NaN equal to NaN).
    static func difference(_ a: any ArrayNode, _ b: any ArrayNode) -> String? {
        if a.dtype != b.dtype { return "dtype \(a.dtype), reference \(b.dtype)" }
        if a.count != b.count { return "length \(a.count), reference \(b.count)" }
        for i in 0..<a.count {
            guard let x = try? a.scalar(at: i), let y = try? b.scalar(at: i) else { return "element \(i) unreadable" }
            if !x.value.isIdentical(to: y.value) { return "element \(i): \(x), reference \(y)" }
        }
        return nil
    }
}
