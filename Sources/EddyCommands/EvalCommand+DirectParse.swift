@_spi(Host) import EddyIO

extension EvalCommand {
    /// The values of the options not given, for ArgumentParser and ``parsedDirectly(_:)`` alike.
    enum Defaults {
        static let format = "table"
        static var maxRecordBytes: Int { ReadLimits().maxRecordBytes }
        static let batchRows = 65_536
        static var threads: Int { availableCores() }
        static let compression = "auto"
    }

    /// Each option of `eddy eval` (its own and ``PluginOptions``') and how it takes its value.
    static let directOptions: [String: DirectArguments.Value] = PluginOptions.directOptions.merging([
        "where": .unconditional, "select": .unconditional, "format": .next, "schema": .next, "input-format": .next,
        "max-record-bytes": .next, "batch-rows": .next, "threads": .next, "compression": .next,
    ]) { own, _ in own }

    /// Each flag of `eddy eval` (its own and ``PluginOptions``').
    static let directFlags: Set<String> = PluginOptions.directFlags.union([
        "explain", "no-zone-maps", "no-confine", "report-memory",
    ])

    /// `eddy eval`'s arguments (after `eval`) read by ``DirectArguments`` and validated as ArgumentParser
    /// would; nil for a line it does not take as it is, which ArgumentParser then reads.
    static func parsedDirectly(_ arguments: ArraySlice<String>) -> EvalCommand? {
        guard let given = DirectArguments(arguments, options: directOptions, flags: directFlags),
            given.positional.count == 1
        else { return nil }
        var command = EvalCommand()
        do {
            command.file = given.positional[0]
            command.predicate = given.values["where"]
            command.select = given.values["select"]
            command.format = given.text("format", Defaults.format)
            command.explain = given.flags.contains("explain")
            command.schema = given.values["schema"]
            command.inputFormat = given.values["input-format"]
            command.plugins = try PluginOptions.parsedDirectly(given)
            command.maxRecordBytes = try given.integer("max-record-bytes", Defaults.maxRecordBytes)
            command.batchRows = try given.integer("batch-rows", Defaults.batchRows)
            command.threads = try given.integer("threads", Defaults.threads)
            command.compression = given.text("compression", Defaults.compression)
            command.noZoneMaps = given.flags.contains("no-zone-maps")
            command.noConfine = given.flags.contains("no-confine")
            command.reportMemory = given.flags.contains("report-memory")
            try command.plugins.validate()
            try command.validate()
        } catch {
            return nil
        }
        return command
    }
}

extension PluginOptions {
    /// The values of the options not given, for ArgumentParser and ``parsedDirectly(_:)`` alike.
    enum Defaults {
        static let probeTimeout: Double = 10
        static let maxPluginBytes = 256 << 20
        static let verify = VerifyLevel.quick
    }

    static let directOptions: [String: DirectArguments.Value] = [
        "plugin-dir": .next, "probe-timeout": .next, "max-plugin-bytes": .next, "trusted-keys": .next,
        "verify": .next, "verify-time-limit": .next,
    ]

    static let directFlags: Set<String> = ["no-probe", "allow-insecure-dir", "require-signed"]

    /// The plugin options of a line ``DirectArguments`` read (validated by the caller).
    static func parsedDirectly(_ given: DirectArguments) throws -> PluginOptions {
        var options = PluginOptions()
        options.pluginDir = given.values["plugin-dir"]
        options.noProbe = given.flags.contains("no-probe")
        options.probeTimeout = try given.number("probe-timeout", Defaults.probeTimeout) ?? Defaults.probeTimeout
        options.allowInsecureDir = given.flags.contains("allow-insecure-dir")
        options.maxPluginBytes = try given.integer("max-plugin-bytes", Defaults.maxPluginBytes)
        options.trustedKeys = given.values["trusted-keys"]
        options.requireSigned = given.flags.contains("require-signed")
        options.verify = try given.raw("verify", Defaults.verify)
        options.verifyTimeLimit = try given.number("verify-time-limit", nil)
        return options
    }
}
