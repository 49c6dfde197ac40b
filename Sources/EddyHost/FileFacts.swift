#if canImport(Glibc)
    import Glibc
#endif

/// What `fstat` says of an open file, and the names in an open directory, for code in modules that
/// should not name `stat` or `dirent` themselves: in EddyServer, some files import CNIOLinux, and
/// which module the compiler attributes those C types to then depends on how files are batched.
public struct FileFacts: Sendable {
    public var isRegular: Bool
    public var isDirectory: Bool
    public var size: Int
    public var owner: UInt32
    /// The permission bits (`st_mode & 0o7777`).
    public var permissions: UInt32

    /// The facts of the file open on `fd`; nil when `fstat` fails.
    public init?(descriptor fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        isRegular = (st.st_mode & S_IFMT) == S_IFREG
        isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
        size = Int(st.st_size)
        owner = st.st_uid
        permissions = UInt32(st.st_mode & 0o7777)
    }

    /// The names in the directory open on `dirfd` (read through a duplicate, from its start), without
    /// `.` and `..`.
    public static func names(in dirfd: Int32) -> [String] {
        let dupfd = dup(dirfd)
        guard dupfd >= 0, let dir = fdopendir(dupfd) else {
            if dupfd >= 0 { close(dupfd) }
            return []
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
