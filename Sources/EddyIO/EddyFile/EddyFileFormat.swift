import CEddyIO
@_spi(Host) import Eddy

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
