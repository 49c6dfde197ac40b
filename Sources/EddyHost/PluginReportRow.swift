@_spi(Host) import Eddy
import EddyIO

/// One row of a scan report: what happened to one file.
public struct PluginReportRow: Sendable, Equatable {
    public enum Status: String, Sendable { case loaded, skipped, rejected, replaced, quarantined }

    public var file: String
    public var status: Status
    /// Why it was skipped or rejected (the check that failed, what was expected and found).
    public var reason: String
    public var plugin: String
    public var version: String
    public var kernels: Int
    public var contentHash: String
    public var loadMilliseconds: Double
    /// Where the file, a symbolic link in the plugin directory, points (empty for a plain file).
    public var linkTarget: String = ""
    /// Who signed the file: the trusted key's name, or the signer it names with its key's fingerprint
    /// when that key is not trusted (empty for an unsigned file).
    public var signer: String = ""

    /// Whether the file's first load in a child process ran for this row.
    public enum Probe: String, Sendable {
        /// The row was decided before the probe (a failed check, the same bytes already mapped).
        case none = ""
        /// The child process loaded it (its verdict is the row's, when it failed).
        case ran
        /// It passed in a child process earlier under this host build (a verdict kept beside the
        /// private copies), so it was not run again.
        case passedEarlier = "passed earlier"
        /// A probe of the same bytes under this host build refused them a short while ago (a verdict
        /// kept beside the private copies, see ``PluginHost/reusesRefusals``), so it was not run again.
        case refusedEarlier = "refused earlier"
        /// `--no-probe`.
        case off
    }
    public var probe: Probe = .none
    /// The file's Swift code was compiled without optimisation (`swift build` without `-c release`):
    /// its kernels run several times slower than a release build's (see ``ELFBuildMode``).
    public var debugBuild = false
    /// How many generated inputs its kernels, hooks and storage were checked on against
    /// decode-then-compute before they served a query (`--verify`); nil when not verified.
    public var verified: VerifiedInputs?

    /// The row as a JSON object.
    public var json: String {
        let q = Self.jsonString
        return "{\"file\": \(q(file)), \"status\": \(q(status.rawValue)), \"reason\": \(q(reason)), "
            + "\"plugin\": \(q(plugin)), \"version\": \(q(version)), \"kernels\": \(kernels), "
            + "\"content_hash\": \(q(contentHash)), \"load_ms\": \((loadMilliseconds * 100).rounded() / 100)"
            + (linkTarget.isEmpty ? "" : ", \"link_target\": \(q(linkTarget))")
            + (signer.isEmpty ? "" : ", \"signer\": \(q(signer))")
            + (probe == .none ? "" : ", \"probe\": \(q(probe.rawValue))")
            + (debugBuild ? ", \"debug_build\": true" : "")
            + (verified.map { ", \"verified_inputs\": \($0.inputs)" } ?? "") + "}"
    }

    /// `s` as a JSON string literal.
    public static func jsonString(_ s: String) -> String { ResultWriter.jsonString(s) }
}

/// A plugin whose kernels are (or were) in the registry.
public struct LoadedPlugin: Sendable {
    public var name: String
    public var version: String
    public var file: String
    public var contentHash: String
    public var shadowPath: String
    public var kernelCount: Int
    /// The inputs it was checked on before serving (`--verify`), as its load's row said; nil when not
    /// verified. Kept here because a later scan of the same bytes reports the file as unchanged, without it.
    public var verified: VerifiedInputs? = nil
    /// What it registered, as its probe reported it (``PluginUses``); nil when not known.
    public var uses: PluginUses? = nil
}
