#if canImport(Glibc)
    import Glibc
#endif

/// The running executable (`/proc/self/exe`): where `eddy` finds `eddy-server` and `libEddyCrypto.so`,
/// what the probe process runs, what confinement leaves readable.
package enum OwnExecutable {
    /// Its path, or nil when `/proc/self/exe` cannot be read.
    package static var path: String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Its directory ("/" for a program at the root), or nil when it cannot be read.
    package static var directory: String? {
        guard let path, let slash = path.lastIndex(of: "/") else { return nil }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
