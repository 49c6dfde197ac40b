import CEddyIO
@_spi(Host) public import Eddy
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Writes an `.eddy` file chunk by chunk: each column of a chunk becomes one segment holding its
/// encoding tree's buffers (64-byte aligned); the footer, written last, describes every tree.
///
/// The file is written under a temporary name beside `path` and renamed into place by ``finish()``, so
/// a reader never sees half a file and a failed conversion leaves nothing behind.
public final class EddyFileWriter {
    public let path: String
    /// Where the file is written until ``finish()`` renames it to `path`.
    public let temporaryPath: String
    let schema: Schema
    let snapshot: KernelSnapshot
    private var fd: Int32
    private var offset = 0
    private var encodings: [StoredEncoding] = []
    private var encodingIndex: [String: Int] = [:]
    private var chunks: [ChunkLayout] = []
    private var rows = 0
    private var finished = false

    /// How the finished file is put in place, and a failed one removed.
    @_spi(Host) public struct Placement: Sendable {
        /// Renames the temporary to the file's path: 0, or an errno.
        public var rename: @Sendable (_ temporary: String, _ path: String) -> Int32
        /// Removes the temporary (the file was not finished).
        public var discard: @Sendable (_ temporary: String) -> Void

        public init(
            rename: @escaping @Sendable (String, String) -> Int32, discard: @escaping @Sendable (String) -> Void
        ) {
            self.rename = rename
            self.discard = discard
        }

        /// This process renames and removes the file itself.
        public static let direct = Placement(
            rename: { Glibc.rename($0, $1) == 0 ? 0 : errno }, discard: { _ = unlink($0) })
    }

    private let placement: Placement

    /// Creates the file (under a temporary name until ``finish()``).
    /// - Throws: ``IOError`` naming the file when it cannot be created.
    @_spi(Host) public convenience init(path: String, schema: Schema, snapshot: KernelSnapshot) throws {
        try self.init(
            path: path, schema: schema, snapshot: snapshot, temporary: try Self.createTemporary(for: path),
            placement: .direct)
    }

    /// Writes into `temporary`, made by ``createTemporary(for:)`` (a process that confines itself makes
    /// it before, and keeps a committer to put it in place: `placement`).
    @_spi(Host) public init(
        path: String, schema: Schema, snapshot: KernelSnapshot, temporary: (path: String, fd: Int32),
        placement: Placement
    ) throws {
        self.path = path
        self.schema = schema
        self.snapshot = snapshot
        self.placement = placement
        (temporaryPath, fd) = temporary
        var header = EddyFileFormat.magic
        header += [UInt8(EddyFileFormat.version & 0xff), UInt8(EddyFileFormat.version >> 8)]
        header += [UInt8](repeating: 0, count: EddyFileFormat.headerSize - header.count)
        try write(header)
    }

    /// Creates the temporary file that becomes `path`: its name and an open descriptor.
    /// - Throws: ``IOError`` naming the file when it cannot be created.
    @_spi(Host) public static func createTemporary(for path: String) throws -> (path: String, fd: Int32) {
        if path.hasSuffix("/") || FileKind.of(path) == .directory {
            throw IOError(file: path, line: 0, column: 0, message: "is a directory; name the file to write")
        }
        // A new file of this process's own, never one that is there already: in a shared (sticky)
        // directory another user could have made the name first (a predictable `.partial-PID` was
        // planted, 0666, and root's finished file ended up that user's). O_EXCL with a random name, tried
        // again if taken; the mode is 0644 less the umask, set here (the creator's file, not a planted one).
        var reason: Int32 = EEXIST
        for _ in 0..<16 {
            let name = path + ".partial-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
            let fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
            if fd >= 0 { return (name, fd) }
            reason = errno
            guard reason == EEXIST else { break }
        }
        throw IOError(file: path, line: 0, column: 0, message: "cannot create: \(String(cString: strerror(reason)))")
    }

    deinit {
        if !finished {
            close(fd)
            placement.discard(temporaryPath)
        }
    }

    private func fail(_ message: String) -> IOError { IOError(file: path, line: 0, column: 0, message: message) }

    private func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            guard let base = bytes.baseAddress else { return }
            let n = Glibc.write(fd, base + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw fail("write failed: \(String(cString: strerror(errno)))") }
            done += n
        }
        offset += bytes.count
    }

    private func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    private func pad() throws {
        let r = offset % EddyFileFormat.alignment
        if r != 0 { try write([UInt8](repeating: 0, count: EddyFileFormat.alignment - r)) }
    }

    /// Appends one chunk: `columns` (one encoded tree per schema field, each `rows` long) and their statistics.
    /// - Throws: when a tree holds an encoding that cannot be stored (a lazy one, or a plugin's without a storage).
    public func append(columns: [any ArrayNode], stats: [ChunkColumnStats], rows: Int) throws {
        guard columns.count == schema.fields.count, stats.count == columns.count else {
            throw fail("a chunk of \(columns.count) columns for a schema of \(schema.fields.count)")
        }
        guard rows <= EddyFileFormat.maxChunkRows else {
            throw fail("a chunk of \(rows) rows; at most \(EddyFileFormat.maxChunkRows)")
        }
        var layouts: [ColumnChunkLayout] = []
        for (k, column) in columns.enumerated() {
            try pad()
            let start = offset
            var nodes: [StoredNodeLayout] = []
            var crc: UInt32 = 0
            _ = try store(column, depth: 0, segmentStart: start, nodes: &nodes, crc: &crc)
            var st = stats[k]
            // The segment (buffers and their padding) and the footer's metadata for the tree.
            st.storedBytes = offset - start + nodes.reduce(0) { $0 + $1.metadata.count }
            layouts.append(
                ColumnChunkLayout(
                    segmentOffset: start, segmentLength: offset - start, checksum: crc, nodes: nodes, stats: st))
        }
        chunks.append(ChunkLayout(rows: rows, columns: layouts))
        self.rows += rows
    }

    /// Stores `node`'s children, then its buffers; returns its index among `nodes` (post-order).
    private func store(
        _ node: any ArrayNode, depth: Int, segmentStart: Int, nodes: inout [StoredNodeLayout], crc: inout UInt32
    ) throws -> Int {
        guard depth < EddyFileFormat.maxDepth else {
            throw fail("an encoding tree deeper than \(EddyFileFormat.maxDepth) nodes")
        }
        let name = node.encoding.name
        guard let storage = snapshot.storage(for: name) else {
            throw fail(
                "encoding \(name) cannot be stored: it is not one of the engine's stored encodings and no loaded plugin registers a storage for it"
            )
        }
        let parts: StoredParts
        do {
            parts = try storage.write(node)
        } catch {
            throw fail("writing \(name): \(error)")
        }
        var children: [Int] = []
        for child in parts.children {
            children.append(try store(child, depth: depth + 1, segmentStart: segmentStart, nodes: &nodes, crc: &crc))
        }
        var buffers: [(offset: Int, length: Int)] = []
        for b in parts.buffers {
            let gap = (EddyFileFormat.alignment - offset % EddyFileFormat.alignment) % EddyFileFormat.alignment
            if gap > 0 {
                let zeros = [UInt8](repeating: 0, count: gap)
                crc = zeros.withUnsafeBytes { eddy_crc(crc, $0) }
                try write(zeros)
            }
            buffers.append((offset - segmentStart, b.byteCount))
            try withExtendedLifetime(b.storage) {
                let bytes = UnsafeRawBufferPointer(start: b.baseAddress, count: b.byteCount)
                crc = eddy_crc(crc, bytes)
                try write(bytes)
            }
        }
        let index = try encodingIndex(for: name, storage)
        nodes.append(
            StoredNodeLayout(
                encoding: index, dtype: node.dtype, count: node.count, metadata: parts.metadata, buffers: buffers,
                children: children))
        return nodes.count - 1
    }

    private func encodingIndex(for name: String, _ storage: EncodingStorage) throws -> Int {
        if let i = encodingIndex[name] { return i }
        let owner = storage.owner
        // The snapshot's owner carries the plugin file's hash; the storage's own may not.
        let plugin = owner.isBuiltin ? nil : snapshot.plugins.first { $0.name == owner.name } ?? owner
        encodings.append(
            StoredEncoding(
                name: name, pluginName: plugin?.name ?? "", pluginVersion: plugin?.version ?? "",
                pluginHash: plugin?.contentHash ?? "", metadataVersion: storage.metadataVersion))
        encodingIndex[name] = encodings.count - 1
        return encodings.count - 1
    }

    /// Writes the footer and trailer, syncs and renames the file into place.
    public func finish() throws {
        let footer = EddyFooter(schema: schema, encodings: encodings, rows: rows, chunks: chunks).encoded()
        try pad()
        let footerOffset = offset
        try write(footer)
        var trailer: [UInt8] = []
        func le<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { trailer += $0 } }
        le(UInt64(footerOffset))
        le(UInt64(footer.count))
        le(EddyFileFormat.crc32c(footer))
        le(EddyFileFormat.version)
        le(UInt16(0))
        trailer += EddyFileFormat.magic
        try write(trailer)
        guard fsync(fd) == 0 || errno == EINVAL else { throw fail("fsync failed: \(String(cString: strerror(errno)))") }
        close(fd)
        finished = true
        let failed = placement.rename(temporaryPath, path)
        guard failed == 0 else {
            let message = failed > 0 ? String(cString: strerror(failed)) : "its committer is gone"
            placement.discard(temporaryPath)
            throw fail("cannot rename the finished file into place: \(message)")
        }
    }

    /// Bytes written so far.
    public var bytesWritten: Int { offset }
    public var rowsWritten: Int { rows }
}

private func eddy_crc(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
    guard let base = bytes.baseAddress else { return crc }
    return eddy_crc32c(crc, base.assumingMemoryBound(to: UInt8.self), bytes.count)
}

/// `eddy convert`: reads a table batch by batch, compresses each chunk's columns for storage on
/// `threads` workers, and writes them in order.
public enum EddyConvert {
    public struct Summary: Sendable {
        public var rows: Int
        public var chunks: Int
        public var bytes: Int
        public var plainBytes: Int
    }

    /// Statistics of one canonical column: nulls, min and max (ordered types), plain size.
    @_spi(Host) public static func statistics(_ column: any ArrayNode, ctx: ExecutionCtx) throws -> ChunkColumnStats {
        let nulls: Int
        switch column {
        case is PrimitiveArray, is BoolArray, is VarBinArray, is StructArray, is ConstantArray, is NullArray:
            nulls = Canonical.validity(of: column).nullCount(column.count)
        default:
            // An encoded column (a Parquet chunk's dictionary): its nulls are its codes', counted by the
            // engine (Canonical.validity says "all valid" for an array it does not know).
            let counted = try ctx.execute(AggregateArray(AggregateFunction(.count), column)).scalar(at: 0)
            switch counted.value {
            case .int(let n) where n >= 0 && n <= column.count: nulls = column.count - Int(n)
            case .uint(let n) where n <= UInt64(column.count): nulls = column.count - Int(n)
            default: nulls = Canonical.validity(of: try ctx.execute(column)).nullCount(column.count)
            }
        }
        var minimum: Scalar?
        var maximum: Scalar?
        let ordered: Bool =
            switch column.dtype {
            case .primitive, .utf8, .bool: true
            default: false
            }
        if ordered, nulls < column.count {
            for (kind, slot) in [(AggregateFunction.Kind.min, 0), (.max, 1)] {
                let r = try ctx.execute(AggregateArray(AggregateFunction(kind), column))
                var s = try r.scalar(at: 0)
                if s.isNull { continue }
                s = Scalar(s.value, column.dtype.with(.nonNullable))
                // Long strings are not kept: a bound must be exact, and a footer stays small.
                if case .utf8(let text) = s.value, text.utf8.count > 64 { continue }
                guard s.value.fits(column.dtype.with(.nonNullable)) else { continue }
                if slot == 0 { minimum = s } else { maximum = s }
            }
        }
        return ChunkColumnStats(
            nullCount: nulls, min: minimum, max: maximum, plainBytes: column.byteSize, storedBytes: 0)
    }

    /// The snapshot's compressor hooks, each kept from proposing a tree the file cannot store (an
    /// encoding whose plugin registers no storage, an older build of it, say): such a proposal is
    /// dropped for the engine's own encodings, and `warn` is told once per hook.
    @_spi(Host) public static func storableHooks(
        _ snapshot: KernelSnapshot, warn: @escaping @Sendable (String) -> Void
    ) -> [CompressorHook] {
        snapshot.compressorHooks.map { hook in
            let warned = Mutex(false)
            return hook.replacing { column, recurse in
                guard let tree = try hook.compress(column, recurse) else { return nil }
                if let missing = firstUnstorable(tree, snapshot) {
                    if warned.withLock({ w in
                        defer { w = true }; return !w
                    }) {
                        warn(
                            "compressor hook '\(hook.name)' of \(hook.owner) proposed \(missing), which no loaded plugin can store; the engine's encodings are used instead"
                        )
                    }
                    return nil
                }
                return tree
            }
        }
    }

    static func firstUnstorable(_ tree: any ArrayNode, _ snapshot: KernelSnapshot) -> String? {
        var stack: [any ArrayNode] = [tree]
        var seen = 0
        while let node = stack.popLast(), seen < 10_000 {
            seen += 1
            if snapshot.storage(for: node.encoding.name) == nil { return node.encoding.name }
            stack.append(contentsOf: node.children)
        }
        return nil
    }

    /// Converts everything `reader` yields into `writer`, `threads` chunks at a time.
    @_spi(Host) public static func run(
        reader: any TableReader, writer: EddyFileWriter, compressor: Compressor, session: Session,
        threads: Int, chunkRows: Int = EddyFileFormat.maxChunkRows, progress: ((String) -> Void)? = nil
    ) throws -> Summary {
        // A reader whose batches are its file's (a Parquet row group) may give more rows than a chunk
        // takes: such a batch is cut into chunks of `chunkRows`.
        let rowsPerChunk = Swift.max(1, Swift.min(chunkRows, EddyFileFormat.maxChunkRows))
        var summary = Summary(rows: 0, chunks: 0, bytes: 0, plainBytes: 0)
        let width = Swift.max(1, threads)
        let started = eddy_monotonic_nanoseconds()
        var lastProgress = started
        while true {
            var builders: [@Sendable () throws -> RecordBatch] = []
            var readError: (any Error)?
            do {
                while builders.count < width, let b = try reader.nextDeferred() { builders.append(b) }
            } catch {
                readError = error
            }
            if builders.isEmpty {
                if let readError { throw readError }
                break
            }
            let jobs = builders
            let results = ConvertSlots(count: jobs.count)
            let work = UncheckedBox(compressor)
            Parallel.perform(iterations: jobs.count) { k in
                results.set(
                    k,
                    Result {
                        let batch = try jobs[k]()
                        let ctx = session.makeContext()
                        var chunks: [ConvertedChunk] = []
                        var start = 0
                        repeat {
                            let rows = Swift.min(rowsPerChunk, batch.count - start)
                            var columns: [any ArrayNode] = []
                            var stats: [ChunkColumnStats] = []
                            for whole in batch.columns {
                                let col =
                                    rows == batch.count
                                    ? whole : try ctx.execute(try SliceArray(whole, start: start, length: rows))
                                stats.append(try statistics(col, ctx: ctx))
                                columns.append(try work.value.compress(col))
                            }
                            chunks.append(ConvertedChunk(columns: columns, stats: stats, rows: rows))
                            start += rows
                        } while start < batch.count
                        return chunks
                    })
            }
            for r in results.all {
                for c in try r.get() {
                    try writer.append(columns: c.columns, stats: c.stats, rows: c.rows)
                    summary.rows += c.rows
                    summary.chunks += 1
                    summary.plainBytes += c.stats.reduce(0) { $0 + $1.plainBytes }
                }
            }
            if let readError { throw readError }
            let t = eddy_monotonic_nanoseconds()
            if let progress, t - started > 1_000_000_000, t - lastProgress > 500_000_000 {
                lastProgress = t
                let pct =
                    reader.fileSize > 0 ? " (\(Int(100 * Double(reader.bytesRead) / Double(reader.fileSize)))%)" : ""
                progress("converted \(summary.rows) rows\(pct), wrote \(writer.bytesWritten / 1_048_576) MB")
            }
        }
        try writer.finish()
        summary.bytes = writer.bytesWritten
        return summary
    }
}

struct ConvertedChunk: Sendable {
    var columns: [any ArrayNode]
    var stats: [ChunkColumnStats]
    var rows: Int
}

private final class ConvertSlots: Sendable {
    private let slots: Mutex<[Result<[ConvertedChunk], any Error>?]>
    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }
    func set(_ k: Int, _ r: sending Result<[ConvertedChunk], any Error>) { slots.withLock { $0[k] = r } }
    var all: [Result<[ConvertedChunk], any Error>] {
        slots.withLock {
            $0.map { $0 ?? .failure(IOError(file: "", line: 0, column: 0, message: "chunk not converted")) }
        }
    }
}
