import ArgumentParser
import CEddyHost
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO

#if canImport(Glibc)
    import Glibc
#endif

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a CSV, JSON Lines or Parquet file into an .eddy file (compressed arrays, read in place).",
        discussion: """
            Each chunk of --chunk-rows rows is compressed column by column with the
            storage compressor (dictionary, run-end, frame-of-reference, bit-packing,
            and the compressor hooks of loaded plugins) and written as encoding trees
            with per-chunk statistics (nulls, min, max) that `eddy eval` uses to skip
            chunks. A plugin's encoding in the file needs that plugin to read it.
            The file appears under OUT only when complete.

            EXAMPLE
              eddy convert trips.csv trips.eddy
              eddy eval trips.eddy --where "fare > 20" --select "count(*)"
            """
    )

    @Argument(help: "A .csv, .jsonl or .ndjson file.")
    var input: String

    @Argument(
        help: "The .eddy file to write (an existing .eddy file there is replaced; any other file only with --force).")
    var output: String

    @Flag(help: "Replace OUTPUT even when it exists and is not an .eddy file.")
    var force = false

    @Option(help: "Column types that override inference, e.g. \"zip:utf8,amount:f64\".")
    var schema: String?

    @Option(help: "Input format: csv, jsonl or parquet (default: from the file).")
    var inputFormat: String?

    @Option(help: ArgumentHelp("Rows per chunk (1 to 16777216).", valueName: "rows"))
    var chunkRows: Int = 65_536

    @Option(help: ArgumentHelp("Refuse a CSV record or JSON line longer than this many bytes.", valueName: "bytes"))
    var maxRecordBytes: Int = ReadLimits().maxRecordBytes

    @Option(
        help: ArgumentHelp("Chunks compressed at once, one per thread (default: the available cores).", valueName: "n"))
    var threads: Int = availableCores()

    @OptionGroup var plugins: PluginOptions

    @Flag(
        help:
            "Run plugin code unconfined, with all of this user's rights (by default, once a plugin is loaded, this process reads only the input, the plugin copies and the system's libraries, and writes only the output, which a separate process puts in place)."
    )
    var noConfine = false

    func validate() throws {
        guard chunkRows >= 1, chunkRows <= EddyFileFormat.maxChunkRows else {
            throw ValidationError("--chunk-rows must be between 1 and \(EddyFileFormat.maxChunkRows)")
        }
        guard threads >= 1, threads <= 256 else { throw ValidationError("--threads must be between 1 and 256") }
        guard maxRecordBytes > 0, maxRecordBytes <= 1 << 30 else {
            throw ValidationError("--max-record-bytes must be between 1 and \(1 << 30)")
        }
        if inputFormat == "eddy" { throw ValidationError("the input of convert is CSV, JSON Lines or Parquet") }
    }

    func run() throws {
        let session = Session()
        var committer: OutputCommitter?
        defer { committer?.close() }
        do {
            // The output is checked, and (when plugin code will run confined) created, before any
            // plugin is loaded: confined, this process may no longer look at it.
            if realPath(input).map({ $0 == realPath(output) }) == true {
                throw IOError(file: output, line: 0, column: 0, message: "is the input file; name another output")
            }
            // A pipe, device or socket (`/dev/stdout`, a FIFO) would be replaced by a regular file: the
            // output is written beside it and renamed into place. Never, --force or not.
            if FileKind.of(output) == .other {
                throw IOError(
                    file: output, line: 0, column: 0,
                    message: "is not a regular file (a pipe, device or socket); an .eddy file is written beside "
                        + "its output and renamed into place, which would replace it: name a regular file")
            }
            // Arguments given the wrong way round (`convert s.csv precious.csv`) would replace the data
            // with an .eddy file: only an .eddy file is replaced without --force.
            if !force, let kind = FileKind.of(output), kind != .directory, !EddyFileFormat.isEddyFile(output) {
                throw IOError(
                    file: output, line: 0, column: 0,
                    message: "exists and is not an .eddy file (it does not start with EDDYFILE); it was not replaced: "
                        + "name another output, or give --force to replace it")
            }
            let (_, _, confinement) =
                noConfine
                ? try plugins.settings.loadUnconfined(into: session)
                : try plugins.settings.loadConfined(into: session, readPaths: [input]) {
                    committer = try OutputCommitter(output: output)
                }
            if let confinement, confinement.level != .full {
                Stderr.write("eddy: warning: plugin code runs with confinement \(confinement)\n")
            }
            let overrides = try schema.map(Schema.parseOverrides) ?? [:]
            let snapshot = session.kernels.snapshot
            if EddyFileFormat.isEddyFile(input) {
                throw IOError(file: input, line: 0, column: 0, message: "is already an .eddy file")
            }
            // Types are inferred from the first batch (up to 10,000 records, as JSON Lines keys are):
            // batches of at least that many, cut into chunks by EddyConvert, so that `--chunk-rows 1` infers
            // the same types as the default (a column empty in its first row was text, integers below).
            let reader = try openReader(
                input, format: inputFormat ?? nil, overrides: overrides,
                batchRows: Swift.max(chunkRows, TableOptions.inferenceRows),
                limits: ReadLimits(maxRecordBytes: maxRecordBytes), snapshot: snapshot)
            let writer =
                try committer.map {
                    try EddyFileWriter(
                        path: output, schema: reader.schema, snapshot: snapshot, temporary: try $0.takeTemporary(),
                        placement: $0.placement)
                } ?? EddyFileWriter(path: output, schema: reader.schema, snapshot: snapshot)
            // Interrupted (Ctrl-C, a kill), the half-written file is removed: no name is left behind.
            PartialFile.watch(writer.temporaryPath)
            defer { PartialFile.clear() }
            let warn: @Sendable (String) -> Void = { Stderr.write("eddy: warning: \($0)\n") }
            let progress: ((String) -> Void)? =
                isatty(STDERR_FILENO) != 0 ? { line in Stderr.write("\r\u{1B}[K" + line) } : nil
            let summary = try EddyConvert.run(
                reader: reader, writer: writer,
                compressor: Compressor(hooks: EddyConvert.storableHooks(snapshot, warn: warn), goal: .storage),
                session: session, threads: threads, chunkRows: chunkRows, progress: progress)
            if progress != nil { Stderr.write("\r\u{1B}[K") }
            let ratio = summary.bytes > 0 ? Double(summary.plainBytes * 100 / summary.bytes) / 100 : 0
            Stdout.write(
                "wrote \(output): \(summary.rows) rows, \(reader.schema.fields.count) columns, \(summary.chunks) chunk"
                    + (summary.chunks == 1 ? ", " : "s, ")
                    + "\(summary.bytes) bytes (\(summary.plainBytes) plain, ratio \(ratio))\n")
            Stdout.flush()
        } catch let e as IOError {
            Stderr.write("eddy: error: \(e)\n")
            throw ExitCode(1)
        } catch let e as EddyError {
            Stderr.write("eddy: error: \(e)\n")
            throw ExitCode(1)
        }
    }
}

/// What puts `eddy convert`'s output in place when plugin code runs confined: the temporary file, made
/// before confinement, and a committer process (`eddy_spawn_committer`) that alone keeps the right to
/// rename it to the output or remove it — the confined process may create, rename or remove no file.
/// A conversion that fails or is killed leaves nothing: the committer removes the temporary when this
/// process's end of the socket closes.
final class OutputCommitter {
    private var temporary: (path: String, fd: Int32)?
    private var socket: Int32
    private let pid: pid_t

    init(output: String) throws {
        let made = try EddyFileWriter.createTemporary(for: output)
        var child: Int32 = 0
        socket = eddy_spawn_committer(made.path, output, &child)
        guard socket >= 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(made.fd)
            unlink(made.path)
            throw IOError(
                file: output, line: 0, column: 0, message: "cannot start the process that puts it in place: \(reason)")
        }
        temporary = made
        pid = child
    }

    /// The temporary file (once).
    func takeTemporary() throws -> (path: String, fd: Int32) {
        guard let made = temporary else { throw IOError(file: "", line: 0, column: 0, message: "no temporary file") }
        temporary = nil
        return made
    }

    /// Renames and removes through the committer.
    var placement: EddyFileWriter.Placement {
        let socket = self.socket
        return EddyFileWriter.Placement(
            rename: { _, _ in eddy_committer_request(socket, CChar(UInt8(ascii: "R"))) },
            discard: { _ in _ = eddy_committer_request(socket, CChar(UInt8(ascii: "U"))) })
    }

    /// Ends the committer (removing the temporary unless it was renamed) and waits for it.
    func close() {
        if let made = temporary { Glibc.close(made.fd) }
        temporary = nil
        guard socket >= 0 else { return }
        Glibc.close(socket)
        socket = -1
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

/// The file a conversion is writing, removed if the process is interrupted (SIGINT, SIGTERM, SIGHUP).
enum PartialFile {
    // Written before the handlers are installed and cleared after; the handler only reads it.
    nonisolated(unsafe) static var path: UnsafeMutablePointer<CChar>?

    static func watch(_ file: String) {
        path = strdup(file)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { sig in
                // Async-signal-safe: unlink, then die of the same signal.
                if let p = PartialFile.path { unlink(p) }
                signal(sig, SIG_DFL)
                raise(sig)
            }
        }
    }

    static func clear() {
        for sig in [SIGINT, SIGTERM, SIGHUP] { signal(sig, SIG_DFL) }
        let p = path
        path = nil
        free(p)
    }
}
