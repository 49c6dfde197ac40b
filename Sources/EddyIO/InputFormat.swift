@_spi(Host) public import Eddy

/// The formats a table is read from, and the one way `eddy eval`, `eddy convert`, `eddy inspect`,
/// `eddy serve` and its workers tell a file's format and open it: a name a user gave
/// (`--input-format`, `input_format`) or the file's name and first bytes, then ``openTable(_:format:descriptor:options:snapshot:)``.
public enum InputFormat: String, Sendable, CaseIterable {
    case csv, jsonl, eddy, parquet

    /// A format a user named: `csv`, `jsonl` (`json` and `ndjson` too), `eddy` or `parquet`; nil for
    /// any other name.
    public init?(named name: String) {
        switch name {
        case "csv": self = .csv
        case "jsonl", "json", "ndjson": self = .jsonl
        case "eddy": self = .eddy
        case "parquet": self = .parquet
        default: return nil
        }
    }

    /// What refuses a name that is no format: `option` is how the surface spells the setting
    /// (`input format`, `input_format`).
    public static func unknown(_ name: String, option: String) -> String {
        "unknown \(option) '\(shortForDisplay(name, limit: 64))'; use csv, jsonl, eddy or parquet"
    }

    /// The format of a file nobody named one for: `.eddy` or an `EDDYFILE` start, `.parquet` or a
    /// `PAR1` start, `.jsonl` / `.ndjson` / `.json`, otherwise CSV. The first bytes are read through
    /// `descriptor` when given (what a server opened), else by `path`.
    public static func of(path: String, descriptor: Int32? = nil) -> InputFormat {
        let eddyStart = descriptor.map { EddyFileFormat.isEddyFile(descriptor: $0) } ?? EddyFileFormat.isEddyFile(path)
        if path.hasSuffix(".eddy") || eddyStart { return .eddy }
        if path.hasSuffix(".parquet") || ParquetFile.isParquetFile(path, descriptor: descriptor) { return .parquet }
        if path.hasSuffix(".jsonl") || path.hasSuffix(".ndjson") || path.hasSuffix(".json") { return .jsonl }
        return .csv
    }

    /// Whether `--schema` type overrides apply (the text formats; the others store their types).
    public var takesTypeOverrides: Bool { self == .csv || self == .jsonl }
}

/// How a table is read, whatever its format (what does not apply to a format is ignored by it,
/// except type overrides: see ``openTable(_:format:descriptor:options:snapshot:)``).
public struct TableOptions: Sendable {
    /// Column types that override inference (CSV, JSON Lines).
    public var overrides: [String: DType] = [:]
    /// Rows per batch (CSV, JSON Lines; a Parquet row group and an `.eddy` chunk are a batch each).
    public var batchRows = 65_536
    /// Record and line bounds (CSV, JSON Lines).
    public var limits = ReadLimits()
    /// Whether CSV columns are typed (a query that reads no column needs no types).
    public var inferTypes = true
    /// How many of the first records CSV and JSON Lines types (and JSON Lines keys) are inferred from:
    /// the first batch's, up to this many.
    public static let inferenceRows = 10_000
    /// Whether an `.eddy` or Parquet file is mapped (else read with `pread`).
    public var mapped = true

    public init(
        overrides: [String: DType] = [:], batchRows: Int = 65_536, limits: ReadLimits = ReadLimits(),
        inferTypes: Bool = true, mapped: Bool = true
    ) {
        self.overrides = overrides
        self.batchRows = batchRows
        self.limits = limits
        self.inferTypes = inferTypes
        self.mapped = mapped
    }
}

/// Opens `path` as a table of `format`, reading through `descriptor` when given (the server opens a
/// request's file once, checked, and reads only that descriptor). An `.eddy` file's encodings are
/// looked up in `snapshot` (plugins' included).
/// - Throws: ``IOError`` naming the file: it cannot be read as `format`, or type overrides were
///   given for a format that stores its types.
@_spi(Host) public func openTable(
    _ path: String, format: InputFormat, descriptor: Int32? = nil, options: TableOptions = TableOptions(),
    snapshot: KernelSnapshot
) throws -> any TableReader {
    if !options.overrides.isEmpty && !format.takesTypeOverrides {
        let what = format == .eddy ? "an .eddy file" : "a Parquet file"
        throw IOError(
            file: path, line: 0, column: 0, message: "--schema does not apply to \(what) (its types are stored)")
    }
    switch format {
    case .parquet:
        return ParquetTableReader(file: try ParquetFile(path: path, descriptor: descriptor, mapped: options.mapped))
    case .eddy:
        let file =
            try descriptor.map {
                try EddyFile(descriptor: $0, path: path, snapshot: snapshot, mapped: options.mapped)
            } ?? EddyFile(path: path, snapshot: snapshot)
        return EddyTableReader(file: file)
    case .csv:
        return try CSVReader(
            path: path, overrides: options.overrides, batchRows: options.batchRows, limits: options.limits,
            inferTypes: options.inferTypes, descriptor: descriptor)
    case .jsonl:
        return try JSONLinesReader(
            path: path, overrides: options.overrides, batchRows: options.batchRows, limits: options.limits,
            descriptor: descriptor)
    }
}

extension Compressor.Goal {
    /// The goal a user named — `auto`, `query` or `storage` (`--compression`, the `compression` field of
    /// `/eval`) — or nil for any other name. `eddy eval`, `eddy serve` and its workers decide how a batch
    /// is encoded by this one name, never by which plugins are loaded.
    public init?(named name: String) {
        switch name {
        case "auto": self = .auto
        case "query": self = .query
        case "storage": self = .storage
        default: return nil
        }
    }

    /// The names ``init(named:)`` takes.
    public static let names = ["auto", "query", "storage"]

    /// What refuses a name that is no goal: `option` is how the surface spells the setting
    /// (`--compression`, `compression`).
    public static func unknown(_ name: String, option: String) -> String {
        "unknown \(option) '\(shortForDisplay(name, limit: 64))'; use auto, query or storage"
    }
}
