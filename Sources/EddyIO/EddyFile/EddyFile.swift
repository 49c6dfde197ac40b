import CEddyIO
@_spi(Host) public import Eddy
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

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

    /// The storage chunk `chunk`'s column `column` is read from, and the file offset its first byte is at:
    /// the segment read afresh (and checked every time), or the whole mapping (checked once).
    private func segment(
        _ layout: ColumnChunkLayout, chunk: Int, column: Int, fail: (String) -> IOError
    ) throws -> (BufferStorage, Int) {
        if let reader {
            // Read afresh: checked every time.
            let (storage, start) = try readSegment(layout, from: reader, fail: fail)
            let at = storage.pointer + (layout.segmentOffset - start)
            guard !verifyChecksums || EddyFileFormat.crc(at, layout.segmentLength) == layout.checksum else {
                throw fail("segment checksum mismatch (CRC-32C): the file is damaged")
            }
            return (storage, start)
        }
        guard let mapping = mapped.mapping, let whole = mapped.storage else { throw fail("the file is not mapped") }
        if verifyChecksums && !mapped.isVerified(chunk: chunk, column: column) {
            guard EddyFileFormat.crc(mapping.base + layout.segmentOffset, layout.segmentLength) == layout.checksum
            else {
                throw fail("segment checksum mismatch (CRC-32C): the file is damaged")
            }
            mapped.markVerified(chunk: chunk, column: column)
        }
        return (whole, 0)
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
        let (storage, start) = try segment(layout, chunk: chunk, column: column, fail: fail)
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
