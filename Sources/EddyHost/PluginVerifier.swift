@_spi(Host) public import Eddy

/// Checks what a plugin computes before its kernels serve any query (`--verify quick|full`): the
/// host hands it a throwaway session holding the engine and the plugin just registered, and it
/// answers with how many inputs agreed with decode-then-compute, or why the plugin is refused.
///
/// The host runs it where the plugin's code already runs — in the probe process, or in the host
/// itself under `--no-probe` — so a verifier that meets a crashing kernel costs only the probe.
/// How much a passed plugin verification checked: the inputs that agreed with decode-then-compute.
/// (A verification its time limit cut short is a refusal, never a pass: a plugin must not get past
/// it by being slow on the first inputs.)
public struct VerifiedInputs: Sendable, Equatable {
    public var inputs: Int

    public init(inputs: Int) { self.inputs = inputs }

    /// As the probe's record carries it: `N`.
    public var field: String { "\(inputs)" }

    /// Parses ``field``; nil for anything else (`-`: not verified).
    public init?(field: some StringProtocol) {
        guard let n = Int(field), n >= 0 else { return nil }
        self.init(inputs: n)
    }
}

@_spi(Host) public struct PluginVerifier: Sendable {
    /// What the verifier found.
    public enum Verdict: Sendable, Equatable {
        /// Every checked input agreed.
        case verified(VerifiedInputs)
        /// A disagreement (or a check that could not run): the report, naming the plugin, version,
        /// kernel or hook, the input and both answers.
        case refused(String)
    }

    /// How a refusal by verification starts, as the loader words it (see ``reportsWrongAnswer(_:)``).
    public static let refusalPrefix = "refused by verification ("
    /// How a report of a disagreement with decode-then-compute starts.
    public static let wrongAnswerPrefix = "wrong answer: "

    /// Whether a load's refusal is verification's wrong answer (``refusalPrefix`` … `: ` then
    /// ``wrongAnswerPrefix``), not a crash, hang or a check not reached.
    public static func reportsWrongAnswer(_ reason: String) -> Bool {
        reason.utf8.starts(with: refusalPrefix.utf8) && PluginProbe.mentions(reason, ": " + wrongAnswerPrefix)
    }

    /// The level's name as the flag spells it (`quick`, `full`).
    public let level: String
    /// Seconds the check may take (its own time limit).
    public let seconds: Double
    /// Seconds after which a check run in the host (`--no-probe`) that has not returned counts as hung:
    /// twice its limit (a check stops between inputs, so one slow input may overrun it) plus a margin.
    /// (In a probe, the probe's timeout grows by twice the limit.)
    public var hangSeconds: Double { seconds * 2 + 5 }
    /// Checks plugin `name` as registered in the session.
    public let check: @Sendable (_ session: Session, _ plugin: String) -> Verdict

    public init(level: String, seconds: Double, check: @escaping @Sendable (Session, String) -> Verdict) {
        self.level = level
        self.seconds = seconds
        self.check = check
    }
}
