import ArgumentParser
import EddyEval

package struct EvalCommand: ParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a filter and expressions over a CSV, JSON Lines, Parquet or .eddy file.",
        discussion: """
            The file is read in batches; each batch is encoded for the query (strings
            with few distinct values as a dictionary, so that a comparison or a
            like runs once per distinct value; a plugin's compressor hook made for
            queries may encode a column its way) and evaluated on its encoded form.
            --compression storage encodes each batch as small as the compressor can
            (run-end, frame-of-reference, bit-packing, cascades; storage hooks), as
            a file would store it; query encodes every column read for the query;
            the default, auto, decides per column: only the columns --where names
            are encoded for the query, the others stay as parsed. Loaded plugins'
            kernels do not change how a batch is encoded.

            EXPRESSIONS
              columns     price, "odd name"  (double quotes for odd names)
              literals    42, -1.5, 'text', true, false, null
              compare     =  !=  <>  <  <=  >  >=
              logic       and  or  not  (three-valued: null and false = false)
              arithmetic  +  -  *  /  unary -
                          integer overflow and integer division by zero are
                          errors naming the row; / on integers truncates
              null tests  x is null, x is not null
              text        name like 'ab%'  (% any run, _ one character)
              cast        cast(x as i64)
                          types: bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 utf8
              functions   coalesce(a, b, …)
              aggregates  count(*) count(x) sum(x) min(x) max(x) mean(x) avg(x)
              naming      --select "fare * 1.2 as gross"
            Precedence, lowest first: or, and, not, comparison / is / like,
            + -, * /, unary minus. Numbers of different types are promoted
            (integers widen; with a float, f64); a literal takes the type of
            the column it meets when its value fits. Write an expression that
            starts with '-' as --where=-x.

            EXAMPLES
              eddy eval trips.csv --where "city = 'Lyon' and fare > 20" \\
                                  --select "vendor, fare, tip"
              eddy eval trips.csv --select "count(*), sum(fare), mean(tip)"
              eddy eval events.jsonl --where "level like 'warn%'" --format json
              eddy eval trips.csv --where "tip is null" --explain
            """
    )

    @Argument(help: "A .csv, .jsonl / .ndjson (JSON Lines), .parquet or .eddy (eddy convert) file.")
    var file: String

    // Values are taken as they are, even when they start with '-' ("-price > -10").
    @Option(
        name: .customLong("where"), parsing: .unconditional,
        help: "A bool expression: rows where it is true are kept.")
    var predicate: String?

    @Option(parsing: .unconditional, help: "Comma-separated expressions to output (default: every column).")
    var select: String?

    @Option(help: "Output format: table, csv, json or arrow (an Arrow IPC stream).")
    var format: String = EvalSettings.Defaults.format

    @Flag(help: "Print each input column's encoding tree and the execution trace (to stderr).")
    var explain = false

    @Option(help: "Column types that override inference, e.g. \"zip:utf8,amount:f64\".")
    var schema: String?

    @Option(
        help: "Input format: csv, jsonl, eddy or parquet (default: from the file's magic, else from the name)."
    )
    var inputFormat: String?

    @OptionGroup var plugins: PluginOptions

    @Option(help: ArgumentHelp("Refuse a CSV record or JSON line longer than this many bytes.", valueName: "bytes"))
    var maxRecordBytes: Int = EvalSettings.Defaults.maxRecordBytes

    @Option(help: ArgumentHelp("Rows per batch.", visibility: .hidden))
    var batchRows: Int = EvalSettings.Defaults.batchRows

    @Option(
        help: ArgumentHelp(
            "Batches evaluated at once, one per thread (default: the available cores; --explain uses one).",
            valueName: "n"))
    var threads: Int = EvalSettings.Defaults.threads

    @Option(
        help: ArgumentHelp(
            "How batches are encoded: auto (per column), query (cheap encodings) or storage (smallest).",
            valueName: "goal"))
    var compression: String = EvalSettings.Defaults.compression

    @Flag(
        name: .customLong("no-zone-maps"),
        help: "For an .eddy file: read every chunk, even those whose statistics rule out --where.")
    var noZoneMaps = false

    @Option(
        help: ArgumentHelp(
            "Map a plugin build for its kernels alone only when the input holds at least this many rows (mapping one costs more than its kernels save on fewer; 0: whenever they can meet the query). A build whose compressor hook the query asks, or whose encoding an .eddy file stores, maps whatever the size.",
            valueName: "rows"))
    var pluginMinRows: Int = PluginDemand.defaultMinKernelRows

    @Flag(
        help:
            "Run plugin code unconfined, with all of this user's rights (by default, once a plugin is loaded, this process reads only the input, the plugin copies and the system's libraries and writes only its output)."
    )
    var noConfine = false

    @Flag(help: ArgumentHelp("Print the peak resident memory to stderr at the end.", visibility: .hidden))
    var reportMemory = false

    /// The options as values (what ``EvalSettings`` runs).
    package var settings: EvalSettings {
        var s = EvalSettings()
        s.file = file
        s.predicate = predicate
        s.select = select
        s.format = format
        s.explain = explain
        s.schema = schema
        s.inputFormat = inputFormat
        s.plugins = plugins.settings
        s.maxRecordBytes = maxRecordBytes
        s.batchRows = batchRows
        s.threads = threads
        s.compression = compression
        s.noZoneMaps = noZoneMaps
        s.pluginMinRows = pluginMinRows
        s.noConfine = noConfine
        s.reportMemory = reportMemory
        return s
    }

    package func validate() throws { try inArgumentParserTerms { try settings.validate() } }

    package func run() throws { try inArgumentParserTerms { try settings.run() } }
}
