@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery

#if canImport(Glibc)
    import Glibc
#endif

/// A command line the user got wrong: `eddy-server` (ArgumentParser) words it with the command's usage.
package struct UsageError: Error, CustomStringConvertible, Sendable {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// The exit status a command ends with after it said why (on standard error).
package struct ExitStatus: Error, Sendable {
    package let code: Int32
}

/// `eddy eval`'s options as values, and the evaluation they ask for: what `eddy` runs itself, without
/// ArgumentParser (``parsedDirectly(_:)``), and what EddyCommands' `EvalCommand` runs after reading
/// the same options with it.
package struct EvalSettings: Sendable {
    package var file = ""
    package var predicate: String?
    package var select: String?
    package var format: String = Defaults.format
    package var explain = false
    package var schema: String?
    package var inputFormat: String?
    package var plugins = PluginSettings()
    package var maxRecordBytes: Int = Defaults.maxRecordBytes
    package var batchRows: Int = Defaults.batchRows
    package var threads: Int = Defaults.threads
    package var compression: String = Defaults.compression
    package var noZoneMaps = false
    /// The rows an input needs before a build is mapped for its kernels alone (``PluginDemand``).
    package var pluginMinRows: Int = PluginDemand.defaultMinKernelRows
    package var noConfine = false
    package var reportMemory = false

    package init() {}

    package func validate() throws {
        guard maxRecordBytes > 0, maxRecordBytes <= 1 << 30 else {
            throw UsageError("--max-record-bytes must be between 1 and \(1 << 30)")
        }
        guard batchRows > 0, batchRows <= 1 << 24 else {
            throw UsageError("--batch-rows must be between 1 and \(1 << 24)")
        }
        guard threads >= 1, threads <= 256 else { throw UsageError("--threads must be between 1 and 256") }
        guard pluginMinRows >= 0 else { throw UsageError("--plugin-min-rows must be 0 or more") }
        guard Compressor.Goal(named: compression) != nil else {
            throw UsageError(Compressor.Goal.unknown(compression, option: "--compression"))
        }
        // Here, not in run(): a ValidationError thrown there printed the top-level usage, not eval's.
        guard format == "arrow" || OutputFormat(rawValue: format) != nil else {
            throw UsageError("unknown --format '\(format)'; use table, csv, json or arrow")
        }
    }

    package func run() throws {
        let arrowOutput = format == "arrow"
        guard let outputFormat = arrowOutput ? .csv : OutputFormat(rawValue: format) else {
            throw UsageError("unknown --format '\(format)'; use table, csv, json or arrow")
        }
        let session = Session()
        let readsNoColumn = Evaluation.readsNoColumn(whereText: predicate, selectText: select)
        let (host, rows, confinement, pluginsTakePart, demand) = try loadPlugins(
            into: session, readsNoColumn: readsNoColumn)
        if let confinement, confinement.level != .full {
            Stderr.write("eddy: warning: plugin code runs with confinement \(confinement)\n")
        }
        let output = HeldOutput()
        do {
            let overrides = try schema.map(Schema.parseOverrides) ?? [:]
            let trace = explain ? ExecutionTrace() : nil
            let context = session.makeContext(trace: trace)
            let reader = try openReader(
                file, format: inputFormat, overrides: overrides, batchRows: batchRows,
                limits: ReadLimits(maxRecordBytes: maxRecordBytes), snapshot: context.snapshot,
                inferTypes: !readsNoColumn)
            let evaluation = try Evaluation(
                reader: reader, whereText: predicate, selectText: select,
                context: context,
                compressor: Compressor(
                    hooks: context.snapshot.compressorHooks, goal: Compressor.Goal(named: compression) ?? .auto),
                zoneMaps: !noZoneMaps)
            evaluation.threads = threads
            if isatty(STDERR_FILENO) != 0 {
                evaluation.progress = { line in Stderr.write("\r\u{1B}[K" + line) }
            }
            let writer =
                arrowOutput
                ? ResultWriter(
                    arrow: try ArrowStreamWriter(names: evaluation.names, types: evaluation.items.map(\.bound.dtype)) {
                        output.write(bytes: $0)
                    }, names: evaluation.names)
                : ResultWriter(format: outputFormat, names: evaluation.names) { output.write($0) }
            try evaluation.run(into: writer)
            output.finish()
            if isatty(STDERR_FILENO) != 0 && evaluation.rowsRead > 0 { Stderr.write("\r\u{1B}[K") }
            if explain {
                Stderr.write(explainText(evaluation, plugins: host.plugins))
                Stderr.write(Self.pluginsLeftOut(host: host, rows: rows, takePart: pluginsTakePart, demand: demand))
            }
            if reportMemory {
                // VmHWM is this address space's own peak (ru_maxrss carries over a parent's from fork).
                Stderr.write("peak resident memory: \(peakResidentKiB()) KiB\n")
            }
        } catch {
            // Classified as `eddy serve` classifies it: the exit status is the failure's (2 for an
            // expression, 1 for an input or an evaluation).
            guard var failure = EddyFailure(classifying: error) else { throw error }
            // An encoding missing because its plugin's build is quarantined, or its file was refused in
            // this run: say that, not "add that plugin to the plugin directory".
            if error is IOError, let note = host.quarantineExplanation(forEddyFile: file) {
                failure.message = "\(note)"
            } else if error is IOError, let note = host.refusalExplanation(forEddyFile: file, rows: rows) {
                failure.message = note
            }
            output.abandon(failure.message)
            Stderr.write("eddy: error: \(failure.message)\n")
            throw ExitStatus(code: failure.exitCode)
        }
    }
}

extension EvalSettings {
    /// The plugins this evaluation runs with: none when the query reads no column (`count(*)` alone
    /// builds no array and runs no kernel, so none could take part; loading them was most of such a
    /// query on a small `.eddy` file) unless the input is an `.eddy` file that stores a plugin's
    /// encoding (its storage opens the file); none either for an `.eddy` file of the engine's encodings
    /// with fewer rows than `--plugin-min-rows` (read as stored, it asks no compressor hook, and no
    /// build's kernels pay for mapping it there); else the builds its query can use (``PluginDemand``).
    /// The demand is returned when it was asked (there were builds to choose among, or an `.eddy` input).
    func loadPlugins(into session: Session, readsNoColumn: Bool) throws -> (
        PluginHost, [PluginReportRow], Confinement?, takePart: Bool, demand: PluginDemand?
    ) {
        let snapshot = session.kernels.snapshot
        guard !readsNoColumn || storesPluginEncodings(snapshot: snapshot) else {
            let (host, rows, confinement) = try plugins.notLoaded(into: session)
            return (host, rows, confinement, false, nil)
        }
        var asked: PluginDemand?
        // The footer read here is the reader's too (``engineFooter(snapshot:)``): it costs nothing more.
        // (`--no-probe` and `--no-confine` load every build, as before; a directory without a plugin file
        // needs no demand.)
        if !noConfine, !plugins.noProbe, inputKind == .eddy,
            PluginHost.candidates(in: plugins.directory).map({ !$0.isEmpty }) ?? true
        {
            asked = pluginDemand(snapshot: snapshot)
            if let demand = asked, demand.hookPurposes == 0, demand.kernelsDoNotPay {
                let (host, rows, confinement) = try plugins.notLoaded(into: session)
                return (host, rows, confinement, false, demand)
            }
        }
        let early = asked
        let (host, rows, confinement) =
            noConfine
            ? try plugins.loadUnconfined(into: session)
            : try plugins.loadConfined(
                into: session, readPaths: [file],
                demand: {
                    asked = early ?? pluginDemand(snapshot: snapshot)
                    return asked
                })
        return (host, rows, confinement, true, asked)
    }

    /// `--explain`'s lines on the plugins left out: all of them (`takePart` false), or the checked builds
    /// not mapped for this query (under `demand`).
    static func pluginsLeftOut(
        host: PluginHost, rows: [PluginReportRow], takePart: Bool, demand: PluginDemand? = nil
    ) -> String {
        guard takePart else {
            guard let demand, demand.kernelsDoNotPay else {
                return "== plugins: not loaded (the query reads no column: no plugin could take part)\n"
            }
            return "== plugins: not loaded (the input holds \(demand.rows) rows, fewer than --plugin-min-rows "
                + "\(demand.minKernelRows): mapping a build costs more than its kernels save on so few, and an "
                + ".eddy file asks no compressor hook; the plugin directory was not read)\n"
        }
        let mapped = Set(host.plugins.map { $0.contentHash.prefix(16) })
        let left = rows.filter {
            (($0.status == .loaded || $0.status == .replaced) && !mapped.contains($0.contentHash.prefix(16)))
                || ($0.status == .skipped && $0.reason == PluginHost.notNeededReason)
        }
        guard !left.isEmpty else { return "" }
        let why =
            if let demand, demand.kernelsDoNotPay {
                "the input holds \(demand.rowsEstimated ? "about \(demand.rows) rows (by its size)" : "\(demand.rows) rows"), fewer than "
                    + "--plugin-min-rows \(demand.minKernelRows), so no build is mapped for its kernels alone: mapping "
                    + "one costs more than they save on so few; only a compressor hook the query asks maps one"
            } else {
                "their kernels meet none of its operations and encodings"
            }
        return "== plugins not loaded for this query (\(why)): "
            + left.map {
                "\(PluginHost.escaped($0.plugin))@\(PluginHost.escaped($0.version))"
                    + ($0.status == .skipped ? " (its file not read: known by its identity)" : "")
            }
            .joined(separator: ", ") + "\n"
    }

    /// Whether the input is an `.eddy` file that stores an encoding no storage in `snapshot` (the
    /// engine's) reads: a plugin's, which must be loaded for the file to open. True too when the file
    /// cannot be opened as one (the evaluation then says why, plugins loaded as usual).
    func storesPluginEncodings(snapshot: KernelSnapshot) -> Bool {
        inputKind == .eddy && engineFooter(snapshot: snapshot) == nil
    }

    /// The input's format, as named (`--input-format`) or told from the file.
    var inputKind: InputFormat { inputFormat.flatMap(InputFormat.init(named:)) ?? InputFormat.of(path: file) }

    /// The footer of the input opened as an `.eddy` file with `snapshot` (the engine's storages), when
    /// every encoding it stores is the engine's; nil when it is not such a file. Opened as the reader
    /// opens it (footer checksum checked), so that the reader's open finds the file mapped and its
    /// footer parsed (``EddyFile``'s cache, keyed by the file's identity and times): a one-shot with
    /// plugins parses the footer once.
    func engineFooter(snapshot: KernelSnapshot) -> EddyFooter? {
        guard
            let opened = try? EddyFile(path: file, snapshot: snapshot, requireEncodings: false),
            opened.missing.isEmpty, opened.footer.encodings.allSatisfy(\.isBuiltin)
        else { return nil }
        return opened.footer
    }
}

/// The table a command reads: `format` as the user named it, or told from the file (see ``InputFormat``).
package func openReader(
    _ path: String, format: String?, overrides: [String: DType], batchRows: Int,
    limits: ReadLimits, snapshot: KernelSnapshot, inferTypes: Bool = true
) throws -> any TableReader {
    let kind: InputFormat
    if let format {
        guard let named = InputFormat(named: format) else {
            throw IOError(file: path, line: 0, column: 0, message: InputFormat.unknown(format, option: "input format"))
        }
        kind = named
    } else {
        kind = InputFormat.of(path: path)
    }
    return try openTable(
        path, format: kind,
        options: TableOptions(overrides: overrides, batchRows: batchRows, limits: limits, inferTypes: inferTypes),
        snapshot: snapshot)
}

package func explainText(_ e: Evaluation, plugins: [LoadedPlugin]) -> String {
    let names = e.reader.schema.names
    let read = e.columnsRead.filter { $0 < names.count }.map { PluginHost.escaped(names[$0]) }
    var s =
        "== columns read: "
        + (read.isEmpty ? "none" : read.map { $0.contains(",") ? "\"\($0)\"" : $0 }.joined(separator: ", "))
        + (read.count == names.count
            ? " (all \(names.count))" : " (\(read.count) of \(names.count); the others are not typed or built)")
        + "; threads: \(e.countedOnThreads ?? (e.trace == nil ? e.threads : 1))\n"
    for line in e.reader.explainedSkips { s += line + "\n" }
    if let threads = e.countedOnThreads {
        s += "== count(*): " + e.reader.explainedCount(records: e.rowsRead, threads: threads) + "\n"
        s +=
            "== context: snapshot generation \(e.context.snapshot.generation); "
            + "plugin set: \(e.context.snapshot.fingerprint)\n"
        return s
    }
    s +=
        "== input columns, all batches: \(e.rowsRead) rows, \(e.canonicalBytes) bytes plain → \(e.compressedBytes) bytes encoded"
    if e.compressedBytes > 0 {
        s += " (ratio \((Double(e.canonicalBytes) / Double(Swift.max(e.compressedBytes, 1)) * 100).rounded() / 100))"
    }
    s += "; the trees of the first batch:\n"
    for (name, tree) in e.inputTrees {
        s += "\(name):\n" + tree.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
    }
    s += "== plan (first batch)\n"
    for (label, tree) in e.planTrees {
        s += "\(label):\n" + tree.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
    }
    s +=
        "== context: snapshot generation \(e.context.snapshot.generation); plugin set: \(e.context.snapshot.fingerprint)\n"
    if let trace = e.trace {
        let events = trace.events
        s += "== execution trace (\(events.count) steps)\n"
        for ev in events.prefix(200) { s += ev.description + "\n" }
        if events.count > 200 { s += "… \(events.count - 200) more steps\n" }
        var fired: [String: Int] = [:]
        for ev in events where ev.step == .executeParent || ev.step == .reduceParent {
            fired["\(ev.name) [\(ev.owner)]", default: 0] += 1
        }
        if !fired.isEmpty {
            s += "== kernels and rules that fired\n"
            for (k, n) in fired.sorted(by: { $0.key < $1.key }) { s += "\(n)× \(k)\n" }
        }
    }
    return s
}

/// Buffered standard output (the C stream; the process has one thread writing results).
package enum Stdout {
    // Only the command's main thread writes results; the stream is created once and never closed.
    nonisolated(unsafe) static let stream = fdopen(STDOUT_FILENO, "w")

    package static func write(_ s: String) {
        var s = s
        s.withUTF8 { _ = fwrite($0.baseAddress, 1, $0.count, stream) }
    }

    package static func flush() { fflush(stream) }
}

/// Unbuffered standard error, for messages and progress.
package enum Stderr {
    package static func write(_ s: String) {
        var s = s
        s.withUTF8 { b in _ = Glibc.write(STDERR_FILENO, b.baseAddress, b.count) }
        _ = fflush(nil)
    }
}

/// The process's peak resident set, from /proc/self/status (VmHWM), in KiB; -1 when unavailable.
package func peakResidentKiB() -> Int {
    guard let f = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), f) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmHWM:") {
            return Int(text.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? -1
        }
    }
    return -1
}
