@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyTesting

/// `--verify off|quick|full`: how much of the conformance kit runs on a plugin before it serves.
package enum VerifyLevel: String, CaseIterable, Sendable {
    case off, quick, full

    /// The kit's options for the level: a fixed seed (the same build always meets the same inputs,
    /// so a verdict can be kept), a budget per key and a time limit.
    package func options(timeLimit: Double? = nil) -> ConformanceOptions? {
        let limit = timeLimit ?? defaultSeconds
        switch self {
        case .off: return nil
        // Each level checks large inputs too (`timingRows`: one per key, and up to 8 whose integers fill
        // the top of a span): a kernel wrong only past the generated sizes (a fast path taken from 64
        // patches on) passed 717 small inputs at full, and then answered a 5M-row query wrong.
        // (Checked, not timed: the timing runs each side several times, and a verdict needs no figure.)
        case .quick:
            var options = ConformanceOptions(
                seed: 21, inputsPerKey: 48, twoThreads: false, timingRows: 100_000, timeLimit: limit)
            options.timesLargeInputs = false
            return options
        case .full:
            var options = ConformanceOptions(
                seed: 21, inputsPerKey: 400, twoThreads: true, timingRows: 100_000, timeLimit: limit)
            options.timesLargeInputs = false
            return options
        }
    }

    /// The check's default time limit in seconds (`--verify-time-limit` overrides it).
    /// Quick takes about half a second a plugin on a quiet machine (its large inputs most of it); 10 s
    /// leaves room for a loaded one, since a run the limit cuts short refuses the plugin.
    package var defaultSeconds: Double { self == .full ? 60 : self == .quick ? 10 : 0 }

    /// The verifier of the level, its time limit `timeLimit` seconds (nil: the level's default).
    package func verifier(timeLimit: Double? = nil) -> PluginVerifier? {
        guard let options = options(timeLimit: timeLimit) else { return nil }
        return PluginVerifier(level: rawValue, seconds: options.timeLimit ?? 0) { session, name in
            Self.verdict(PluginConformance.check(loadedPlugin: name, in: session, options: options))
        }
    }

    /// Seconds as a report shows them: tenths, hundredths below one second.
    static func seconds(_ t: Double) -> String {
        t < 1 ? String(Double(Int((t * 100).rounded())) / 100) : String(Double(Int((t * 10).rounded())) / 10)
    }

    /// Refused on any disagreement, and when the time limit cut the run short: before a check had any
    /// input, or before every input it plans — the large ones come last for each key, and a kernel
    /// wrong only on long inputs passed every small one (a check not made is not passed). Kernels that
    /// never fired are not wrong answers.
    package static func verdict(_ report: ConformanceReport) -> PluginVerifier.Verdict {
        let inputs = report.inputs
        guard let first = report.failures.first else {
            guard report.notReached.isEmpty else {
                // Not reaching a check is not passing it: a plugin slow on its first inputs (or on a
                // loaded machine) must not serve with keys nobody checked.
                let after = report.stoppedAfter.map { " after \(Self.seconds($0)) s" } ?? ""
                return .refused(
                    "verification did not finish\(after) (--verify-time-limit): \(inputs) inputs agreed, but "
                        + "\(report.notReached.count) of \(report.keys.count) checks were not reached ("
                        + report.notReached.prefix(5).joined(separator: ", ")
                        + "); raise --verify-time-limit, or load it unverified with --verify off")
            }
            if let stopped = report.stoppedAfter {
                return .refused(
                    "verification did not finish after \(Self.seconds(stopped)) s "
                        + "(--verify-time-limit): \(inputs) inputs agreed, but the rest (the large inputs "
                        + "among them) were not checked; raise --verify-time-limit, or load it unverified "
                        + "with --verify off")
            }
            return .verified(VerifiedInputs(inputs: inputs))
        }
        let failing = report.keys.filter { !$0.failures.isEmpty }.map(\.key)
        let tree = first.input.split(separator: "\n").map { $0.drop(while: \.isWhitespace) }
            .prefix(12).joined(separator: " / ")
        return .refused(
            PluginVerifier.wrongAnswerPrefix
                + "\(report.failures.count) of \(inputs) inputs disagreed with decode-then-compute "
                + "(keys: \(failing.joined(separator: ", "))); first: "
                + first.problem.split(separator: "\n").joined(separator: "; ") + "; input: " + tree)
    }
}
