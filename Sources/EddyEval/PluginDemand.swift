@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery

/// What a query can ask of plugins: the operations its engine tree may dispatch kernels for, the
/// encodings its input may hold, and the purposes its compressor asks hooks for. A build whose
/// registrations (``PluginUses``) meet none of them cannot take part, and a one-shot `eddy eval` does
/// not map it.
///
/// Only ever a question of speed: every kernel agrees with decode-then-compute, so a build left out
/// changes no answer. Where the answer is not known (an expression that does not parse, a scalar
/// function, an input whose encodings are decided while it is read) the demand is wide.
package struct PluginDemand: Sendable {
    /// Parent encodings (operations) the query may dispatch.
    package var operations: Set<String>
    /// Encodings the input may hold: an `.eddy` file's, as its footer lists them; for an input encoded
    /// as it is read (CSV, JSON Lines, Parquet), every encoding of the engine's.
    package var encodings: Set<String>
    /// The compressor hook purposes the query's compressor asks (``CompressorHook/Purpose`` bits).
    package var hookPurposes: UInt32

    package init(operations: Set<String>, encodings: Set<String>, hookPurposes: UInt32) {
        self.operations = operations
        self.encodings = encodings
        self.hookPurposes = hookPurposes
    }

    /// Parents every evaluation may build around the expression's own: a filter for `--where`, takes
    /// and slices of batches, chunked and struct columns.
    static let structural: Set<String> = ["eddy.filter", "eddy.take", "eddy.slice", "eddy.chunked", "eddy.struct"]
    /// Encodings any evaluation may produce from any input (results of kernels and functions).
    static let computed: Set<String> = [
        "eddy.primitive", "eddy.bool", "eddy.varbin", "eddy.constant", "eddy.null", "eddy.struct", "eddy.chunked",
        "eddy.slice",
    ]

    /// The builds (by content hash) that can take part, of those whose registrations are recorded: a
    /// build whose compressor hook the query asks, and one with a kernel or rule whose key meets the
    /// query — its parent an operation of the query or an encoding the input may hold, and its child
    /// either. The encodings a chosen build stores may then be in the input too (its hook may make
    /// them), so the choice is repeated until it holds.
    package func select(_ recorded: [String: PluginUses]) -> Set<String> {
        var present = encodings.union(operations).union(Self.computed)
        var chosen = Set<String>()
        while true {
            let before = chosen.count
            for (hash, uses) in recorded where !chosen.contains(hash) && needs(uses, present: present) {
                chosen.insert(hash)
                present.formUnion(uses.storedEncodings)
            }
            if chosen.count == before { return chosen }
        }
    }

    private func needs(_ uses: PluginUses, present: Set<String>) -> Bool {
        if uses.hookPurposes & hookPurposes != 0 { return true }
        return uses.keys.contains { key in
            let parts = key.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            return parts.count != 2 || (present.contains(parts[0]) && present.contains(parts[1]))
        }
    }

    /// The operations `whereText` and `selectText` may dispatch; nil when they do not parse, or call a
    /// function this list does not know (then every build may be needed).
    package static func operations(whereText: String?, selectText: String?) -> Set<String>? {
        var found = structural
        var stack: [Expr] = []
        do {
            if let whereText { stack.append(try Parser.expression(whereText)) }
            if let selectText { stack += try Parser.selectList(selectText).map(\.expr) }
        } catch {
            return nil
        }
        // Iterative: an expression is bounded by the parser's limits, but not this walk's stack.
        while let e = stack.popLast() {
            switch e {
            case .column, .literal: break
            case .negate(let a, _):
                found.insert("eddy.negate")
                stack.append(a)
            case .not(let a, _):
                found.insert("eddy.not")
                stack.append(a)
            case .binary(let op, let a, let b, _):
                found.insert(["+", "-", "*", "/"].contains(op) ? "eddy.arithmetic" : "eddy.compare")
                stack += [a, b]
            case .logical(let op, let terms, _):
                found.insert(op == "and" ? "eddy.and" : "eddy.or")
                stack += terms
            case .isNull(let a, let negated, _):
                found.insert("eddy.is_null")
                if negated { found.insert("eddy.not") }
                stack.append(a)
            case .like(let a, _, _, _):
                found.insert("eddy.like")
                stack.append(a)
            case .cast(let a, _, _):
                found.insert("eddy.cast")
                stack.append(a)
            case .call(let name, let args, let star, _):
                switch name.lowercased() {
                case "count": found.insert(star ? "eddy.agg.count_all" : "eddy.agg.count")
                case "sum": found.insert("eddy.agg.sum")
                case "min": found.insert("eddy.agg.min")
                case "max": found.insert("eddy.agg.max")
                case "mean", "avg": found.insert("eddy.agg.mean")
                case "coalesce": found.insert("eddy.coalesce")
                default: return nil
                }
                stack += args
            }
        }
        // Comparisons with a cast or a coalesce around them, and constants folded: a cast may appear
        // wherever a comparison of mixed types is.
        if found.contains("eddy.compare") { found.insert("eddy.cast") }
        return found
    }
}

extension EvalSettings {
    /// What this evaluation can ask of plugins, or nil when every build may be needed: an expression
    /// that does not parse or calls an unknown function, or an `.eddy` file that cannot be opened
    /// here or stores a plugin's encoding.
    func pluginDemand(snapshot: KernelSnapshot) -> PluginDemand? {
        guard let operations = PluginDemand.operations(whereText: predicate, selectText: select) else { return nil }
        let kind = inputFormat.flatMap(InputFormat.init(named:)) ?? InputFormat.of(path: file)
        guard kind == .eddy else {
            var purposes = CompressorHook.Purpose.query.rawValue
            if case .storage? = Compressor.Goal(named: compression) {
                purposes = CompressorHook.Purpose.storage.rawValue
            }
            return PluginDemand(
                operations: operations, encodings: Set(EncodingStorage.builtin.keys), hookPurposes: purposes)
        }
        guard
            let opened = try? EddyFile(path: file, snapshot: snapshot, requireEncodings: false, verifyChecksums: false),
            opened.missing.isEmpty, opened.footer.encodings.allSatisfy(\.isBuiltin)
        else { return nil }
        // Batches of an `.eddy` file are read as stored: no compressor runs, so no hook is asked.
        let stored = Set(opened.footer.encodings.map(\.name))
        return PluginDemand(operations: operations, encodings: stored, hookPurposes: 0)
    }
}
