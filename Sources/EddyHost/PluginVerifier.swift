@_spi(Host) public import Eddy

/// Checks what a plugin computes before its kernels serve any query (`--verify quick|full`): the
/// host hands it a throwaway session holding the engine and the plugin just registered, and it
/// answers with how many inputs agreed with decode-then-compute, or why the plugin is refused.
///
/// The host runs it where the plugin's code already runs — in the probe process, or in the host
/// itself under `--no-probe` — so a verifier that meets a crashing kernel costs only the probe.
/// How much of a plugin verification checked: inputs that agreed, and whether its time limit ran out
/// before every check had its inputs (then the verdict is not kept: the next load checks again).
public struct VerifiedInputs: Sendable, Equatable {
    public var inputs: Int
    public var partial: Bool

    public init(inputs: Int, partial: Bool) {
        self.inputs = inputs
        self.partial = partial
    }

    /// As the probe's record carries it: `N`, or `N~` when partial.
    public var field: String { "\(inputs)" + (partial ? "~" : "") }

    /// Parses ``field``; nil for anything else (`-`: not verified).
    public init?(field: some StringProtocol) {
        let partial = field.hasSuffix("~")
        guard let n = Int(partial ? field.dropLast() : field[...]), n >= 0 else { return nil }
        self.init(inputs: n, partial: partial)
    }
}

@_spi(Host) public struct PluginVerifier: Sendable {
    public typealias Checked = VerifiedInputs
    /// What the verifier found.
    public enum Verdict: Sendable, Equatable {
        /// Every checked input agreed.
        case verified(Checked)
        /// A disagreement (or a check that could not run): the report, naming the plugin, version,
        /// kernel or hook, the input and both answers.
        case refused(String)
    }

    /// The level's name as the flag spells it (`quick`, `full`).
    public let level: String
    /// Seconds the check may take; the probe's timeout grows by this much.
    public let seconds: Double
    /// Checks plugin `name` as registered in the session.
    public let check: @Sendable (_ session: Session, _ plugin: String) -> Verdict

    public init(level: String, seconds: Double, check: @escaping @Sendable (Session, String) -> Verdict) {
        self.level = level
        self.seconds = seconds
        self.check = check
    }
}
