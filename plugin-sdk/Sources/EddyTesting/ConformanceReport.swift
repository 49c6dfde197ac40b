@_spi(Host) import Eddy

/// One key's results.
public struct KeyReport: Sendable, CustomStringConvertible {
    /// `parent|child` for kernels (for example `eddy.compare|eddy.dict`), `hook:<name>` for a compressor
    /// hook, `storage:<encoding>` for an encoding's storage.
    public let key: String
    /// Inputs checked for the key.
    public var inputs = 0
    /// How often each kernel under test fired, by name.
    public var fired: [String: Int] = [:]
    /// Disagreements with decode-then-compute, each with what reproduces it.
    public var failures: [KernelConformance.Failure] = []
    /// Time with the kernels / time decoding first, on the one large input (nil when not timed or
    /// when no kernel under test fired on it).
    public var speedRatio: Double?
    /// Time with the plugin's kernels / time with the engine's built-in kernels for the same key (the
    /// ones the plugin's run before and replace), on the same large input; nil when the key has no
    /// built-in kernel, when not timed, or for ``PluginConformance/checkBuiltins(options:)``.
    public var builtInRatio: Double?
    /// The plugin's kernels took more than 1.1× the built-ins' time on the large input (a margin for
    /// noise): the plugin makes this key slower than the engine alone.
    public var slowerThanBuiltIn: Bool { (builtInRatio ?? 0) > 1.1 }
    /// No built-in kernel for the key, and the plugin's kernels took more than 1.1× the time of
    /// decoding first and computing on plain data: the key is faster without the plugin.
    public var slowerThanDecoding: Bool { builtInRatio == nil && (speedRatio ?? 0) > 1.1 }
    /// Why the key has no time figure although timing was asked for (``ConformanceOptions/timingRows``):
    /// no large input could be made, or no kernel under test fired on those tried.
    public var notTimed: String?
    /// Why no input could be made for the key, when none could.
    public var notGenerated: String?
    /// The time limit ran out before the key's first input (see ``ConformanceOptions/timeLimit``).
    public var notReached = false

    /// A report for `key` with nothing recorded yet (for tools that merge or print reports).
    public init(key: String) { self.key = key }

    public var description: String {
        var s =
            "\(key): \(inputs) inputs, \(failures.count) failures"
            + (key.hasPrefix("hook:") || key.hasPrefix("storage:")
                ? ""
                : ", fired "
                    + (fired.isEmpty
                        ? "never"
                        : fired.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")))
        if let r = speedRatio {
            s += ", time vs decode-then-compute " + String(format2: r) + "×"
            if slowerThanDecoding { s += " — SLOWER than decoding first (no kernel at all)" }
        }
        if let r = builtInRatio {
            s += ", vs the built-in kernel " + String(format2: r) + "×"
            if slowerThanBuiltIn { s += " — SLOWER than the built-in kernel it replaces" }
        }
        if let why = notTimed { s += " (not timed: \(why))" }
        if let why = notGenerated { s += " (not generated: \(why))" }
        if notReached { s += " (not reached: time limit)" }
        return s
    }
}

/// What a conformance run found.
public struct ConformanceReport: Sendable, CustomStringConvertible {
    /// One report per key checked, each key once: the (parent, child) kernel keys, then the plugin's
    /// compressor hooks (`hook:<name>`), then its encoding storages (`storage:<encoding>`).
    public var keys: [KeyReport] = []
    /// Kernels under test that never fired on any input (of the keys whose every input was checked).
    public var neverFired: [String] = []
    /// Seconds after which the time limit stopped the run; nil when every input was checked.
    public var stoppedAfter: Double?
    /// Keys where the plugin's kernels were slower than the built-in kernels they replace (timing is
    /// noisy, so this does not fail the run; see ``KeyReport/builtInRatio``).
    public var slowerThanBuiltIn: [String] { keys.filter(\.slowerThanBuiltIn).map(\.key) }
    /// Keys without a built-in kernel where the plugin's kernels were slower than decoding first
    /// (timing is noisy, so this does not fail the run either).
    public var slowerThanDecoding: [String] { keys.filter(\.slowerThanDecoding).map(\.key) }
    /// The number of inputs checked, over every key.
    public var inputs: Int { keys.reduce(0) { $0 + $1.inputs } }
    /// Keys the time limit stopped the run before (not a failure; see ``ConformanceOptions/timeLimit``).
    public var notReached: [String] { keys.filter(\.notReached).map(\.key) }

    /// A report of `keys` (for tools that merge or print reports).
    public init(keys: [KeyReport] = []) { self.keys = keys }

    /// Every failure of every key.
    public var failures: [KernelConformance.Failure] { keys.flatMap(\.failures) }
    /// No failure, every kernel fired, every key generated (keys not reached in the time limit do not
    /// count against it: the check sampled less, it found nothing wrong).
    public var passed: Bool { failures.isEmpty && neverFired.isEmpty && keys.allSatisfy { $0.notGenerated == nil } }

    public var description: String {
        var lines = keys.map(\.description)
        if !neverFired.isEmpty { lines.append("never fired: " + neverFired.joined(separator: ", ")) }
        if !slowerThanBuiltIn.isEmpty {
            lines.append("slower than the built-in kernels they replace: " + slowerThanBuiltIn.joined(separator: ", "))
        }
        if !slowerThanDecoding.isEmpty {
            lines.append("slower than decoding first: " + slowerThanDecoding.joined(separator: ", "))
        }
        if let t = stoppedAfter {
            lines.append(
                "stopped by the time limit after \(String(format2: t)) s: \(inputs) inputs checked"
                    + (notReached.isEmpty ? "" : "; not reached: " + notReached.joined(separator: ", ")))
        }
        for f in failures.prefix(5) { lines.append(f.description) }
        lines.append(passed ? "PASSED (\(inputs) inputs)" : "FAILED")
        return lines.joined(separator: "\n")
    }
}

extension String {
    /// `value` with two decimals.
    init(format2 value: Double) {
        let scaled = (value * 100).rounded()
        guard scaled.isFinite, abs(scaled) < 1e15 else {
            self = "\(value)"
            return
        }
        let whole = Int(scaled) / 100
        let frac = abs(Int(scaled) % 100)
        self = "\(whole).\(frac < 10 ? "0" : "")\(frac)"
    }
}
