#if canImport(Glibc)
    import Glibc
#endif

/// SHA-256 and Ed25519 for the host: swift-crypto in `libEddyCrypto.so` beside the executable, opened
/// the first time a plugin is hashed or a signature checked (Sources/EddyCrypto). Linked into `eddy`,
/// swift-crypto brought FoundationEssentials — and with it Swift's concurrency and string-processing
/// libraries — into every process start, plugins or not.
///
/// The library must be a regular file owned by this user or root that no one else may write, as a
/// plugin directory must be; it is opened once, without following a link, and mapped from that
/// descriptor.
public enum HostCrypto {
    /// The interface version the host expects (`eddy_crypto_interface_version`).
    static let interfaceVersion: Int32 = 1
    /// The library's file name.
    public static let libraryName = "libEddyCrypto.so"

    /// Why the library could not be used.
    public struct Unavailable: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    typealias SHA256Function = @convention(c) (UnsafeRawPointer?, Int, UnsafeMutablePointer<UInt8>) -> Void
    typealias StartFunction = @convention(c) () -> UnsafeMutableRawPointer?
    typealias UpdateFunction = @convention(c) (UnsafeMutableRawPointer, UnsafeRawPointer?, Int) -> Void
    typealias FinishFunction = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<UInt8>) -> Void
    typealias VerifyFunction =
        @convention(c) (UnsafePointer<UInt8>, UnsafePointer<UInt8>, UnsafeRawPointer?, Int) -> Int32
    typealias SignFunction =
        @convention(c) (
            UnsafePointer<UInt8>, UnsafeRawPointer?, Int, UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt8>
        ) -> Int32
    typealias GenerateFunction = @convention(c) (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt8>) -> Void

    struct Functions: Sendable {
        let sha256: SHA256Function
        let start: StartFunction
        let update: UpdateFunction
        let finish: FinishFunction
        let verify: VerifyFunction
        let sign: SignFunction
        let generate: GenerateFunction
    }

    /// The library's functions, opened on first use (a failure is kept: every later call says the same).
    static let functions: Result<Functions, Unavailable> = open()

    static func loaded() throws(Unavailable) -> Functions {
        switch functions {
        case .success(let f): return f
        case .failure(let e): throw e
        }
    }

    static func open() -> Result<Functions, Unavailable> {
        func fail(_ why: String) -> Result<Functions, Unavailable> {
            .failure(
                Unavailable(
                    description: "\(libraryName) (SHA-256 and Ed25519 for plugins) \(why); it is built with eddy "
                        + "(swift build) and must sit in eddy's directory"))
        }
        guard let directory = OwnExecutable.directory else {
            return fail("could not be found: /proc/self/exe is not readable")
        }
        let path = (directory == "/" ? "" : directory) + "/" + libraryName
        let shown = PluginHost.escaped(path)
        // Without blocking (a FIFO there would wait for a writer forever) and without following a link.
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "a symbolic link, not followed: install the file itself" : errnoText()
            return fail("could not be opened (\(shown): \(reason))")
        }
        // Kept open once the library is mapped: the loader knows it as "/proc/self/fd/N", and a later
        // dlopen of that name (a plugin's held copy, given the number again) would be answered with
        // this library instead of the file.
        var mapped = false
        defer { if !mapped { close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            return fail("is not a regular file (\(shown))")
        }
        if let problem = PluginFile.trustProblem(st, what: shown) { return fail("is not used: \(problem)") }
        // The loader maps each segment as the headers say; one past the end of a cut file is a SIGBUS
        // in this process when the loader touches it.
        if let problem = segmentProblem(fd, size: Int(st.st_size)) { return fail("is not used (\(shown): \(problem))") }
        // Mapped from the descriptor checked above, not by name again.
        guard let handle = dlopen("/proc/self/fd/\(fd)", RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            return fail("could not be loaded (\(shown): \(reason))")
        }
        mapped = true
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        typealias Version = @convention(c) () -> Int32
        guard let version = symbol("eddy_crypto_interface_version", as: Version.self),
            version() == interfaceVersion
        else { return fail("is not the version this eddy was built with (\(shown))") }
        guard let sha256 = symbol("eddy_crypto_sha256", as: SHA256Function.self),
            let start = symbol("eddy_crypto_sha256_start", as: StartFunction.self),
            let update = symbol("eddy_crypto_sha256_update", as: UpdateFunction.self),
            let finish = symbol("eddy_crypto_sha256_finish", as: FinishFunction.self),
            let verify = symbol("eddy_crypto_ed25519_verify", as: VerifyFunction.self),
            let sign = symbol("eddy_crypto_ed25519_sign", as: SignFunction.self),
            let generate = symbol("eddy_crypto_ed25519_generate", as: GenerateFunction.self)
        else { return fail("lacks a function this eddy calls (\(shown))") }
        return .success(
            Functions(
                sha256: sha256, start: start, update: update, finish: finish, verify: verify, sign: sign,
                generate: generate))
    }

    /// Why the ELF file open on `fd` (`size` bytes) cannot be mapped whole: not a 64-bit little-endian
    /// ELF shared object, program headers out of the file, or a loadable segment past its end. Nil when
    /// every loadable segment lies inside the file.
    static func segmentProblem(_ fd: Int32, size: Int) -> String? {
        func read(_ count: Int, at offset: Int) -> [UInt8]? {
            guard count >= 0, offset >= 0, offset <= size, count <= size - offset else { return nil }
            var out = [UInt8](repeating: 0, count: count)
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return n == count ? out : nil
        }
        func word(_ b: [UInt8], _ at: Int, _ width: Int) -> Int {
            var v = 0
            for i in (0..<width).reversed() { v = v << 8 | Int(b[at + i]) }
            return v
        }
        guard let header = read(64, at: 0), header.starts(with: [0x7F, 0x45, 0x4C, 0x46, 2, 1]),
            word(header, 16, 2) == 3
        else { return "not a 64-bit ELF shared library" }
        let (phoff, phentsize, phnum) = (word(header, 32, 8), word(header, 54, 2), word(header, 56, 2))
        guard phentsize == 56, phnum > 0, phnum <= 256, phoff >= 0,
            let table = read(phnum * 56, at: phoff)
        else { return "its program headers lie outside the file" }
        for k in 0..<phnum where word(table, k * 56, 4) == 1 {  // PT_LOAD
            let offset = word(table, k * 56 + 8, 8)
            let length = word(table, k * 56 + 32, 8)
            let (end, overflow) = offset.addingReportingOverflow(length)
            guard offset >= 0, length >= 0, !overflow, end <= size else {
                return "a loadable segment ends past the file's \(size) bytes (cut short?)"
            }
        }
        return nil
    }

    /// `count` bytes written by `body`.
    static func bytes(_ count: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Void) -> [UInt8] {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
        p.initialize(repeating: 0, count: count)
        defer { p.deallocate() }
        body(p)
        return Array(UnsafeBufferPointer(start: p, count: count))
    }

    /// `bytes` in lowercase hex, as hashes are shown and kept.
    public static func hex(_ bytes: [UInt8]) -> String { PrivateCopies.hex(bytes) }

    /// The SHA-256 of `bytes`.
    public static func sha256(_ bytes: [UInt8]) throws(Unavailable) -> [UInt8] {
        let f = try loaded()
        return bytes.withUnsafeBytes { b in Self.bytes(32) { f.sha256(b.baseAddress, b.count, $0) } }
    }

    /// A SHA-256 computed over parts.
    public final class SHA256Stream {
        private let f: Functions
        private var state: UnsafeMutableRawPointer?

        public init() throws(Unavailable) {
            f = try HostCrypto.loaded()
            state = f.start()
            guard state != nil else { throw Unavailable(description: "\(HostCrypto.libraryName) gave no hasher") }
        }

        deinit { _ = finish() }

        /// Adds `bytes` to the hash.
        public func update(_ bytes: UnsafeRawBufferPointer) {
            guard let state else { return }
            f.update(state, bytes.baseAddress, bytes.count)
        }

        /// The hash of everything added (the stream takes no more after it).
        public func finish() -> [UInt8] {
            guard let state else { return [] }
            self.state = nil
            return HostCrypto.bytes(32) { f.finish(state, $0) }
        }
    }

    /// Whether `signature` (64 bytes) is `publicKey`'s (32 bytes) over `message`; nil when the key is
    /// not an Ed25519 public key.
    static func isValid(signature: [UInt8], publicKey: [UInt8], message: [UInt8]) throws(Unavailable) -> Bool? {
        let f = try loaded()
        guard signature.count == 64, publicKey.count == 32 else { return nil }
        let r = message.withUnsafeBytes { m in f.verify(publicKey, signature, m.baseAddress, m.count) }
        return r < 0 ? nil : r == 1
    }

    /// The signature of `message` by `privateKey` (32 bytes) and the key's public half; nil when the
    /// key is not an Ed25519 private key.
    static func sign(_ message: [UInt8], privateKey: [UInt8]) throws(Unavailable) -> (
        signature: [UInt8], publicKey: [UInt8]
    )? {
        let f = try loaded()
        guard privateKey.count == 32 else { return nil }
        var status: Int32 = -1
        var publicKey: [UInt8] = []
        let signature = message.withUnsafeBytes { m in
            bytes(64) { s in publicKey = bytes(32) { p in status = f.sign(privateKey, m.baseAddress, m.count, s, p) } }
        }
        return status == 0 ? (signature, publicKey) : nil
    }

    /// A new Ed25519 key pair.
    static func generateKey() throws(Unavailable) -> (privateKey: [UInt8], publicKey: [UInt8]) {
        let f = try loaded()
        var publicKey: [UInt8] = []
        let privateKey = bytes(32) { k in publicKey = bytes(32) { p in f.generate(k, p) } }
        return (privateKey, publicKey)
    }
}
