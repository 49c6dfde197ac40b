@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery

#if canImport(Glibc)
    import Glibc
#endif

/// What a query can ask of plugins: the operations its engine tree may dispatch kernels for, the
/// encodings its input may hold, and the purposes its compressor asks hooks for. A build whose
/// registrations (``PluginUses``) meet none of them cannot take part, and a one-shot `eddy eval` does
/// not map it.
///
/// Only ever a question of speed: every kernel agrees with decode-then-compute, so a build left out
/// changes no answer. Where the answer is not known (an expression that does not parse, a scalar
/// function, an input whose encodings are decided while it is read) the demand is wide.
///
/// It is also a question of cost: mapping a checked build into a one-shot (confinement, the mapping,
/// its registration) costs about 1.5 ms here, and a kernel saves a fraction of a millisecond per
/// million rows (the bundled packed-dictionary compare: about 0.4 ms on 1M rows of an `.eddy` file). So a
/// build that would take part only through its kernels is chosen when the input holds at least
/// ``minKernelRows`` rows (``rows``); a build whose compressor hook the query asks is chosen whatever
/// the size (the user asked for that encoding), and an `.eddy` file that stores a plugin's encoding
/// maps every build (no demand).
package struct PluginDemand: Sendable {
    /// What an operation of the query is applied to.
    package enum Operand: Hashable, Sendable {
        /// An input column, by name: whatever encodings the input holds it in.
        case column(String)
        /// A literal: a constant.
        case constant
        /// The result of another operation.
        case operation(String)
    }

    /// The operations (parent encodings) the query's expression may dispatch, each with what it is
    /// applied to.
    package var operations: [String: Set<Operand>]
    /// Encodings the input may hold, per column name; a column not named here may hold any of
    /// ``encodings``.
    package var columnEncodings: [String: Set<String>]
    /// Encodings the input may hold in any column: an `.eddy` file's, as its footer lists them; for an
    /// input encoded as it is read (CSV, JSON Lines, Parquet), every encoding of the engine's.
    package var encodings: Set<String>
    /// The compressor hook purposes the query's compressor asks (``CompressorHook/Purpose`` bits).
    package var hookPurposes: UInt32
    /// The rows the input holds: an `.eddy` file's footer says; for a regular CSV or JSON Lines file, an
    /// estimate from its size (``estimatedRows(bytes:)``); `.max` when not known (a pipe, Parquet).
    package var rows: Int
    /// Whether ``rows`` is an estimate from the file's size.
    package var rowsEstimated = false
    /// Fewer rows than this, and a build's kernels do not pay for mapping it (`--plugin-min-rows`).
    package var minKernelRows: Int

    package init(
        operations: [String: Set<Operand>], columnEncodings: [String: Set<String>] = [:], encodings: Set<String>,
        hookPurposes: UInt32, rows: Int = .max, minKernelRows: Int = 0
    ) {
        self.operations = operations
        self.columnEncodings = columnEncodings
        self.encodings = encodings
        self.hookPurposes = hookPurposes
        self.rows = rows
        self.minKernelRows = minKernelRows
    }

    /// The rows a one-shot `eddy eval` needs in its input before it maps a build for its kernels alone
    /// (`--plugin-min-rows`): where the bundled kernel's saving met the cost of mapping its build on
    /// this 2-core machine (a 4M-row `.eddy` file: 0.95–1.04× with / without; 1M rows: 1.12–1.18×,
    /// 8M rows: 0.93–0.94×).
    package static let defaultMinKernelRows = 4_000_000

    /// The rows of a CSV or JSON Lines file of `bytes`, before it is read: one per 8 bytes, more than most
    /// tables hold (a CSV row of a few short fields is 20 bytes or more), so that the cost rule leaves
    /// kernels out of inputs that are small by any measure.
    package static func estimatedRows(bytes: Int) -> Int { max(bytes, 0) / 8 }

    /// Whether the input is too small for a build's kernels to pay for mapping it.
    package var kernelsDoNotPay: Bool { rows < minKernelRows }

    /// Parents every evaluation may build around the expression's own, over any column: a filter for
    /// `--where`, takes and slices of batches, chunked and struct columns.
    static let structural: Set<String> = ["eddy.filter", "eddy.take", "eddy.slice", "eddy.chunked", "eddy.struct"]
    /// Encodings any evaluation may produce from any input (results of kernels and functions).
    static let computed: Set<String> = [
        "eddy.primitive", "eddy.bool", "eddy.varbin", "eddy.constant", "eddy.null", "eddy.struct", "eddy.chunked",
        "eddy.slice",
    ]

    /// The builds (by content hash) that can take part, of those whose registrations are recorded: a
    /// build whose compressor hook the query asks, and one with a kernel or rule whose key can meet the
    /// query (``meets(parent:child:extra:)``). The encodings a chosen build stores may then be in the
    /// input too (its hook may make them), so the choice is repeated until it holds.
    package func select(_ recorded: [String: PluginUses]) -> Set<String> {
        var extra = Set<String>()
        var chosen = Set<String>()
        while true {
            let before = chosen.count
            for (hash, uses) in recorded where !chosen.contains(hash) && needs(uses, extra: extra) {
                chosen.insert(hash)
                extra.formUnion(uses.storedEncodings)
            }
            if chosen.count == before { return chosen }
        }
    }

    private func needs(_ uses: PluginUses, extra: Set<String>) -> Bool {
        if uses.hookPurposes & hookPurposes != 0 { return true }
        if kernelsDoNotPay { return false }
        return uses.keys.contains { key in
            let parts = key.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            return parts.count != 2 || meets(parent: parts[0], child: parts[1], extra: extra)
        }
    }

    /// Whether a kernel keyed (`parent`, `child`) can run in the query: `parent` one of its operations
    /// applied to something that may be `child` (a column's encodings, a constant, another operation's
    /// result, or anything computed), or a structural parent or an encoding of the input over anything
    /// the input or the query may hold. `extra`: encodings chosen builds' hooks may add.
    func meets(parent: String, child: String, extra: Set<String>) -> Bool {
        if let operands = operations[parent] {
            if Self.computed.contains(child) || extra.contains(child) { return true }
            var visited: Set<String> = [parent]
            return mayBe(child, operands, visited: &visited)
        }
        guard Self.structural.contains(parent) || encodings.contains(parent) || extra.contains(parent) else {
            return false
        }
        return encodings.contains(child) || extra.contains(child) || Self.computed.contains(child)
            || operations[child] != nil
    }

    /// Whether one of `operands` may be a node of encoding `child`: a column's encodings, a constant, or
    /// an operation's result — itself, or (an operation the executor pushes into its operand, such as
    /// arithmetic over run-end values, keeps that encoding) what its own operands may be.
    private func mayBe(_ child: String, _ operands: Set<Operand>, visited: inout Set<String>) -> Bool {
        for operand in operands {
            switch operand {
            case .column(let name):
                if (columnEncodings[name] ?? encodings).contains(child) { return true }
            case .constant:
                if child == "eddy.constant" { return true }
            case .operation(let op):
                if child == op { return true }
                guard visited.insert(op).inserted, let inner = operations[op] else { continue }
                if mayBe(child, inner, visited: &visited) { return true }
            }
        }
        return false
    }

    /// The columns the operations are applied to directly.
    static func columns(of operations: [String: Set<Operand>]) -> Set<String> {
        Set(operations.values.flatMap { $0 }.compactMap { if case .column(let c) = $0 { c } else { nil } })
    }

    /// The columns `text` (a `--where` expression) names; nil when it does not parse.
    static func columns(inWhere text: String) -> Set<String>? {
        guard var stack = (try? Parser.expression(text)).map({ [$0] }) else { return nil }
        var names = Set<String>()
        while let e = stack.popLast() {
            if case .column(let name, _) = e { names.insert(name) }
            stack += arguments(e)
        }
        return names
    }

    /// The operations `whereText` and `selectText` may dispatch, each with its operands; nil when they
    /// do not parse, or call a function this list does not know (then every build may be needed).
    package static func operations(whereText: String?, selectText: String?) -> [String: Set<Operand>]? {
        var stack: [Expr] = []
        do {
            if let whereText { stack.append(try Parser.expression(whereText)) }
            if let selectText { stack += try Parser.selectList(selectText).map(\.expr) }
        } catch {
            return nil
        }
        var found: [String: Set<Operand>] = [:]
        // Iterative: an expression is bounded by the parser's limits, but not this walk's stack.
        while let e = stack.popLast() {
            switch e {
            case .column, .literal: continue
            default: break
            }
            guard let name = operation(e) else { return nil }
            let args = arguments(e)
            // `mean` is planned as a sum and a count of the same operand.
            let names = name == "eddy.agg.mean" ? [name, "eddy.agg.sum", "eddy.agg.count"] : [name]
            for name in names {
                for a in args {
                    switch a {
                    case .column(let column, _): found[name, default: []].insert(.column(column))
                    case .literal: found[name, default: []].insert(.constant)
                    default:
                        guard let inner = operation(a) else { return nil }
                        found[name, default: []].insert(.operation(inner))
                    }
                }
                if args.isEmpty { found[name, default: []] = found[name] ?? [] }
            }
            if case .isNull(_, true, _) = e { found["eddy.not", default: []].insert(.operation("eddy.is_null")) }
            stack += args
        }
        // A comparison of mixed types may be bound with a cast around an operand.
        if let compared = found["eddy.compare"] { found["eddy.cast", default: []].formUnion(compared) }
        return found
    }

    /// The engine operation (parent encoding) an expression node becomes, or nil for a column, a literal
    /// or a function this list does not know.
    static func operation(_ e: Expr) -> String? {
        switch e {
        case .column, .literal: nil
        case .negate: "eddy.negate"
        case .not: "eddy.not"
        case .binary(let op, _, _, _): ["+", "-", "*", "/"].contains(op) ? "eddy.arithmetic" : "eddy.compare"
        case .logical(let op, _, _): op == "and" ? "eddy.and" : "eddy.or"
        case .isNull: "eddy.is_null"
        case .like: "eddy.like"
        case .cast: "eddy.cast"
        case .call(let name, _, let star, _):
            switch name.lowercased() {
            case "count": star ? "eddy.agg.count_all" : "eddy.agg.count"
            case "sum": "eddy.agg.sum"
            case "min": "eddy.agg.min"
            case "max": "eddy.agg.max"
            case "mean", "avg": "eddy.agg.mean"
            case "coalesce": "eddy.coalesce"
            default: nil
            }
        }
    }

    /// An expression node's operands.
    static func arguments(_ e: Expr) -> [Expr] {
        switch e {
        case .column, .literal: []
        case .negate(let a, _), .not(let a, _), .isNull(let a, _, _), .like(let a, _, _, _), .cast(let a, _, _): [a]
        case .binary(_, let a, let b, _): [a, b]
        case .logical(_, let terms, _): terms
        case .call(_, let args, _, _): args
        }
    }
}

extension EvalSettings {
    /// What this evaluation can ask of plugins, or nil when every build may be needed: an expression
    /// that does not parse or calls an unknown function, or an `.eddy` file that cannot be opened
    /// here or stores a plugin's encoding.
    func pluginDemand(snapshot: KernelSnapshot) -> PluginDemand? {
        guard let operations = PluginDemand.operations(whereText: predicate, selectText: select) else { return nil }
        let kind = inputKind
        guard kind == .eddy else {
            let goal = Compressor.Goal(named: compression) ?? .auto
            var purposes = CompressorHook.Purpose.query.rawValue
            if case .storage = goal { purposes = CompressorHook.Purpose.storage.rawValue }
            // Under `auto`, a CSV or JSON Lines column the filter does not name stays as parsed (see
            // `Compressor.ColumnUse`): only the engine's plain arrays. (Parquet batches come encoded.)
            var perColumn: [String: Set<String>] = [:]
            if case .auto = goal, kind == .csv || kind == .jsonl,
                let filtered = predicate.map({ PluginDemand.columns(inWhere: $0) }) ?? [],
                let read = PluginDemand.operations(whereText: nil, selectText: select).map(PluginDemand.columns(of:))
            {
                for column in read.subtracting(filtered) { perColumn[column] = PluginDemand.computed }
            }
            // Rows estimated from the size of a regular CSV or JSON Lines file only: a pipe's size says
            // nothing, and a Parquet file compresses far below 8 bytes a row (its rows: unknown, which
            // holds no kernel back).
            var st = stat()
            let estimated =
                (kind == .csv || kind == .jsonl) && stat(file, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
                ? PluginDemand.estimatedRows(bytes: Int(st.st_size)) : nil
            var demand = PluginDemand(
                operations: operations, columnEncodings: perColumn, encodings: Set(EncodingStorage.builtin.keys),
                hookPurposes: purposes, rows: estimated ?? .max, minKernelRows: pluginMinRows)
            demand.rowsEstimated = estimated != nil
            return demand
        }
        guard let footer = engineFooter(snapshot: snapshot) else { return nil }
        // Batches of an `.eddy` file are read as stored: no compressor runs, so no hook is asked. Each
        // column's encodings are those of its trees in every chunk.
        let names = footer.schema.names
        // Only the columns an operation names (the others are never a kernel's child), as encoding indexes
        // first: the footer of a large file has a tree per column and chunk.
        let named = PluginDemand.columns(of: operations)
        var indexes: [String: Set<Int>] = [:]
        for chunk in footer.chunks.indices {
            for k in footer.chunks[chunk].columns.indices where k < names.count && named.contains(names[k]) {
                indexes[names[k], default: []].formUnion(footer.chunks[chunk].columns[k].nodes.lazy.map(\.encoding))
            }
        }
        let perColumn = indexes.mapValues { set in
            Set(set.compactMap { $0 >= 0 && $0 < footer.encodings.count ? footer.encodings[$0].name : nil })
        }
        return PluginDemand(
            operations: operations, columnEncodings: perColumn, encodings: Set(footer.encodings.map(\.name)),
            hookPurposes: 0, rows: footer.rows, minKernelRows: pluginMinRows)
    }
}
