import ArgumentParser
@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe an .eddy file: schema, rows, chunks, encoding trees, sizes, statistics, plugins needed.",
        discussion: """
            Reads the footer only (no column data). Works without the plugins the file
            needs: it lists them, and whether the plugin directory has them loaded.
            Per column: the distinct tree shapes over all chunks (how many chunks have
            each), stored bytes against plain bytes, nulls, and the smallest and largest
            value. --json prints every chunk's trees and statistics.
            """
    )

    @Argument(help: "An .eddy file.")
    var file: String

    @Flag(help: "Print JSON: the schema, every chunk's column trees, sizes and statistics, the plugins needed.")
    var json = false

    @OptionGroup var plugins: PluginOptions

    func run() throws {
        let session = Session()
        // Plugin code runs confined, as under `eddy eval`: reading this file, the copies and libraries only.
        let (host, _, _) = try plugins.settings.loadConfined(into: session, readPaths: [file])
        let f: EddyFile
        do {
            f = try EddyFile(path: file, snapshot: session.kernels.snapshot, requireEncodings: false)
        } catch let e as IOError {
            Stderr.write("eddy: error: \(e)\n")
            throw ExitCode(1)
        }
        let footer = f.footer
        let needed = footer.encodings.filter { !$0.isBuiltin }
        let missing = Set(f.missing.map(\.name))
        // A plugin whose file is in the directory but whose build is quarantined: say so, and why.
        var quarantined: [String: PluginHost.Quarantine] = [:]
        for e in f.missing { quarantined[e.name] = host.quarantine(of: e) }
        if json {
            Stdout.write(jsonReport(f, needed: needed, missing: missing, quarantined: quarantined))
        } else {
            Stdout.write(textReport(f, needed: needed, missing: missing, quarantined: quarantined))
        }
        Stdout.flush()
    }

    func textReport(
        _ f: EddyFile, needed: [StoredEncoding], missing: Set<String>, quarantined: [String: PluginHost.Quarantine]
    ) -> String {
        let footer = f.footer
        var s = "\(PluginHost.escaped(f.path)): \(footer.rows) rows, \(footer.schema.fields.count) columns, "
        s +=
            "\(footer.chunks.count) chunk\(footer.chunks.count == 1 ? "" : "s"), \(f.size) bytes (format version \(EddyFileFormat.version))\n"
        if needed.isEmpty {
            s += "plugins needed: none\n"
        } else {
            s += "plugins needed:\n"
            for e in needed {
                let hash = e.pluginHash.isEmpty ? "" : " sha256 \(e.pluginHash.prefix(12))…"
                s +=
                    "  \(e.name) from \(PluginHost.escaped(e.pluginName)) \(PluginHost.escaped(e.pluginVersion))\(hash)"
                s += " (metadata v\(e.metadataVersion)) — "
                if let q = quarantined[e.name] {
                    s +=
                        "NOT LOADED: its build is quarantined since \(PluginHost.isoTime(q.time)): "
                        + "\(PluginHost.escaped(q.cause)) (drop a fixed build in the plugin directory)\n"
                } else {
                    s += "\(missing.contains(e.name) ? "NOT LOADED" : "loaded")\n"
                }
            }
        }
        for (j, field) in footer.schema.fields.enumerated() {
            let layouts = footer.chunks.map { $0.columns[j] }
            let stored = layouts.reduce(0) { saturatingAdd($0, $1.stats.storedBytes) }
            let plain = layouts.reduce(0) { saturatingAdd($0, $1.stats.plainBytes) }
            let nulls = layouts.reduce(0) { saturatingAdd($0, $1.stats.nullCount) }
            let ratio = stored > 0 ? (Double(plain) / Double(stored) * 100).rounded() / 100 : 0
            s +=
                "\n\(PluginHost.escaped(field.name)): \(field.dtype), \(stored) bytes stored, \(plain) plain (ratio \(ratio)), \(nulls) nulls"
            let (lo, hi) = bounds(layouts)
            if let lo, let hi { s += ", min \(display(lo)), max \(display(hi))" }
            s += "\n"
            var shapes: [(String, Int)] = []
            for l in layouts {
                let shape = shapeText(l, footer.encodings)
                if let i = shapes.firstIndex(where: { $0.0 == shape }) {
                    shapes[i].1 += 1
                } else {
                    shapes.append((shape, 1))
                }
            }
            for (shape, n) in shapes.prefix(8) {
                s += "  \(n) chunk\(n == 1 ? "" : "s"):\n"
                s += shape.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n") + "\n"
            }
            if shapes.count > 8 { s += "  … \(shapes.count - 8) more shapes (--json lists every chunk)\n" }
        }
        return s
    }

    /// A tree without lengths and sizes, so that chunks of one shape group together.
    func shapeText(_ l: ColumnChunkLayout, _ encodings: [StoredEncoding]) -> String {
        var lines: [String] = []
        func render(_ i: Int, _ indent: String) {
            guard i >= 0, i < l.nodes.count else { return }
            let n = l.nodes[i]
            lines.append("\(indent)\(n.encoding < encodings.count ? encodings[n.encoding].name : "?")(\(n.dtype))")
            for c in n.children { render(c, indent + "  ") }
        }
        render(l.nodes.count - 1, "")
        return lines.joined(separator: "\n")
    }

    func bounds(_ layouts: [ColumnChunkLayout]) -> (Scalar?, Scalar?) {
        var lo: Scalar?
        var hi: Scalar?
        // The engine's order for min and max: NaN above every number, strings bytewise.
        for l in layouts {
            if let m = l.stats.min, lo.map({ AggregatePartial.less(m.value, $0.value) }) ?? true { lo = m }
            if let m = l.stats.max, hi.map({ AggregatePartial.less($0.value, m.value) }) ?? true { hi = m }
        }
        return (lo, hi)
    }

    func display(_ s: Scalar) -> String { PluginHost.escaped(s.description) }

    func jsonScalar(_ s: Scalar?) -> String {
        guard let s else { return "null" }
        switch s.value {
        case .int(let v): return String(v)
        case .uint(let v): return String(v)
        case .float(let v): return v.isFinite ? String(v) : ResultWriter.jsonString(String(v))
        case .bool(let b): return b ? "true" : "false"
        case .utf8(let t): return ResultWriter.jsonString(t)
        default: return ResultWriter.jsonString(s.description)
        }
    }

    func jsonReport(
        _ f: EddyFile, needed: [StoredEncoding], missing: Set<String>, quarantined: [String: PluginHost.Quarantine]
    ) -> String {
        let footer = f.footer
        let q = ResultWriter.jsonString
        var s = "{\"file\": \(q(f.path)), \"format_version\": \(EddyFileFormat.version), \"bytes\": \(f.size), "
        s += "\"rows\": \(footer.rows), \"chunks\": \(footer.chunks.count),\n"
        s +=
            " \"schema\": ["
            + footer.schema.fields.map { "{\"name\": \(q($0.name)), \"dtype\": \(q($0.dtype.description))}" }.joined(
                separator: ", ") + "],\n"
        s +=
            " \"plugins_needed\": ["
            + needed.map {
                "{\"encoding\": \(q($0.name)), \"plugin\": \(q($0.pluginName)), \"version\": \(q($0.pluginVersion)), "
                    + "\"sha256\": \(q($0.pluginHash)), \"metadata_version\": \($0.metadataVersion), \"loaded\": \(!missing.contains($0.name))"
                    + (quarantined[$0.name].map {
                        ", \"quarantined\": {\"since\": \(q(PluginHost.isoTime($0.time))), \"cause\": \(q($0.cause))}"
                    } ?? "") + "}"
            }.joined(separator: ", ") + "],\n"
        s += " \"columns\": [\n"
        s += footer.schema.fields.enumerated().map { j, field in
            let layouts = footer.chunks.map { $0.columns[j] }
            let (lo, hi) = bounds(layouts)
            var c = "  {\"name\": \(q(field.name)), \"dtype\": \(q(field.dtype.description)), "
            c += "\"stored_bytes\": \(layouts.reduce(0) { saturatingAdd($0, $1.stats.storedBytes) }), "
            c += "\"plain_bytes\": \(layouts.reduce(0) { saturatingAdd($0, $1.stats.plainBytes) }), "
            c +=
                "\"nulls\": \(layouts.reduce(0) { saturatingAdd($0, $1.stats.nullCount) }), \"min\": \(jsonScalar(lo)), \"max\": \(jsonScalar(hi)),\n"
            c +=
                "   \"chunks\": ["
                + zip(footer.chunks, layouts).map { chunk, l in
                    "{\"rows\": \(chunk.rows), \"stored_bytes\": \(l.stats.storedBytes), \"plain_bytes\": \(l.stats.plainBytes), "
                        + "\"nulls\": \(l.stats.nullCount), \"min\": \(jsonScalar(l.stats.min)), \"max\": \(jsonScalar(l.stats.max)), "
                        + "\"tree\": \(q(l.treeText(encodings: footer.encodings)))}"
                }.joined(separator: ", ") + "]}"
            return c
        }.joined(separator: ",\n")
        s += "\n ]}\n"
        return s
    }
}
