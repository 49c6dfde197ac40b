@_spi(Host) import Eddy

/// What ``PluginConformance`` generates and checks.
public struct ConformanceOptions: Sendable {
    /// The seed every input derives from; a failure names it, with the key and the input's index.
    public var seed: UInt64
    /// Inputs generated per key: per (parent, child) kernel key, per compressor hook and per encoding
    /// storage of the plugin.
    public var inputsPerKey: Int
    /// Also run every key's inputs on two threads at once and compare with the single-thread results.
    public var twoThreads: Bool
    /// Rows of the one large input per key that is timed (kernels vs decode-then-compute, and vs the
    /// built-in kernels the plugin's replace) and checked; 0 skips timing.
    public var timingRows: Int
    /// Whether the large input is timed as well as checked (false: checked only, as a host verifying a
    /// plugin at load does — the timing runs each side several times).
    public var timesLargeInputs = true
    /// Only this key (`parent|child`, `hook:<name>` or `storage:<encoding>`), to reproduce a failure;
    /// nil for all.
    public var onlyKey: String?
    /// Only this input index, to reproduce a failure; nil for all.
    public var onlyInput: Int?
    /// Seconds the run may take (nil: no limit). When they are spent the run stops cleanly after the
    /// input it is checking: the report says how many inputs were checked and which keys were not
    /// reached (``ConformanceReport/notReached``), which is visible but not a failure. Keys are checked
    /// in rounds of a few inputs each, so a short limit still reaches every key.
    public var timeLimit: Double?
    /// Canonical columns of the plugin's own (data its encoding is made for) that the kit slices,
    /// encodes with the plugin's compressor hooks and uses as inputs besides the generated columns —
    /// for keys on the plugin's own encodings only: a kernel on one of the engine's encodings is checked
    /// on arrays of your own with ``KernelConformance/check(_:on:)``.
    public var sampleColumns: [any ArrayNode]

    /// Options for a run; the defaults check 300 inputs per key, on two threads too, time 100,000 rows
    /// and have no time limit.
    public init(
        seed: UInt64 = 1, inputsPerKey: Int = 300, twoThreads: Bool = true, timingRows: Int = 100_000,
        onlyKey: String? = nil, onlyInput: Int? = nil, timeLimit: Double? = nil, sampleColumns: [any ArrayNode] = []
    ) {
        self.seed = seed
        self.inputsPerKey = inputsPerKey
        self.twoThreads = twoThreads
        self.timingRows = timingRows
        self.onlyKey = onlyKey
        self.onlyInput = onlyInput
        self.timeLimit = timeLimit
        self.sampleColumns = sampleColumns
    }
}
