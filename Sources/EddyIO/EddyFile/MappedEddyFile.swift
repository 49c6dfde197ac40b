import CEddyIO
@_spi(Host) import Eddy
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A read-only mapping of a whole file; unmapped when the last buffer that uses it is gone.
/// Or a whole file read into memory of its own (``init(reading:size:path:)``): freed, not unmapped.
final class FileMapping: Sendable {
    nonisolated(unsafe) let base: UnsafeRawPointer
    let size: Int
    /// Its slot in the table a crash report reads to name the file of a faulting address (-1: none).
    let slot: Int32
    /// Whether `base` is memory of its own holding a copy (freed), not a mapping (unmapped).
    let copied: Bool

    init(base: UnsafeRawPointer, size: Int, path: String) {
        self.base = base
        self.size = size
        slot = eddy_mapping_register(base, size, path)
        copied = false
    }

    /// The `size` bytes of the file open on `fd`, read with `pread` into memory of their own: a file cut
    /// short meanwhile is an error (the message), never a SIGBUS later.
    init(reading fd: Int32, size: Int, path: String) throws(IOError) {
        guard size > 0, let memory = malloc(size) else {
            throw IOError(
                file: path, line: 0, column: 0, message: "cannot read it into memory (\(size) bytes): out of memory")
        }
        if let problem = preadFully(fd, into: memory, count: size, offset: 0) {
            free(memory)
            throw IOError(file: path, line: 0, column: 0, message: problem)
        }
        base = UnsafeRawPointer(memory)
        self.size = size
        slot = -1
        copied = true
    }

    deinit {
        if copied {
            free(UnsafeMutableRawPointer(mutating: base))
        } else {
            eddy_mapping_unregister(slot)
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        }
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
