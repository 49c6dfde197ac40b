import ArgumentParser
@_spi(Host) import Eddy
import EddyIO
@_spi(Host) import EddyTesting

struct KernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "List the kernel registry: per (parent, child) key, the kernels in the order they are tried.",
        discussion: """
            --costs also measures each key on a standard input (an array of the child's encoding, made by \
            the conformance kit's generators from --seed, under a parent of the parent's encoding): which \
            kernel fires, and the time per row with the kernels and decoding first. The figures are best \
            of a few runs on a possibly busy machine: compare them, do not quote them as absolutes. Run a \
            release build: a debug build's kernels are several times slower.
            """
    )

    @OptionGroup var plugins: PluginOptions

    @Flag(help: "Measure each key: which kernel fires and what it costs per row, against decode-then-compute.")
    var costs = false

    @Option(help: "Rows of each key's standard input (with --costs).")
    var rows = 100_000

    @Option(help: "The seed the standard inputs derive from (with --costs).")
    var seed: UInt64 = 1

    @Flag(help: "Print the measurements as JSON (with --costs).")
    var json = false

    func validate() throws {
        guard (1...10_000_000).contains(rows) else { throw ValidationError("--rows: expected 1 to 10000000") }
        guard costs || !json else { throw ValidationError("--json goes with --costs") }
    }

    func run() throws {
        let session = Session()
        // Plugin code runs confined, as under `eddy eval` (--costs measures kernels on inputs made here).
        _ = try plugins.settings.loadConfined(into: session, readPaths: [])
        if costs { return printCosts(session) }
        let snapshot = session.kernels.snapshot
        print("kernel registry, snapshot generation \(snapshot.generation)")
        for entry in snapshot.entries.sorted(by: { ($0.parent.name, $0.child.name) < ($1.parent.name, $1.child.name) })
        {
            print("\(entry.parent.name) ← \(entry.child.name)")
            for k in entry.kernels { print("  kernel \(k.name)  [\(k.owner)]") }
            for r in entry.rules { print("  rule   \(r.name)  [\(r.owner)]") }
        }
    }

    /// The command line that makes the same inputs (the plugin directory aside).
    private var reproduce: String {
        "eddy kernels --costs --rows \(rows) --seed \(seed)"
            + (plugins.pluginDir.map { " --plugin-dir \(PluginHostQuoting.quoted($0))" } ?? "")
    }

    private func printCosts(_ session: Session) {
        let measured = KernelBenchmark.costs(of: session, rows: rows, seed: seed)
        func perRow(_ seconds: Double?, _ rows: Int) -> Double? {
            guard let seconds, rows > 0, seconds.isFinite else { return nil }
            return seconds * 1e9 / Double(rows)
        }
        if json {
            let lines = measured.map { c -> String in
                let kernels = perRow(c.withKernels, c.rows)
                let decode = perRow(c.decodeThenCompute, c.rows)
                let ratio = kernels.flatMap { k in decode.flatMap { $0 > 0 ? k / $0 : nil } }
                func number(_ x: Double?) -> String { x.map { String(format3: $0) } ?? "null" }
                let fired = c.fired.map {
                    "{\"name\": \(ResultWriter.jsonString($0.name)), \"owner\": \(ResultWriter.jsonString($0.owner))}"
                }
                return "  {\"parent\": \(ResultWriter.jsonString(c.parent.name)), "
                    + "\"child\": \(ResultWriter.jsonString(c.child.name)), \"rows\": \(c.rows), "
                    + "\"fired\": [\(fired.joined(separator: ", "))], "
                    + "\"kernels_ns_per_row\": \(number(kernels)), \"decode_ns_per_row\": \(number(decode)), "
                    + "\"ratio\": \(number(ratio)), "
                    + "\"not_measured\": \(c.notMeasured.map(ResultWriter.jsonString) ?? "null")}"
            }
            print(
                "{\"command\": \(ResultWriter.jsonString(reproduce)), \"rows\": \(rows), \"seed\": \(seed), "
                    + "\"keys\": [\n" + lines.joined(separator: ",\n") + "\n]}")
            return
        }
        print(reproduce)
        print(
            "ns/row: best time per row of the key's child; ratio: with kernels / decode-then-compute (below 1: the kernel helps)"
        )
        var table = [["key", "fires", "kernels ns/row", "decode ns/row", "ratio"]]
        for c in measured {
            let key = "\(c.parent.name) ← \(c.child.name)"
            let kernels = perRow(c.withKernels, c.rows)
            let decode = perRow(c.decodeThenCompute, c.rows)
            if let why = c.notMeasured, kernels == nil || c.rows == 0 {
                table.append([key, "not measured: \(why)", "", "", ""])
                continue
            }
            let fires = c.fired.isEmpty ? "no kernel fired" : c.fired.map(\.description).joined(separator: ", ")
            let ratio = kernels.flatMap { k in decode.flatMap { $0 > 0 ? k / $0 : nil } }
            table.append([
                key, fires + (c.notMeasured.map { " (\($0))" } ?? ""), kernels.map { String(format3: $0) } ?? "–",
                decode.map { String(format3: $0) } ?? "–", ratio.map { String(format3: $0) + "×" } ?? "–",
            ])
        }
        var widths = [Int](repeating: 0, count: 5)
        for row in table { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for row in table {
            var line = ""
            for (i, cell) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                line += i < 2 ? cell + pad : pad + cell
                if i < row.count - 1 { line += "  " }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            print(line)
        }
    }
}

/// A plugin directory as the shell would read it back.
enum PluginHostQuoting {
    static func quoted(_ s: String) -> String {
        let plain = s.unicodeScalars.allSatisfy {
            $0.isASCII
                && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "/._-+,:@".unicodeScalars.contains($0))
        }
        return plain && !s.isEmpty
            ? s : "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}

extension String {
    /// `value` with three significant digits' worth of decimals (ns per row: 0.123, 1.23, 12.3, 123).
    init(format3 value: Double) {
        guard value.isFinite else {
            self = "\(value)"
            return
        }
        let places = value >= 100 ? 0 : value >= 10 ? 1 : value >= 1 ? 2 : 3
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = (value * scale).rounded()
        guard abs(scaled) < 1e15 else {
            self = "\(value)"
            return
        }
        let n = Int(scaled)
        let whole = n / Int(scale)
        let frac = String(abs(n % Int(scale)))
        self =
            places == 0
            ? "\(whole)" : "\(whole)." + String(repeating: "0", count: places - frac.count) + frac
    }
}
