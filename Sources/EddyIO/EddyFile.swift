import CEddyIO
@_spi(Host) public import Eddy
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The `.eddy` file: column chunks stored as the compressor's encoding trees, read in place.
///
/// Layout (all integers little-endian):
///
///     offset 0        header: "EDDYFILE", u16 format version, zeros to byte 64
///     64 …            segments: one per (chunk, column), each buffer of its tree 64-byte aligned
///     footerOffset    footer (see EddyFooter), its CRC-32C in the trailer
///     size - 32       trailer: u64 footerOffset, u64 footerLength, u32 footer CRC-32C,
///                     u16 format version, u16 zero, "EDDYFILE"
public enum EddyFileFormat {
    public static let magic: [UInt8] = Array("EDDYFILE".utf8)
    public static let version: UInt16 = 1
    public static let headerSize = 64
    public static let trailerSize = 32
    public static let alignment = 64
    /// Rows per chunk at most (a node's length is bounded by it, so no node can claim more).
    public static let maxChunkRows = 1 << 24
    /// Nodes per column chunk, tree depth, columns and chunks at most: bounds on what a footer may claim.
    public static let maxNodes = 1 << 16
    public static let maxDepth = 64
    public static let maxColumns = 1 << 16
    public static let maxFooterBytes = 1 << 30

    /// Whether `path` is a regular file that starts with the magic (cheap: reads 8 bytes). Anything
    /// else is not opened here: opening a FIFO to look would take its writer's data from the reader.
    public static func isEddyFile(_ path: String) -> Bool {
        guard FileKind.of(path) == .regular else { return false }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 8)
        return pread(fd, &head, 8, 0) == 8 && head == magic
    }

    /// Whether the file open at `descriptor` is a regular file that starts with the magic (reads 8
    /// bytes with `pread`: the descriptor's offset does not move).
    public static func isEddyFile(descriptor: Int32) -> Bool {
        var st = stat()
        guard fstat(descriptor, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        var head = [UInt8](repeating: 0, count: 8)
        return pread(descriptor, &head, 8, 0) == 8 && head == magic
    }

    static func crc(_ p: UnsafeRawPointer, _ n: Int) -> UInt32 {
        eddy_crc32c(0, p.assumingMemoryBound(to: UInt8.self), n)
    }

    /// CRC-32C of `bytes`.
    public static func crc32c(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { b in b.baseAddress.map { crc($0, b.count) } ?? 0 }
    }

    /// CRC-32C of `bytes` without the CPU instruction (to check the two agree).
    public static func crc32cPortable(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { b in
            b.baseAddress.map { eddy_crc32c_portable(0, $0.assumingMemoryBound(to: UInt8.self), b.count) } ?? 0
        }
    }
}

/// Statistics of one column in one chunk: what zone maps test a filter against.
public struct ChunkColumnStats: Sendable {
    public var nullCount: Int
    /// Smallest and largest non-null value, for ordered types (nil when all null or not kept).
    public var min: Scalar?
    public var max: Scalar?
    /// Bytes of the column's plain (canonical) form and of its stored tree.
    public var plainBytes: Int
    public var storedBytes: Int

    public init(nullCount: Int, min: Scalar?, max: Scalar?, plainBytes: Int, storedBytes: Int) {
        self.nullCount = nullCount
        self.min = min
        self.max = max
        self.plainBytes = plainBytes
        self.storedBytes = storedBytes
    }
}

/// One node of a stored tree, as the footer describes it.
public struct StoredNodeLayout: Sendable {
    public var encoding: Int  // index into EddyFooter.encodings
    public var dtype: DType
    public var count: Int
    public var metadata: [UInt8]
    /// Buffers as (offset, length) relative to the segment.
    public var buffers: [(offset: Int, length: Int)]
    /// Indices of child nodes, each smaller than this node's index.
    public var children: [Int]
}

/// One column of one chunk: where its segment is, its checksum, its tree and its statistics.
public struct ColumnChunkLayout: Sendable {
    public var segmentOffset: Int
    public var segmentLength: Int
    public var checksum: UInt32
    public var nodes: [StoredNodeLayout]  // post-order: the last is the root
    public var stats: ChunkColumnStats
}

public struct ChunkLayout: Sendable {
    public var rows: Int
    public var columns: [ColumnChunkLayout]
}

/// An encoding a file uses, and who provided it when the file was written.
public struct StoredEncoding: Sendable, Equatable {
    public var name: String
    /// Empty for the engine's own encodings.
    public var pluginName: String
    public var pluginVersion: String
    public var pluginHash: String
    public var metadataVersion: UInt32

    public var isBuiltin: Bool { pluginName.isEmpty }
}

/// Everything a file's footer says.
public struct EddyFooter: Sendable {
    public var schema: Schema
    public var encodings: [StoredEncoding]
    public var rows: Int
    public var chunks: [ChunkLayout]

    func encoded() -> [UInt8] {
        var w = MetadataWriter()
        w.u32(UInt32(EddyFileFormat.version))
        w.int(schema.fields.count)
        for f in schema.fields {
            w.string(f.name)
            w.dtype(f.dtype)
        }
        w.int(encodings.count)
        for e in encodings {
            w.string(e.name)
            w.string(e.pluginName)
            w.string(e.pluginVersion)
            w.string(e.pluginHash)
            w.u32(e.metadataVersion)
        }
        w.int(rows)
        w.int(chunks.count)
        for c in chunks {
            w.int(c.rows)
            for col in c.columns {
                w.int(col.segmentOffset)
                w.int(col.segmentLength)
                w.u32(col.checksum)
                w.int(col.stats.nullCount)
                w.int(col.stats.plainBytes)
                w.int(col.stats.storedBytes)
                for bound in [col.stats.min, col.stats.max] {
                    w.bool(bound != nil)
                    if let bound { w.scalarValue(bound.value) }
                }
                w.int(col.nodes.count)
                for n in col.nodes {
                    w.int(n.encoding)
                    w.dtype(n.dtype)
                    w.int(n.count)
                    w.blob(n.metadata)
                    w.int(n.buffers.count)
                    for b in n.buffers {
                        w.int(b.offset)
                        w.int(b.length)
                    }
                    w.int(n.children.count)
                    for c in n.children { w.int(c) }
                }
            }
        }
        return w.bytes
    }

    /// Parses and checks a footer: every count bounded by the bytes left, every offset inside the data
    /// region, every tree a tree (children before parents, each used once), depth and sizes bounded.
    static func decode(_ bytes: [UInt8], dataEnd: Int) throws -> EddyFooter {
        var r = MetadataReader(bytes)
        let version = try r.u32()
        guard version == UInt32(EddyFileFormat.version) else {
            throw EddyError(
                .unsupported, "footer format version \(version); this build reads \(EddyFileFormat.version)")
        }
        // Every element takes at least one byte, so no count may exceed the bytes left.
        let ncols = try r.int(max: Swift.min(EddyFileFormat.maxColumns, r.remaining))
        var fields: [StructField] = []
        var names = Set<String>()
        for _ in 0..<ncols {
            let name = try r.string()
            guard names.insert(name).inserted else { throw EddyError(.invalidArgument, "column '\(name)' twice") }
            fields.append(StructField(name, try r.dtype()))
        }
        let nenc = try r.int(max: Swift.min(EddyFileFormat.maxNodes, r.remaining))
        var encodings: [StoredEncoding] = []
        for _ in 0..<nenc {
            encodings.append(
                StoredEncoding(
                    name: try r.string(), pluginName: try r.string(), pluginVersion: try r.string(),
                    pluginHash: try r.string(), metadataVersion: try r.u32()))
        }
        let rows = try r.int(max: Int(Int64.max / 2))
        let nchunks = try r.int(max: r.remaining)
        var chunks: [ChunkLayout] = []
        var total = 0
        for k in 0..<nchunks {
            let crows = try r.int(max: EddyFileFormat.maxChunkRows)
            total += crows
            var cols: [ColumnChunkLayout] = []
            for c in 0..<ncols {
                do {
                    cols.append(try decodeColumn(&r, fields[c].dtype, rows: crows, encodings: nenc, dataEnd: dataEnd))
                } catch let e as EddyError {
                    throw EddyError(e.code, "chunk \(k), column '\(fields[c].name)': \(e.message)")
                }
            }
            chunks.append(ChunkLayout(rows: crows, columns: cols))
        }
        try r.finish()
        guard total == rows else {
            throw EddyError(.invalidArgument, "chunks hold \(total) rows but the footer says \(rows)")
        }
        return EddyFooter(schema: Schema(fields), encodings: encodings, rows: rows, chunks: chunks)
    }

    private static func decodeColumn(
        _ r: inout MetadataReader, _ dtype: DType, rows: Int, encodings: Int, dataEnd: Int
    ) throws -> ColumnChunkLayout {
        let offset = try r.int(max: dataEnd)
        let length = try r.int(max: dataEnd - offset)
        guard offset >= EddyFileFormat.headerSize else {
            throw EddyError(.outOfBounds, "segment at \(offset) overlaps the header")
        }
        let checksum = try r.u32()
        let nulls = try r.int(max: rows)
        // Sizes are for display; bounded so that sums over a file's chunks stay far from overflow.
        let plain = try r.int(max: 1 << 40)
        let stored = try r.int(max: 1 << 40)
        var bounds: [Scalar?] = []
        for _ in 0..<2 {
            bounds.append(try r.bool() ? try r.scalarValue(of: dtype.with(.nonNullable)) : nil)
        }
        let nnodes = try r.int(max: Swift.min(EddyFileFormat.maxNodes, r.remaining))
        guard nnodes > 0 else { throw EddyError(.invalidArgument, "empty tree") }
        var nodes: [StoredNodeLayout] = []
        var used = [Bool](repeating: false, count: nnodes)
        var depth = [Int](repeating: 1, count: nnodes)
        guard encodings > 0 else { throw EddyError(.invalidArgument, "a tree but no encodings in the footer") }
        for i in 0..<nnodes {
            let enc = try r.int(max: encodings - 1)
            let t = try r.dtype()
            let count = try r.int(max: EddyFileFormat.maxChunkRows)
            let meta = try r.blob()
            let nbuf = try r.int(max: r.remaining)
            var buffers: [(offset: Int, length: Int)] = []
            for _ in 0..<nbuf {
                let bo = try r.int(max: length)
                let bl = try r.int(max: length - bo)
                guard (offset + bo) % EddyFileFormat.alignment == 0 else {
                    throw EddyError(.invalidArgument, "node \(i): buffer at \(offset + bo) is not 64-byte aligned")
                }
                buffers.append((bo, bl))
            }
            let nchild = try r.int(max: r.remaining)
            var children: [Int] = []
            for _ in 0..<nchild {
                let c = try r.int(max: Int(Int32.max))
                guard c < i else {
                    throw EddyError(.invalidArgument, "node \(i): child \(c) is not stored before its parent")
                }
                guard !used[c] else { throw EddyError(.invalidArgument, "node \(i): child \(c) has two parents") }
                used[c] = true
                depth[i] = Swift.max(depth[i], depth[c] + 1)
                children.append(c)
            }
            guard depth[i] <= EddyFileFormat.maxDepth else {
                throw EddyError(.invalidArgument, "tree deeper than \(EddyFileFormat.maxDepth) nodes")
            }
            nodes.append(
                StoredNodeLayout(
                    encoding: enc, dtype: t, count: count, metadata: meta, buffers: buffers, children: children))
        }
        if let orphan = used.dropLast().firstIndex(of: false) {
            throw EddyError(.invalidArgument, "node \(orphan) belongs to no parent")
        }
        guard let root = nodes.last, root.dtype == dtype, root.count == rows else {
            throw EddyError(
                .invalidArgument,
                "root is \(nodes.last.map { "\($0.dtype), len=\($0.count)" } ?? "missing"); the column is \(dtype), len=\(rows)"
            )
        }
        return ColumnChunkLayout(
            segmentOffset: offset, segmentLength: length, checksum: checksum, nodes: nodes,
            stats: ChunkColumnStats(
                nullCount: nulls, min: bounds[0], max: bounds[1], plainBytes: plain, storedBytes: stored))
    }
}

/// A read-only mapping of a whole file; unmapped when the last buffer that uses it is gone.
final class FileMapping: Sendable {
    nonisolated(unsafe) let base: UnsafeRawPointer
    let size: Int
    /// Its slot in the table a crash report reads to name the file of a faulting address.
    let slot: Int32

    init(base: UnsafeRawPointer, size: Int, path: String) {
        self.base = base
        self.size = size
        slot = eddy_mapping_register(base, size, path)
    }

    deinit {
        eddy_mapping_unregister(slot)
        munmap(UnsafeMutableRawPointer(mutating: base), size)
    }
}

/// A mapped `.eddy` file and its parsed footer: what opening it costs, kept while the file is unchanged.
/// Without a mapping (a file read with `pread`, see ``EddyFile/init(descriptor:path:snapshot:requireEncodings:verifyChecksums:maxFooterBytes:onlyIfOpen:mapped:)``)
/// only the footer is kept.
final class MappedEddyFile: Sendable {
    let mapping: FileMapping?
    let storage: BufferStorage?
    let footer: EddyFooter
    let size: Int
    /// Segments whose checksum was verified (chunk × columns + column): the bytes of a mapping of an
    /// unchanged file do not change.
    private let verified: Mutex<Set<Int>>

    init(mapping: FileMapping?, size: Int, footer: EddyFooter) {
        self.mapping = mapping
        self.storage = mapping.map { BufferStorage(borrowing: $0.base, byteCount: $0.size, owner: $0) }
        self.footer = footer
        self.size = size
        self.verified = Mutex([])
    }

    func isVerified(chunk: Int, column: Int) -> Bool {
        let k = chunk &* footer.schema.fields.count &+ column
        return verified.withLock { $0.contains(k) }
    }

    func markVerified(chunk: Int, column: Int) {
        let k = chunk &* footer.schema.fields.count &+ column
        verified.withLock { _ = $0.insert(k) }
    }

    /// Column chunks found to agree with the footer's statistics, with the plugin builds that read them
    /// (see ``PluginChunkCheck``).
    let statisticsChecked = Mutex<Set<PluginChunkCheck.Key>>([])

    /// Reads and checks the header, trailer and footer of the file open at `fd`, then maps it (unless
    /// `map` is false).
    ///
    /// They are read with `pread`, not through the mapping: a file truncated meanwhile is a short read
    /// (an error naming it), not a SIGBUS, and an answer from the footer alone (`count(*)`, which
    /// `eddy serve` gives in its own process) touches no mapped page.
    static func load(
        fd: Int32, path: String, size: Int, verifyChecksums: Bool,
        maxFooterBytes: Int = EddyFileFormat.maxFooterBytes, map: Bool = true, fail: (String) -> IOError
    ) throws -> MappedEddyFile {
        func read(_ offset: Int, _ count: Int) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            let problem = out.withUnsafeMutableBytes { buffer -> String? in
                guard let base = buffer.baseAddress else { return nil }
                return preadFully(fd, into: base, count: count, offset: offset)
            }
            if let problem { throw fail(problem) }
            return out
        }
        let head = try read(0, 16)
        let t = size - EddyFileFormat.trailerSize
        let trailer = try read(t, EddyFileFormat.trailerSize)
        func u64(_ at: Int) -> Int {
            Int(truncatingIfNeeded: (0..<8).reduce(UInt64(0)) { $0 | UInt64(trailer[at + $1]) << (8 * $1) })
        }
        guard Array(head[0..<8]) == EddyFileFormat.magic else { throw fail("no EDDYFILE magic at the start") }
        guard Array(trailer[(EddyFileFormat.trailerSize - 8)...]) == EddyFileFormat.magic else {
            throw fail("no EDDYFILE magic at the end (truncated?)")
        }
        let headVersion = UInt16(head[8]) | UInt16(head[9]) << 8
        let tailVersion = UInt16(trailer[20]) | UInt16(trailer[21]) << 8
        guard headVersion == EddyFileFormat.version, tailVersion == EddyFileFormat.version else {
            throw fail(
                "format version \(headVersion) (header) / \(tailVersion) (trailer); this build reads \(EddyFileFormat.version)"
            )
        }
        let footerOffset = u64(0)
        let footerLength = u64(8)
        // As written (unsigned), for messages: a hostile field can be any 64-bit pattern.
        let (shownOffset, shownLength) = (
            UInt64(bitPattern: Int64(footerOffset)), UInt64(bitPattern: Int64(footerLength))
        )
        let footerCRC = (0..<4).reduce(UInt32(0)) { $0 | UInt32(trailer[16 + $1]) << (8 * $1) }
        guard footerOffset >= EddyFileFormat.headerSize, footerLength > 0,
            footerLength <= EddyFileFormat.maxFooterBytes,
            footerOffset <= t, t - footerOffset == footerLength
        else {
            throw fail(
                "the trailer places the footer at byte \(shownOffset), \(shownLength) bytes long; it must lie after "
                    + "the \(EddyFileFormat.headerSize)-byte header and end where the trailer starts (byte \(t) of "
                    + "\(size)), and be 1 to \(EddyFileFormat.maxFooterBytes) bytes")
        }
        guard footerLength <= maxFooterBytes else {
            throw fail("the footer is \(footerLength) bytes, more than the \(maxFooterBytes) this reader takes")
        }
        let footerBytes = try read(footerOffset, footerLength)
        guard !verifyChecksums || EddyFileFormat.crc32c(footerBytes) == footerCRC else {
            throw fail("footer checksum mismatch (CRC-32C): the file is damaged")
        }
        var mapping: FileMapping?
        if map {
            guard let raw = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), raw != MAP_FAILED else {
                throw fail("cannot map: \(String(cString: strerror(errno)))")
            }
            mapping = FileMapping(base: UnsafeRawPointer(raw), size: size, path: path)
        }
        do {
            let footer = try EddyFooter.decode(footerBytes, dataEnd: footerOffset)
            return MappedEddyFile(mapping: mapping, size: size, footer: footer)
        } catch let e as EddyError {
            throw fail("footer: \(e.message)")
        }
    }

    struct Key: Hashable {
        var path: String
        var device: UInt64
        var inode: UInt64
        var size: Int
        var modified: Int
        /// The inode's change time: any write or metadata change moves it, and unlike the
        /// modification time it cannot be set back (`touch -d`, `cp -p`, `rsync -t` over a file).
        var changed: Int
        var checksums: Bool
        /// Whether the entry holds a mapping (or only the footer, for a file read with `pread`).
        var mapped: Bool

        init(path: String, _ st: stat, checksums: Bool, mapped: Bool = true) {
            self.path = path
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
            size = Int(st.st_size)
            modified = Int(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int(st.st_mtim.tv_nsec)
            changed = Int(st.st_ctim.tv_sec) &* 1_000_000_000 &+ Int(st.st_ctim.tv_nsec)
            self.checksums = checksums
            self.mapped = mapped
        }
    }

    /// Opens the file at `fd` (whose `fstat` is `st`) afresh: checks its size, loads it and keeps it
    /// in the cache.
    static func loadAndCache(
        fd: Int32, st: stat, path: String, verifyChecksums: Bool, maxFooterBytes: Int, map: Bool,
        fail: (String) -> IOError
    ) throws -> MappedEddyFile {
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw fail("not a regular file") }
        let size = Int(st.st_size)
        guard size >= EddyFileFormat.headerSize + EddyFileFormat.trailerSize else {
            throw fail("\(size) bytes: too short for an .eddy file (header and trailer take 96)")
        }
        let key = Key(path: path, st, checksums: verifyChecksums, mapped: map)
        let loaded = try load(
            fd: fd, path: path, size: size, verifyChecksums: verifyChecksums, maxFooterBytes: maxFooterBytes,
            map: map, fail: fail)
        cache.insert(key, loaded)
        return loaded
    }

    /// The most recently opened files (at most 16).
    static let cache = MappedFileCache()
}

final class MappedFileCache: Sendable {
    private let entries = Mutex<[(MappedEddyFile.Key, MappedEddyFile)]>([])
    static let capacity = 16

    func lookup(_ key: MappedEddyFile.Key) -> MappedEddyFile? {
        entries.withLock { list in
            guard let i = list.firstIndex(where: { $0.0 == key }) else { return nil }
            let hit = list.remove(at: i)
            list.append(hit)
            return hit.1
        }
    }

    func insert(_ key: MappedEddyFile.Key, _ file: MappedEddyFile) {
        entries.withLock { list in
            list.removeAll { $0.0 == key || $0.0.path == key.path }
            list.append((key, file))
            if list.count > Self.capacity { list.removeFirst(list.count - Self.capacity) }
        }
    }
}

/// An opened `.eddy` file: mapped, its header, trailer and footer checked, its encodings found.
///
/// The file is mapped read-only and buffers are views of the mapping (no copy). A file truncated by
/// another process while mapped would make reading its pages fault (SIGBUS): under `eddy serve` that
/// ends one worker process, not the server. Opened with `mapped: false` (by the server's own process)
/// the segments are read with `pread` instead, each into memory of its own, and a truncated file is a
/// short read: an error naming the file.
public final class EddyFile: @unchecked Sendable {
    public let path: String
    /// The mapping and the parsed footer (shared with other opens of the same unchanged file).
    let mapped: MappedEddyFile
    public var footer: EddyFooter { mapped.footer }
    /// The file's segments are read from, with `pread`, when it is not mapped.
    let reader: OpenedFile?
    /// The storage of each encoding in the footer's table, found at open (nil only when opened for
    /// inspection without them).
    let storages: [EncodingStorage?]
    /// Whether segment and footer checksums are checked (always, except in tests that must reach the
    /// parser and the encodings' checks with corrupted bytes).
    let verifyChecksums: Bool
    /// The encodings whose storage is not loaded (empty unless opened with `requireEncodings: false`).
    public let missing: [StoredEncoding]
    /// The kernels and plugins the file was opened with: a plugin-encoded chunk is decoded with them to
    /// check it against the footer's statistics.
    let snapshot: KernelSnapshot

    /// Opens and checks `path`; every encoding it uses must be readable with `snapshot`'s plugins.
    /// - Throws: ``IOError`` naming the file and the check that failed.
    /// - Parameter requireEncodings: false opens a file whose plugins are not loaded, for inspection:
    ///   ``missing`` lists them and reading a column that needs one fails.
    /// - Parameter maxFooterBytes: a footer larger than this is refused (the supervisor of `eddy serve`,
    ///   which answers `count(*)` from small footers itself, leaves larger ones to a worker).
    /// - Parameter onlyIfOpen: refuse, without reading it, a file this process has not opened and
    ///   parsed unchanged since (`eddy serve` answers such a file on an event loop's thread only then).
    @_spi(Host) public convenience init(
        path: String, snapshot: KernelSnapshot, requireEncodings: Bool = true, verifyChecksums: Bool = true,
        maxFooterBytes: Int = EddyFileFormat.maxFooterBytes, onlyIfOpen: Bool = false
    ) throws {
        func fail(_ message: String) -> IOError { IOError(file: path, line: 0, column: 0, message: message) }
        let mapped: MappedEddyFile
        // A warm process (eddy serve) keeps recently opened files mapped and parsed, keyed by their
        // identity, modification and change times: a changed or replaced file is opened afresh (and
        // its segments' checksums verified again), even when its modification time was set back.
        // The path's metadata alone finds a cached file; only a file not in the cache is opened.
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
            let cached = MappedEddyFile.cache.lookup(MappedEddyFile.Key(path: path, st, checksums: verifyChecksums))
        {
            mapped = cached
        } else {
            guard !onlyIfOpen else { throw fail("not open in this process") }
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { throw fail(String(cString: strerror(errno))) }
            defer { close(fd) }
            guard fstat(fd, &st) == 0 else { throw fail(String(cString: strerror(errno))) }
            mapped = try MappedEddyFile.loadAndCache(
                fd: fd, st: st, path: path, verifyChecksums: verifyChecksums, maxFooterBytes: maxFooterBytes,
                map: true, fail: fail)
        }
        try self.init(
            path: path, mapped: mapped, reader: nil, snapshot: snapshot, requireEncodings: requireEncodings,
            verifyChecksums: verifyChecksums)
    }

    /// Opens and checks the file open at `descriptor` (it is not opened again by path: `eddy serve`
    /// reads the file it checked, not whatever the path names later); `path` names it in messages.
    /// - Parameter mapped: false reads the segments with `pread` (into memory of their own, each at
    ///   most ``maxSegmentReadBytes``) instead of mapping the file, for a process that must survive the
    ///   file being truncated while it is read: that is then an error naming the file, not a SIGBUS.
    /// - Throws: ``IOError`` naming the file and the check that failed.
    @_spi(Host) public convenience init(
        descriptor: Int32, path: String, snapshot: KernelSnapshot, requireEncodings: Bool = true,
        verifyChecksums: Bool = true, maxFooterBytes: Int = EddyFileFormat.maxFooterBytes, onlyIfOpen: Bool = false,
        mapped map: Bool = true
    ) throws {
        func fail(_ message: String) -> IOError { IOError(file: path, line: 0, column: 0, message: message) }
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { throw fail(String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw fail("not a regular file") }
        let mapped: MappedEddyFile
        if let cached = MappedEddyFile.cache.lookup(
            MappedEddyFile.Key(path: path, st, checksums: verifyChecksums, mapped: map))
        {
            mapped = cached
        } else {
            guard !onlyIfOpen else { throw fail("not open in this process") }
            mapped = try MappedEddyFile.loadAndCache(
                fd: descriptor, st: st, path: path, verifyChecksums: verifyChecksums, maxFooterBytes: maxFooterBytes,
                map: map, fail: fail)
        }
        var reader: OpenedFile?
        if !map {
            let own = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
            guard own >= 0 else { throw fail(String(cString: strerror(errno))) }
            reader = OpenedFile(own)
        }
        try self.init(
            path: path, mapped: mapped, reader: reader, snapshot: snapshot, requireEncodings: requireEncodings,
            verifyChecksums: verifyChecksums)
    }

    /// The most bytes one segment read with `pread` may take (a hostile footer can claim a segment as
    /// large as the file).
    public static let maxSegmentReadBytes = 1 << 31

    private init(
        path: String, mapped: MappedEddyFile, reader: OpenedFile?, snapshot: KernelSnapshot, requireEncodings: Bool,
        verifyChecksums: Bool
    ) throws {
        self.path = path
        self.mapped = mapped
        self.reader = reader
        self.verifyChecksums = verifyChecksums
        self.snapshot = snapshot
        func fail(_ message: String) -> IOError { IOError(file: path, line: 0, column: 0, message: message) }
        let footer = mapped.footer
        // Every encoding must be readable before any data is: name what is missing and who wrote it.
        var found: [EncodingStorage?] = []
        var missing: [StoredEncoding] = []
        for e in footer.encodings {
            guard let s = snapshot.storage(for: e.name) else {
                if !requireEncodings {
                    missing.append(e)
                    found.append(nil)
                    continue
                }
                let who =
                    e.isBuiltin
                    ? "the engine (a newer build?)"
                    : "plugin \(e.pluginName) \(e.pluginVersion)"
                        + (e.pluginHash.isEmpty ? "" : " (sha256 \(e.pluginHash.prefix(12))…)")
                throw fail(
                    "needs encoding \(e.name), written by \(who), which is not loaded; add that plugin to the plugin directory"
                )
            }
            guard s.readableVersions.contains(e.metadataVersion) else {
                throw fail(
                    "encoding \(e.name) was written by \(e.isBuiltin ? "the engine" : "plugin \(e.pluginName) \(e.pluginVersion)") with metadata version \(e.metadataVersion); the loaded \(s.owner.isBuiltin ? "engine" : "plugin \(s.owner.name) \(s.owner.version)") reads versions \(s.readableVersions.lowerBound)…\(s.readableVersions.upperBound)"
                )
            }
            if !e.isBuiltin, s.owner.name != e.pluginName {
                throw fail(
                    "encoding \(e.name) was written by plugin \(e.pluginName) but plugin \(s.owner.name) provides it now"
                )
            }
            found.append(s)
        }
        storages = found
        self.missing = missing
        // (A node's children are distinct earlier nodes, checked when the footer is decoded, so no node
        // has more than EddyFileFormat.maxNodes of them; nothing per chunk is left to check per open.)
    }

    public var size: Int { mapped.size }

    /// The bytes of a segment read with `pread` into memory aligned as the file is (64 bytes), from the
    /// aligned offset at or before the segment: the storage and the file offset it starts at.
    private func readSegment(_ layout: ColumnChunkLayout, from reader: OpenedFile, fail: (String) -> IOError) throws
        -> (storage: BufferStorage, start: Int)
    {
        let start = layout.segmentOffset & ~(EddyFileFormat.alignment - 1)
        let (end, overflow) = layout.segmentOffset.addingReportingOverflow(layout.segmentLength)
        guard !overflow, end - start <= Self.maxSegmentReadBytes else {
            throw fail(
                "segment of \(layout.segmentLength) bytes: more than the \(Self.maxSegmentReadBytes) read into memory "
                    + "at once")
        }
        let count = end - start
        let storage = BufferStorage(uninitializedByteCount: Swift.max(count, 1), alignment: EddyFileFormat.alignment)
        if let problem = preadFully(reader.descriptor, into: storage.pointer, count: count, offset: start) {
            throw fail(problem)
        }
        return (storage, start)
    }

    /// Column `column` of chunk `chunk` as its stored tree, buffers used in place. Checks the segment's
    /// checksum first (the bytes are read once for it).
    /// - Throws: ``IOError`` naming the chunk, the column and the check that failed.
    public func column(chunk: Int, column: Int) throws -> any ArrayNode {
        let layout = footer.chunks[chunk].columns[column]
        func fail(_ message: String) -> IOError {
            IOError(
                file: path, line: 0, column: 0,
                message: "chunk \(chunk), column '\(footer.schema.fields[column].name)': \(message)")
        }
        let storage: BufferStorage
        let start: Int
        if let reader {
            // Read afresh: checked every time.
            (storage, start) = try readSegment(layout, from: reader, fail: fail)
            let at = storage.pointer + (layout.segmentOffset - start)
            guard !verifyChecksums || EddyFileFormat.crc(at, layout.segmentLength) == layout.checksum else {
                throw fail("segment checksum mismatch (CRC-32C): the file is damaged")
            }
        } else {
            guard let mapping = mapped.mapping, let whole = mapped.storage else { throw fail("the file is not mapped") }
            (storage, start) = (whole, 0)
            if verifyChecksums && !mapped.isVerified(chunk: chunk, column: column) {
                guard EddyFileFormat.crc(mapping.base + layout.segmentOffset, layout.segmentLength) == layout.checksum
                else {
                    throw fail("segment checksum mismatch (CRC-32C): the file is damaged")
                }
                mapped.markVerified(chunk: chunk, column: column)
            }
        }
        var built: [any ArrayNode] = []
        built.reserveCapacity(layout.nodes.count)
        // The plugins whose storage built a node of this tree: their chunks are checked against the
        // footer's statistics below. The engine's own encodings are the engine's code, tested with it,
        // and skip that decode.
        var plugins: [KernelOwner] = []
        for (i, n) in layout.nodes.enumerated() {
            let enc = footer.encodings[n.encoding]
            let stored: StoredNode
            do {
                let buffers = try n.buffers.map {
                    try Buffer(
                        storage: storage, byteOffset: layout.segmentOffset - start + $0.offset, byteCount: $0.length)
                }
                stored = StoredNode(
                    dtype: n.dtype, count: n.count, metadata: n.metadata, metadataVersion: enc.metadataVersion,
                    buffers: buffers, children: n.children.map { built[$0] })
            } catch let e as EddyError {
                throw fail("node \(i) (\(enc.name)): \(e.message)")
            } catch {
                throw fail("node \(i) (\(enc.name)): \(error)")
            }
            guard let encodingStorage = storages[n.encoding] else {
                throw fail(
                    "node \(i) (\(enc.name)): encoding \(enc.name) is not loaded (plugin \(enc.pluginName) \(enc.pluginVersion))"
                )
            }
            let owner = encodingStorage.owner
            if owner.isBuiltin {
                do {
                    built.append(try encodingStorage.read(stored))
                } catch let e as EddyError {
                    throw fail("node \(i) (\(enc.name)): \(e.message)")
                } catch {
                    throw fail("node \(i) (\(enc.name)): \(error)")
                }
                continue
            }
            if !plugins.contains(owner) { plugins.append(owner) }
            let check = PluginChunkCheck(file: self, chunk: chunk, column: column, plugins: [owner])
            let node: any ArrayNode
            do {
                node = try encodingStorage.readUnverified(stored)
            } catch let e as EddyError {
                throw check.failure("node \(i) (\(enc.name)) could not be read: \(e.message)")
            } catch {
                throw check.failure("node \(i) (\(enc.name)) could not be read: \(error)")
            }
            try check.shape(
                of: node, node: i, of: layout.nodes.count, stored: stored, encoding: encodingStorage.encoding)
            built.append(node)
        }
        guard let root = built.last else { throw fail("empty tree") }
        if !plugins.isEmpty {
            try PluginChunkCheck(file: self, chunk: chunk, column: column, plugins: plugins).statistics(of: root)
        }
        return root
    }
}

/// Reads an `.eddy` file chunk by chunk as record batches whose columns are the stored trees (no decode):
/// only the projected columns are touched, and chunks that ``skipChunk`` rules out are not read at all.
public final class EddyTableReader: TableReader {
    public let file: EddyFile
    public var projection: Set<Int>?
    /// Decides from a chunk's statistics whether it can hold a row the query keeps (zone maps): true
    /// skips it. Nil reads every chunk.
    public var skipChunk: ((ChunkLayout) -> Bool)?
    public private(set) var chunksRead = 0
    public private(set) var chunksSkipped = 0
    public private(set) var bytesRead = 0
    private var nextChunk = 0
    private var firstRow = 0

    public init(file: EddyFile) { self.file = file }

    public var schema: Schema { file.footer.schema }
    public var path: String { file.path }
    public var fileSize: Int { file.size }
    /// Batches are views of the mapping: nothing is read ahead.
    public var readsInPlace: Bool { true }

    /// `count(*)` alone: the row counts of the chunks left, from the footer (no chunk is touched).
    /// Zone maps need a `--where`, so none is skipped here.
    public func countRemaining(threads: Int) throws -> (records: Int, threads: Int)? {
        var rows = 0
        let chunks = file.footer.chunks
        while nextChunk < chunks.count {
            rows = saturatingAdd(rows, chunks[nextChunk].rows)
            firstRow = saturatingAdd(firstRow, chunks[nextChunk].rows)
            nextChunk += 1
        }
        return (rows, 1)
    }

    public func next() throws -> RecordBatch? {
        guard let build = try nextDeferred() else { return nil }
        return try build()
    }

    /// A batch of stored trees (not compressed again) starting at file row `firstRow`.
    static func batch(_ schema: Schema, columns: [any ArrayNode], rows: Int, firstRow: Int, plainBytes: Int)
        -> RecordBatch
    {
        var batch = RecordBatch(schema: schema, columns: columns, count: rows, firstLine: 0)
        batch.encoded = true
        batch.firstRow = firstRow
        batch.plainBytes = plainBytes
        return batch
    }

    /// The next chunk zone maps do not skip (its index and first file row), counting read and skipped
    /// chunks; nil at the end.
    private func nextKeptChunk() -> (index: Int, chunk: ChunkLayout, firstRow: Int)? {
        let chunks = file.footer.chunks
        while nextChunk < chunks.count {
            let k = nextChunk
            let chunk = chunks[k]
            let start = firstRow
            nextChunk += 1
            firstRow += chunk.rows
            if let skipChunk, skipChunk(chunk) {
                chunksSkipped += 1
                continue
            }
            chunksRead += 1
            return (k, chunk, start)
        }
        return nil
    }

    public func nextDeferred() throws -> (@Sendable () throws -> RecordBatch)? {
        if projection?.isEmpty == true {
            // No column is read (count(*)): the remaining chunks are one batch of their rows.
            var rows = 0
            let start = firstRow
            while let (_, chunk, _) = nextKeptChunk() { rows += chunk.rows }
            guard rows > 0 else { return nil }
            let schema = file.footer.schema
            let total = rows
            return {
                Self.batch(
                    schema, columns: schema.fields.map { ConstantArray(.null($0.dtype), count: total) }, rows: total,
                    firstRow: start, plainBytes: 0)
            }
        }
        if let (k, chunk, start) = nextKeptChunk() {
            let wanted = projection
            let file = self.file
            for (j, c) in chunk.columns.enumerated() where wanted?.contains(j) ?? true { bytesRead += c.segmentLength }
            return {
                let columns: [any ArrayNode] = try file.footer.schema.fields.enumerated().map { j, field in
                    guard wanted?.contains(j) ?? true else {
                        return ConstantArray(.null(field.dtype), count: chunk.rows)
                    }
                    return try file.column(chunk: k, column: j)
                }
                let plain = chunk.columns.enumerated().reduce(0) { sum, e in
                    wanted?.contains(e.offset) ?? true ? saturatingAdd(sum, e.element.stats.plainBytes) : sum
                }
                return Self.batch(
                    file.footer.schema, columns: columns, rows: chunk.rows, firstRow: start, plainBytes: plain)
            }
        }
        return nil
    }
}

extension ColumnChunkLayout {
    /// The stored tree as indented text (one line per node: encoding, dtype, length, buffer bytes).
    public func treeText(encodings: [StoredEncoding]) -> String {
        var lines: [String] = []
        func render(_ i: Int, _ indent: String) {
            guard i >= 0, i < nodes.count else { return }
            let n = nodes[i]
            let name = n.encoding < encodings.count ? encodings[n.encoding].name : "?"
            let bytes = n.buffers.reduce(0) { $0 + $1.length }
            lines.append("\(indent)\(name)(\(n.dtype), len=\(n.count))" + (bytes > 0 ? " \(bytes) bytes" : ""))
            for c in n.children { render(c, indent + "  ") }
        }
        render(nodes.count - 1, "")
        return lines.joined(separator: "\n")
    }
}

/// `a + b`, or `Int.max` when that overflows (for sizes summed from a file's claims).
public func saturatingAdd(_ a: Int, _ b: Int) -> Int {
    let (r, o) = a.addingReportingOverflow(b)
    return o ? (b < 0 ? Int.min : Int.max) : r
}

/// Reads `count` bytes at `offset` of `fd` into `into`, through short reads and EINTR.
/// - Returns: nil when all were read, else what went wrong, for a message naming the file.
func preadFully(_ fd: Int32, into: UnsafeMutableRawPointer, count: Int, offset: Int) -> String? {
    var done = 0
    while done < count {
        let n = pread(fd, into + done, count - done, off_t(offset + done))
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            return n < 0
                ? "cannot read: \(String(cString: strerror(errno)))"
                : "the file ended at byte \(offset + done) while being read (truncated meanwhile?)"
        }
        done += n
    }
    return nil
}
