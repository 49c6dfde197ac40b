import EddyIO

#if canImport(Glibc)
    import Glibc
#endif

/// Ed25519 signatures on plugin files, kept in a footer appended to the `.so`: the ELF loader ignores
/// bytes past the last segment, so a signed file still loads as it is, and a drop stays one file.
///
/// Footer layout (little-endian), after the signed bytes:
/// `EDDYSIG1` · signer name length (u16) · signer name · public key (32) · signature (64) ·
/// footer length (u32, all of it) · `EDDYSEND`. The signature covers
/// `"eddy-plugin-signature-v1\n" + name + "\n" + every byte before the footer`.
public enum PluginSignature {
    static let startMagic = Array("EDDYSIG1".utf8)
    static let endMagic = Array("EDDYSEND".utf8)
    static let domain = Array("eddy-plugin-signature-v1\n".utf8)
    static let fixedFooterBytes = 8 + 2 + 32 + 64 + 4 + 8
    static let maxNameBytes = 64

    /// A signature footer as read from a file.
    public struct Footer: Sendable {
        public var signer: String
        public var publicKey: [UInt8]
        public var signature: [UInt8]
        /// How many bytes of the file the signature covers (everything before the footer).
        public var signedLength: Int
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// A public key allowed to sign plugins, from a `NAME.pub` file.
    public struct TrustedKey: Sendable, Equatable {
        public var name: String
        public var publicKey: [UInt8]
        public var fingerprint: String { PluginSignature.fingerprint(publicKey) }
    }

    /// The first 16 hex digits of the SHA-256 of a public key ("?" when ``HostCrypto`` is unavailable,
    /// which also stops every signature from verifying).
    public static func fingerprint(_ key: [UInt8]) -> String {
        (try? HostCrypto.sha256(key)).map { String(PrivateCopies.hex($0).prefix(16)) } ?? "?"
    }

    /// An Ed25519 private key and its public half, as key files hold them.
    public struct SigningKey: Sendable {
        public let privateKey: [UInt8]
        public let publicKey: [UInt8]
    }

    /// The footer of `bytes`, nil if the file is unsigned.
    /// - Throws: ``Failure`` for a footer that is there but malformed (cut, or lengths that disagree).
    public static func footer(of bytes: [UInt8]) throws(Failure) -> Footer? {
        guard bytes.count >= 8, Array(bytes[(bytes.count - 8)...]) == endMagic else {
            // No end marker, but a start marker near the end: a signed file that was cut.
            let tail = bytes.suffix(fixedFooterBytes + maxNameBytes)
            if tail.count >= 8,
                (tail.startIndex...(tail.endIndex - 8)).contains(where: { Array(bytes[$0..<($0 + 8)]) == startMagic })
            {
                throw Failure("malformed signature footer: cut short (the file was truncated after signing)")
            }
            return nil
        }
        guard bytes.count >= 12 else { throw Failure("malformed signature footer: cut short") }
        let lengthAt = bytes.count - 12
        let length =
            Int(bytes[lengthAt]) | Int(bytes[lengthAt + 1]) << 8 | Int(bytes[lengthAt + 2]) << 16
            | Int(bytes[lengthAt + 3]) << 24
        guard length >= fixedFooterBytes, length <= fixedFooterBytes + maxNameBytes, length <= bytes.count else {
            throw Failure("malformed signature footer: length \(length) for a file of \(bytes.count) bytes")
        }
        let start = bytes.count - length
        guard Array(bytes[start..<(start + 8)]) == startMagic else {
            throw Failure("malformed signature footer: no start marker (the file was cut or changed after signing)")
        }
        let nameLength = Int(bytes[start + 8]) | Int(bytes[start + 9]) << 8
        guard fixedFooterBytes + nameLength == length else {
            throw Failure(
                "malformed signature footer: name length \(nameLength) does not fit a footer of \(length) bytes")
        }
        let nameStart = start + 10
        let keyStart = nameStart + nameLength
        let name = String(decoding: bytes[nameStart..<keyStart], as: UTF8.self)
        return Footer(
            signer: name, publicKey: Array(bytes[keyStart..<(keyStart + 32)]),
            signature: Array(bytes[(keyStart + 32)..<(keyStart + 96)]), signedLength: start)
    }

    static func message(_ bytes: [UInt8], signedLength: Int, signer: String) -> [UInt8] {
        domain + Array(signer.utf8) + [0x0A] + bytes[0..<signedLength]
    }

    /// `bytes` (without any old footer) followed by a new footer signed with `key` as `signer`.
    public static func sign(_ bytes: [UInt8], key: SigningKey, signer: String) throws -> [UInt8] {
        let unsigned = try footer(of: bytes).map { Array(bytes[0..<$0.signedLength]) } ?? bytes
        let name = Array(signer.utf8)
        guard !name.isEmpty, name.count <= maxNameBytes else {
            throw Failure("signer name must be 1 to \(maxNameBytes) bytes")
        }
        guard
            let (signature, _) = try HostCrypto.sign(
                message(unsigned, signedLength: unsigned.count, signer: signer), privateKey: key.privateKey)
        else { throw Failure("not an Ed25519 private key") }
        let length = fixedFooterBytes + name.count
        var out = unsigned
        out += startMagic
        out += [UInt8(name.count & 0xFF), UInt8(name.count >> 8)]
        out += name
        out += key.publicKey
        out += signature
        out += [UInt8(length & 0xFF), UInt8((length >> 8) & 0xFF), UInt8((length >> 16) & 0xFF), UInt8(length >> 24)]
        out += endMagic
        return out
    }

    /// What a file's signature says, checked against `trusted`.
    public enum Verdict: Sendable, Equatable {
        case unsigned
        /// Signed, and the signature matches the bytes; `trustedAs` is the trusted key's name, nil if
        /// the key is not among the trusted ones.
        case signed(signer: String, fingerprint: String, trustedAs: String?)
        case invalid(String)
    }

    public static func verify(_ bytes: [UInt8], trusted: [TrustedKey]) -> Verdict {
        let found: Footer?
        do {
            found = try footer(of: bytes)
        } catch {
            return .invalid(error.description)
        }
        guard let footer = found else { return .unsigned }
        let signed = message(bytes, signedLength: footer.signedLength, signer: footer.signer)
        let valid: Bool?
        do {
            valid =
                isWeak(footer.publicKey)
                ? nil
                : try HostCrypto.isValid(signature: footer.signature, publicKey: footer.publicKey, message: signed)
        } catch {
            return .invalid("cannot check the signature: \(error)")
        }
        guard let valid else { return .invalid("malformed signature footer: not a usable Ed25519 public key") }
        guard valid else {
            return .invalid(
                "the signature does not match the file's contents (changed after signing by "
                    + "'\(PluginHost.escaped(footer.signer))')")
        }
        let print = fingerprint(footer.publicKey)
        return .signed(
            signer: footer.signer, fingerprint: print,
            trustedAs: trusted.first { $0.publicKey == footer.publicKey }?.name)
    }

    /// Signs the plugin file at `path` in place with the key in `keyFile`.
    /// - Returns: the signer's name and the key's fingerprint.
    /// - Throws: for a symbolic link, naming its target: the signed copy would replace the link and
    ///   leave the file it names unsigned (what a host loads through the link), so the file itself is
    ///   what to sign; likewise for a file with more than one hard link.
    public static func signFile(_ path: String, keyFile: String) throws -> (signer: String, fingerprint: String) {
        var link = stat()
        if lstat(path, &link) == 0, (link.st_mode & S_IFMT) == S_IFLNK {
            let target = realPath(path).map { PluginHost.escaped($0) } ?? "a file that does not exist"
            throw Failure(
                "\(PluginHost.escaped(path)) is a symbolic link to \(target): sign the file itself "
                    + "(a signed copy would replace the link and leave that file unsigned); nothing was changed")
        }
        // A hard link is the same trap: the signed copy takes this name and the file's other names keep
        // the unsigned bytes.
        if lstat(path, &link) == 0, (link.st_mode & S_IFMT) == S_IFREG, link.st_nlink > 1 {
            throw Failure(
                "\(PluginHost.escaped(path)) has \(link.st_nlink) hard links: a signed copy would take this name "
                    + "and leave the file's other names unsigned; sign a file with one link (copy it first); "
                    + "nothing was changed")
        }
        let (key, name) = try readPrivateKey(keyFile)
        let bytes = try PluginFileIO.read(path)
        guard bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46]) else {
            throw Failure("\(PluginHost.escaped(path)) is not an ELF file")
        }
        try PluginFileIO.replaceContents(path, with: try sign(bytes, key: key, signer: name))
        return (name, fingerprint(key.publicKey))
    }

    // MARK: Key files

    static let publicPrefix = "eddy-ed25519"
    static let privatePrefix = "eddy-ed25519-private"

    /// Writes `NAME.key` (0600, never over an existing file) and `NAME.pub` in `directory`.
    public static func generateKeyPair(name: String, directory: String) throws -> (key: String, pub: String) {
        guard !name.isEmpty, name.utf8.count <= maxNameBytes,
            name.unicodeScalars.allSatisfy({
                $0.isASCII
                    && ($0.properties.isAlphabetic || ("0"..."9").contains($0)
                        || $0 == "-" || $0 == "_" || $0 == ".")
            }), !name.hasPrefix(".")
        else {
            throw Failure(
                "key name '\(PluginHost.escaped(name))': use 1 to \(maxNameBytes) letters, digits, '-', '_' or '.'")
        }
        // The key's directory is made owner-only when keygen creates it; an existing one is used as it is.
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw Failure("\(directory): cannot create the key directory: \(String(cString: strerror(errno)))")
        }
        let key = try HostCrypto.generateKey()
        let keyPath = directory + "/" + name + ".key"
        let pubPath = directory + "/" + name + ".pub"
        try writeNew(keyPath, "\(privatePrefix) \(PrivateCopies.hex(key.privateKey)) \(name)\n", mode: 0o600)
        try writeNew(pubPath, "\(publicPrefix) \(PrivateCopies.hex(key.publicKey)) \(name)\n", mode: 0o644)
        return (keyPath, pubPath)
    }

    /// Reads a private key file; refuses one that others may read.
    public static func readPrivateKey(_ path: String) throws -> (key: SigningKey, name: String) {
        let (text, st) = try readSmall(path)
        guard st.st_mode & 0o077 == 0 else {
            throw Failure("\(path): readable by others (mode 0\(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
        guard parts.count == 3, parts[0] == privatePrefix, let raw = unhex(parts[1]), raw.count == 32,
            let (_, publicKey) = try HostCrypto.sign([], privateKey: raw)
        else {
            throw Failure("\(path): not an Eddy private key (expected '\(privatePrefix) HEX NAME')")
        }
        return (SigningKey(privateKey: raw, publicKey: publicKey), parts[2])
    }

    /// Whether a public key is unusable: a point of small order (with such a key, anyone can make a
    /// signature that verifies) or a y coordinate not reduced modulo p. Compared with the sign bit
    /// cleared, as libsodium's list of small-order encodings is.
    static func isWeak(_ key: [UInt8]) -> Bool {
        guard key.count == 32 else { return true }
        var y = key
        y[31] &= 0x7F
        let zero = [UInt8](repeating: 0, count: 32)
        var one = zero
        one[0] = 1
        var minusOne = [UInt8](repeating: 0xFF, count: 32)
        minusOne[0] = 0xEC
        minusOne[31] = 0x7F
        let order8a: [UInt8] = [
            0x26, 0xE8, 0x95, 0x8F, 0xC2, 0xB2, 0x27, 0xB0, 0x45, 0xC3, 0xF4, 0x89, 0xF2, 0xEF, 0x98, 0xF0,
            0xD5, 0xDF, 0xAC, 0x05, 0xD3, 0xC6, 0x33, 0x39, 0xB1, 0x38, 0x02, 0x88, 0x6D, 0x53, 0xFC, 0x05,
        ]
        let order8b: [UInt8] = [
            0xC7, 0x17, 0x6A, 0x70, 0x3D, 0x4D, 0xD8, 0x4F, 0xBA, 0x3C, 0x0B, 0x76, 0x0D, 0x10, 0x67, 0x0F,
            0x2A, 0x20, 0x53, 0xFA, 0x2C, 0x39, 0xCC, 0xC6, 0x4E, 0xC7, 0xFD, 0x77, 0x92, 0xAC, 0x03, 0x7A,
        ]
        // y ≥ p = 2^255 − 19 (also p and p + 1, which spell 0 and 1 again).
        let unreduced = y[31] == 0x7F && y[1..<31].allSatisfy { $0 == 0xFF } && y[0] >= 0xED
        return unreduced || [zero, one, minusOne, order8a, order8b].contains(y)
    }

    /// Reads every `*.pub` in `directory`. The directory and the key files must be changeable only
    /// by this user or root, and key files must be regular files (not links): whoever can add a key
    /// there decides what code `--require-signed` runs.
    public static func readTrustedKeys(_ directory: String) throws -> [TrustedKey] {
        var st = stat()
        guard lstat(directory, &st) == 0 else { throw Failure("--trusted-keys \(directory): \(errnoText())") }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw Failure("--trusted-keys \(directory): not a directory (a symbolic link is not followed)")
        }
        if let problem = PluginFile.trustProblem(st, what: "--trusted-keys directory \(PluginHost.escaped(directory))")
        {
            throw Failure("\(problem): anyone who can change it decides which plugins are trusted")
        }
        guard let dir = opendir(directory) else {
            throw Failure("--trusted-keys \(directory): \(errnoText())")
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".pub") && !name.hasPrefix(".") { names.append(name) }
        }
        closedir(dir)
        return try names.sorted().map { file in
            let path = directory + "/" + file
            let (text, keyStat) = try readSmall(path, followLinks: false)
            if let problem = PluginFile.trustProblem(keyStat, what: "key file \(PluginHost.escaped(path))") {
                throw Failure("--trusted-keys: \(problem): anyone who can change it decides which plugins are trusted")
            }
            let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
            // Any 32 bytes decode as a compressed point here; the weak ones are refused below, and a
            // key that is no point at all verifies nothing.
            guard parts.count == 3, parts[0] == publicPrefix, let raw = unhex(parts[1]), raw.count == 32 else {
                throw Failure("--trusted-keys: \(path) is not an Eddy public key (expected '\(publicPrefix) HEX NAME')")
            }
            guard !isWeak(raw) else {
                throw Failure(
                    "--trusted-keys: \(path) is a weak key (a point of small order: it would verify "
                        + "signatures anyone can make); refused")
            }
            return TrustedKey(name: parts[2], publicKey: raw)
        }
    }

    static func readSmall(_ path: String, followLinks: Bool = true) throws -> (String, stat) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followLinks ? 0 : O_NOFOLLOW))
        guard fd >= 0 else {
            throw Failure(
                errno == ELOOP
                    ? "\(path): a symbolic link (key files must be regular files)" : "\(path): \(errnoText())")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= 4096 else {
            throw Failure("\(path): not a small regular file")
        }
        guard let bytes = PluginFileIO.read(fd, count: Int(st.st_size), at: 0) else {
            throw Failure("\(path): \(errnoText())")
        }
        return (String(decoding: bytes, as: UTF8.self), st)
    }

    static func writeNew(_ path: String, _ text: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure("\(path): \(errnoText())") }
        defer { close(fd) }
        var bytes = Array(text.utf8)
        guard bytes.withUnsafeMutableBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count, fsync(fd) == 0
        else {
            throw Failure("\(path): \(errnoText())")
        }
    }

    static func unhex(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = value(chars[i]), let lo = value(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// Whole-file reads and atomic rewrites of plugin files, for `eddy sign` and `eddy verify`.
public enum PluginFileIO {
    /// Exactly `count` bytes at `offset`, read into a buffer that is not zeroed first (a loader reads every
    /// plugin file whole on every start); nil on an error or a short file (retrying EINTR).
    public static func read(_ fd: Int32, count: Int, at offset: Int) -> [UInt8]? {
        guard count >= 0, offset >= 0 else { return nil }
        var ok = true
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count, let base = buffer.baseAddress {
                let n = pread(fd, base + done, count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    ok = false
                    break
                }
                done += n
            }
            // Bytes past a short read are never exposed: the whole array is dropped below.
            initialized = ok ? count : 0
        }
        return ok ? bytes : nil
    }

    /// Reads exactly `buffer.count` bytes at `offset`; false on an error or a short file
    /// (retrying EINTR).
    public static func readFully(_ fd: Int32, into buffer: inout [UInt8], at offset: Int) -> Bool {
        var done = 0
        let total = buffer.count
        while done < total {
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pread(fd, base + done, total - done, off_t(offset + done))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    /// Writes all of `bytes` to `fd` (retrying short writes and EINTR); false on an error.
    public static func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeFully(fd, $0) }
    }

    /// Writes all of `raw` to `fd` (retrying short writes and EINTR); false on an error.
    public static func writeFully(_ fd: Int32, _ raw: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < raw.count, let base = raw.baseAddress {
            let n = write(fd, base + done, raw.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    /// The file's bytes (a regular file within the default plugin size cap).
    public static func read(_ path: String) throws(PluginSignature.Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw PluginSignature.Failure("\(PluginHost.escaped(path)): \(errnoText())") }
        defer { close(fd) }
        do {
            return try PluginFile.read(descriptor: fd, policy: PluginLoadPolicy())
        } catch {
            throw PluginSignature.Failure("\(PluginHost.escaped(path)): \(error.reason)")
        }
    }

    /// Replaces the file's contents through a temporary file in the same directory and a rename, so
    /// that a watching host never sees half a file; the mode is kept.
    public static func replaceContents(_ path: String, with bytes: [UInt8]) throws(PluginSignature.Failure) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw PluginSignature.Failure("\(PluginHost.escaped(path)): \(errnoText())") }
        let directory = PluginHost.directoryName(path)
        let tmp = directory + "/.eddy-sign-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 0o777)
        guard fd >= 0 else { throw PluginSignature.Failure("\(PluginHost.escaped(tmp)): \(errnoText())") }
        let ok = PluginFileIO.writeFully(fd, bytes) && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            let why = errnoText()
            unlink(tmp)
            throw PluginSignature.Failure("\(PluginHost.escaped(path)): \(why)")
        }
    }
}
