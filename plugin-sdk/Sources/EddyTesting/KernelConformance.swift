@_spi(Host) import Eddy

/// Checks kernels against decode-then-compute on inputs you supply: the lower-level form of
/// ``PluginConformance``, for inputs the generators do not make.
///
/// Each input tree is executed twice: in a session holding the built-ins plus the kernels under
/// test, and with no kernels at all (each encoding decodes itself, each function computes on plain
/// data). Both must agree on dtype, length and every value — or both must fail. The report also names
/// kernels that never fired, since a kernel that is never tried is not tested.
public enum KernelConformance {
    /// What a failure is about: the plugin part that gave the wrong answer.
    public enum Check: String, Sendable, CustomStringConvertible {
        /// A kernel (or rule) disagreed with decode-then-compute.
        case kernel
        /// A compressor hook's output does not decode to the column it was given, bit for bit.
        case compressorHook = "compressor hook"
        /// An encoding's storage did not read back what it wrote, or read a damaged node as other values.
        case storage

        public var description: String { rawValue }
    }

    /// One disagreement between the kernels and the reference.
    public struct Failure: Sendable, CustomStringConvertible {
        /// The input tree.
        public let input: String
        /// What differed, and how to reproduce it.
        public let problem: String
        /// What failed: a kernel, a compressor hook or a storage.
        public let check: Check
        /// The key checked: `parent|child` for kernels, `hook:<name>` for a compressor hook,
        /// `storage:<encoding>` for a storage (empty for ``KernelConformance/check(_:rules:on:)``).
        public let key: String

        /// A failure on the input tree `input` (as `ArrayNode.treeDescription(indent:)` prints it) and
        /// `problem`, what differed; `check` and `key` say what was checked.
        public init(input: String, problem: String, check: Check = .kernel, key: String = "") {
            self.input = input
            self.problem = problem
            self.check = check
            self.key = key
        }

        public var description: String {
            "[\(check)] \(key.isEmpty ? "" : key + ": ")\(problem)\n  input:\n"
                + input.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
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

    /// nil when both arrays hold the same dtype, length and values. Floats compare exactly: -0.0 is not
    /// 0.0 and sums that differ in the last bit differ; any NaN equals any NaN (a kernel need not keep a
    /// NaN's payload).
    static func difference(_ a: any ArrayNode, _ b: any ArrayNode) -> String? {
        if a.dtype != b.dtype { return "dtype \(a.dtype), reference \(b.dtype)" }
        if a.count != b.count { return "length \(a.count), reference \(b.count)" }
        for i in 0..<a.count {
            guard let x = try? a.scalar(at: i), let y = try? b.scalar(at: i) else { return "element \(i) unreadable" }
            if !x.value.isIdentical(to: y.value) { return "element \(i): \(show(x.value)), reference \(show(y.value))" }
        }
        return nil
    }

    /// nil when `a` holds exactly what `b` does: dtype, length, validity, and every float bit for bit
    /// (-0.0 and NaN payloads included). `what`/`expected` name the two sides in the message.
    static func bitDifference(_ a: any ArrayNode, _ b: any ArrayNode, _ what: String, _ expected: String) -> String? {
        if a.dtype != b.dtype { return "\(what) has dtype \(a.dtype), \(expected) \(b.dtype)" }
        if a.count != b.count { return "\(what) has \(a.count) rows, \(expected) \(b.count)" }
        for i in 0..<a.count {
            guard let x = try? a.scalar(at: i), let y = try? b.scalar(at: i) else { return "row \(i) unreadable" }
            if !sameBits(x.value, y.value) {
                return "row \(i) is \(show(x.value)) \(what), \(show(y.value)) \(expected)"
            }
        }
        return nil
    }

    /// Equal values, floats by their bit pattern.
    static func sameBits(_ a: ScalarValue, _ b: ScalarValue) -> Bool {
        switch (a, b) {
        case (.float(let x), .float(let y)): return x.bitPattern == y.bitPattern
        case (.struct(let x), .struct(let y)): return x.count == y.count && zip(x, y).allSatisfy { sameBits($0, $1) }
        default: return a == b
        }
    }

    /// A value as a message shows it: floats with every digit that tells them apart, and their bits
    /// when that is not enough (-0.0, NaN payloads).
    static func show(_ v: ScalarValue) -> String {
        switch v {
        case .float(let d) where d.isNaN: "nan (0x" + String(d.bitPattern, radix: 16) + ")"
        case .float(let d): "\(d)"
        case .null: "null"
        case .utf8(let s): "'" + (s.count > 40 ? String(s.prefix(40)) + "…(\(s.utf8.count) bytes)" : s) + "'"
        default: "\(v)"
        }
    }
}
