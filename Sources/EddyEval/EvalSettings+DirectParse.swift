@_spi(Host) import EddyIO

extension EvalSettings {
    /// The values of the options not given, for ArgumentParser and ``parsedDirectly(_:)`` alike.
    package enum Defaults {
        package static let format = "table"
        package static var maxRecordBytes: Int { ReadLimits().maxRecordBytes }
        package static let batchRows = 65_536
        package static var threads: Int { availableCores() }
        package static let compression = "auto"
    }

    /// Each option of `eddy eval` (its own and ``PluginOptions``') and how it takes its value.
    package static let directOptions: [String: DirectArguments.Value] = PluginSettings.directOptions.merging([
        "where": .unconditional, "select": .unconditional, "format": .next, "schema": .next, "input-format": .next,
        "max-record-bytes": .next, "batch-rows": .next, "threads": .next, "compression": .next,
        "plugin-min-rows": .next,
    ]) { own, _ in own }

    /// Each flag of `eddy eval` (its own and ``PluginOptions``').
    package static let directFlags: Set<String> = PluginSettings.directFlags.union([
        "explain", "no-zone-maps", "no-confine", "report-memory",
    ])

    /// `eddy eval`'s arguments (after `eval`) read by ``DirectArguments`` and validated as ArgumentParser
    /// would; nil for a line it does not take as it is, which `eddy-server` then reads with
    /// ArgumentParser (and words any error of).
    package static func parsedDirectly(_ arguments: ArraySlice<String>) -> EvalSettings? {
        guard let given = DirectArguments(arguments, options: directOptions, flags: directFlags),
            given.positional.count == 1
        else { return nil }
        var command = EvalSettings()
        do {
            command.file = given.positional[0]
            command.predicate = given.values["where"]
            command.select = given.values["select"]
            command.format = given.text("format", Defaults.format)
            command.explain = given.flags.contains("explain")
            command.schema = given.values["schema"]
            command.inputFormat = given.values["input-format"]
            command.plugins = try PluginSettings.parsedDirectly(given)
            command.maxRecordBytes = try given.integer("max-record-bytes", Defaults.maxRecordBytes)
            command.batchRows = try given.integer("batch-rows", Defaults.batchRows)
            command.threads = try given.integer("threads", Defaults.threads)
            command.compression = given.text("compression", Defaults.compression)
            command.noZoneMaps = given.flags.contains("no-zone-maps")
            command.pluginMinRows = try given.integer("plugin-min-rows", PluginDemand.defaultMinKernelRows)
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

extension PluginSettings {
    /// The values of the options not given, for ArgumentParser and ``parsedDirectly(_:)`` alike.
    package enum Defaults {
        package static let probeTimeout: Double = 10
        package static let maxPluginBytes = 256 << 20
        package static let verify = VerifyLevel.quick
    }

    package static let directOptions: [String: DirectArguments.Value] = [
        "plugin-dir": .next, "probe-timeout": .next, "max-plugin-bytes": .next, "trusted-keys": .next,
        "verify": .next, "verify-time-limit": .next,
    ]

    package static let directFlags: Set<String> = ["no-probe", "allow-insecure-dir", "require-signed"]

    /// The plugin options of a line ``DirectArguments`` read (validated by the caller).
    static func parsedDirectly(_ given: DirectArguments) throws -> PluginSettings {
        var options = PluginSettings()
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

extension EvalSettings {
    /// Runs `eddy eval ARGUMENTS` (the words after `eval`) when ``parsedDirectly(_:)`` reads them, and
    /// returns the exit status; nil, having run nothing, for a line it does not take as it is (help,
    /// an unknown or malformed option), which ArgumentParser must read.
    package static func runDirectly(_ arguments: ArraySlice<String>) -> Int32? {
        guard !arguments.contains(where: meansSomethingAtTheRoot), let settings = parsedDirectly(arguments) else {
            return nil
        }
        do {
            try settings.run()
            return 0
        } catch let e as ExitStatus {
            return e.code
        } catch let e as UsageError {
            // As ArgumentParser words a validation error (a key directory unreadable since it was checked).
            Stderr.write(
                "Error: \(e.description)\nUsage: eddy eval <options> <file>\n  See 'eddy eval --help' for more information.\n"
            )
            return 64
        } catch {
            Stderr.write("Error: \(error)\n")
            return 1
        }
    }

    /// The arguments that mean something to ArgumentParser at the root of a tree (help, completion
    /// scripts, dumps) rather than to the command: a command line holding one is parsed as a whole.
    package static func meansSomethingAtTheRoot(_ argument: String) -> Bool {
        argument == "help" || argument == "-h" || argument.hasPrefix("--help") || argument == "--version"
            || argument.hasPrefix("--generate-completion") || argument.hasPrefix("--experimental")
    }
}
