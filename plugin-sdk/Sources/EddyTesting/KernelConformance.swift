@_spi(Host) import Eddy

/// Checks kernels against decode-then-compute on inputs you supply: the lower-level form of
/// ``PluginConformance``, for inputs the generators do not make.
///
/// Each input tree is executed twice: in a session holding the built-ins plus the kernels under
/// test, and with no kernels at all (each encoding decodes itself, each function computes on plain
/// data). Both must agree on dtype, length and every value — or both must fail. The report also names
/// kernels that never fired, since a kernel that is never tried is not tested.
public enum KernelConformance {
    /// One disagreement between the kernels and the reference.
    public struct Failure: Sendable, CustomStringConvertible {
        /// The input tree.
        public let input: String
        /// What differed, and how to reproduce it.
        public let problem: String

        /// A failure on the input tree `input` (as `ArrayNode.treeDescription(indent:)` prints it) and
        /// `problem`, what differed.
        public init(input: String, problem: String) {
            self.input = input
            self.problem = problem
        }

        public var description: String {
            "\(problem)\n  input:\n" + input.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        }
    }

    /// What a check found.
    public struct Report: Sendable, CustomStringConvertible {
        /// The inputs on which the kernels and the reference disagreed.
        public var failures: [Failure] = []
        /// Kernels under test that fired at least once, by name, with how often.
        public var fired: [String: Int] = [:]
        /// Kernels under test that never fired on any input.
        public var neverFired: [String] = []
        /// The number of inputs checked.
        public var inputs = 0

        /// No failure, and every kernel under test fired.
        public var passed: Bool { failures.isEmpty && neverFired.isEmpty }

        public var description: String {
            var s = "\(inputs) inputs, \(failures.count) failures"
            if !neverFired.isEmpty { s += ", never fired: " + neverFired.joined(separator: ", ") }
            for f in failures.prefix(5) { s += "\n" + f.description }
            return s
        }
    }

    /// Runs every input with and without the kernels registered by plugin `P`.
    public static func check<P: EddyPlugin>(_ plugin: P.Type, on inputs: [any ArrayNode]) throws -> Report {
        let registrar = PluginRegistrar(owner: .plugin(P.name, version: P.version))
        try P.register(into: registrar)
        return check(registrar.kernels, rules: registrar.rules, on: inputs)
    }

    /// Runs every input with and without the kernels.
    public static func check(
        _ kernels: [ExecuteParentKernel], rules: [ReduceParentRule] = [], on inputs: [any ArrayNode]
    )
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
            for e in trace.events where names.contains(e.name) && !e.owner.isBuiltin {
                report.fired[e.name, default: 0] += 1
            }
            if let problem = compare(fast, slow, input) {
                report.failures.append(Failure(input: input.treeDescription(), problem: problem))
            }
        }
        report.neverFired = names.subtracting(report.fired.keys).sorted()
        return report
    }

    /// nil when both succeeded with the same dtype, length and values, or both failed.
    ///
    /// When the kernels succeed and decoding everything first fails (a malformed child, such as a
    /// dictionary code past the values), the kernels may still be right: a slice or a take that never
    /// reads the bad row. They pass when reading `input` row by row (``ArrayNode/scalar(at:)``, which
    /// touches only what each row needs) succeeds and agrees.
    static func compare(
        _ fast: Result<any ArrayNode, any Error>, _ slow: Result<any ArrayNode, any Error>,
        _ input: (any ArrayNode)? = nil
    ) -> String? {
        switch (fast, slow) {
        case (.success(let a), .success(let b)): return difference(a, b)
        case (.failure(let e), .success): return "kernels failed where the reference did not: \(e)"
        case (.success(let a), .failure(let e)):
            if let input, let rows = try? input.scalars(), rows.count == a.count,
                rows.enumerated().allSatisfy({
                    (try? a.scalar(at: $0.offset).value.isIdentical(to: $0.element.value)) == true
                })
            {
                return nil
            }
            return "the reference failed where kernels did not: \(e)"
        case (.failure, .failure): return nil
        }
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
