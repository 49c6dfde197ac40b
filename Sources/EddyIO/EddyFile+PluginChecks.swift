@_spi(Host) import Eddy
import Synchronization

/// What the reader checks of a column chunk that a plugin's storage read: the shape of each node the
/// plugin built, and the decoded chunk against the footer's statistics (row count, null count, min and
/// max), written by the engine from the column before any plugin code touched it.
///
/// A plugin's reader that gets the file wrong (an exponent off by one, a dropped row) would otherwise
/// give wrong answers with exit status 0: every kernel, the plugin's and the engine's, computes on what
/// the reader built. A contradiction is an error naming the plugin and its version, the file, the chunk,
/// the column and the check that failed, never a result.
///
/// The engine's own encodings are not checked: their storage is the engine's code, tested with it, and
/// the decode this costs is paid only for trees holding a plugin's encoding.
struct PluginChunkCheck {
    let file: EddyFile
    let chunk: Int
    let column: Int
    /// The plugins whose storage built nodes of the chunk's tree, in tree order.
    let plugins: [KernelOwner]

    /// A chunk checked once stays checked while the mapped file is unchanged (its cache entry) and the
    /// same plugin builds read it: the bytes are those its checksum vouched for, and the same reader code
    /// builds the same tree from them.
    struct Key: Hashable {
        var chunk: Int
        var column: Int
        var plugins: [KernelOwner]
    }

    /// Who is blamed: "plugin decimal 0.1.0" (or several, comma-separated).
    var blamed: String {
        plugins.map { "plugin \($0.name) \($0.version)" }.joined(separator: ", ")
    }

    var location: String {
        "chunk \(chunk) of column '\(file.footer.schema.fields[column].name)'"
    }

    /// An error naming the plugin, the file, the chunk and the column, then `message`.
    func failure(_ message: String) -> IOError {
        IOError(file: file.path, line: 0, column: 0, message: "\(blamed): \(location): \(message)")
    }

    /// Throws unless the node a plugin's storage built has the encoding, dtype and length the file
    /// claims for it (checked before any kernel or parent sees it).
    func shape(
        of built: any ArrayNode, node index: Int, of count: Int, stored: StoredNode, encoding: EncodingID
    ) throws {
        let isRoot = index == count - 1
        guard built.count == stored.count else {
            throw IOError(
                file: file.path, line: 0, column: 0,
                message: isRoot
                    ? "\(blamed): \(location) decoded to \(built.count) rows, the file's statistics say \(stored.count) (row count check)"
                    : "\(blamed): \(location): node \(index) (\(encoding)) was read with \(built.count) rows, the file says \(stored.count) (row count check)"
            )
        }
        guard built.encoding == encoding, built.dtype == stored.dtype else {
            throw failure(
                "node \(index) was read as \(built.encoding)(\(built.dtype)); the file says \(encoding)(\(stored.dtype)) (type check)"
            )
        }
    }

    /// Decodes the chunk's tree (`root`) and compares it with the footer's statistics for the chunk.
    ///
    /// Called only for a chunk the query reads (a projected column of a chunk zone maps kept), so no
    /// chunk is decoded that the query did not need; a chunk checked before in this process is not
    /// decoded again.
    /// - Throws: ``IOError`` naming the plugin, the chunk and the check that failed.
    func statistics(of root: any ArrayNode) throws {
        let mapped = file.mapped
        // Builds the host cannot tell apart (no content hash) are checked every time.
        let key: Key? =
            file.verifyChecksums && plugins.allSatisfy({ !$0.contentHash.isEmpty })
            ? Key(chunk: chunk, column: column, plugins: plugins) : nil
        if let key, mapped.statisticsChecked.withLock({ $0.contains(key) }) { return }
        let rows = file.footer.chunks[chunk].rows
        let stats = file.footer.chunks[chunk].columns[column].stats
        let decoded: any ArrayNode
        do {
            decoded = try ExecutionCtx(snapshot: file.snapshot).execute(root)
        } catch {
            throw failure("could not be decoded: \(error)")
        }
        guard decoded.count == rows else {
            throw failure(
                "decoded to \(decoded.count) rows, the file's statistics say \(rows) (row count check)")
        }
        let found = try ChunkStatistics.of(decoded, order: stats.min != nil || stats.max != nil)
        guard found.nulls == stats.nullCount else {
            throw failure(
                "decoded to \(found.nulls) nulls in \(rows) rows, the file's statistics say \(stats.nullCount) (null count check)"
            )
        }
        for (name, claimed, value) in [("min", stats.min, found.min), ("max", stats.max, found.max)] {
            guard let claimed else { continue }
            guard Self.same(claimed.value, value) else {
                throw failure("decoded to \(name) \(value), the file's statistics say \(claimed.value) (\(name) check)")
            }
            // Equal as numbers, but a zero of the other sign: the chunk must hold the zero the file saw
            // (a decoder that turns -0.0 into 0.0 changes min(1/x) from -inf to inf).
            if case .float(let z) = claimed.value, z == 0, case .float(let f) = value, z.sign != f.sign,
                try !Self.holds(decoded, zeroWithSign: z.sign)
            {
                throw failure(
                    "decoded with no \(z) among its values, the file's statistics say \(name) \(z) (\(name) check)")
            }
        }
        if let key { _ = mapped.statisticsChecked.withLock { $0.insert(key) } }
    }

    /// Whether a decoded float chunk holds a zero with `sign` (read row by row: only asked when a
    /// bound is a zero of the other sign).
    static func holds(_ decoded: any ArrayNode, zeroWithSign sign: FloatingPointSign) throws -> Bool {
        for i in 0..<decoded.count {
            if case .float(let x) = try decoded.scalar(at: i).value, x == 0, x.sign == sign { return true }
        }
        return false
    }

    /// Whether a bound read back is the one written. Floats compare as numbers (NaN equal to NaN): which
    /// of two equal zeros is the first seen may depend on the kernel that computed the bound.
    static func same(_ a: ScalarValue, _ b: ScalarValue) -> Bool {
        if case .float(let x) = a, case .float(let y) = b { return x == y || (x.isNaN && y.isNaN) }
        return a == b
    }
}
