import Crypto

// libEddyCrypto.so: SHA-256 and Ed25519 from swift-crypto behind a C interface, opened by the host
// (EddyHost's `HostCrypto`) the first time it hashes or checks a signature. swift-crypto needs
// FoundationEssentials, and with it Swift's concurrency and string-processing libraries: linked into
// `eddy`, they cost every process start about 2 ms of a 6 ms `eddy eval` of a 10-row file, though
// only a process that loads a plugin or signs one needs them. Every function here takes and returns
// plain bytes; no Swift type crosses the boundary. Keep the version below equal to
// `HostCrypto.interfaceVersion` when a function changes.

/// The version of this interface.
@_cdecl("eddy_crypto_interface_version")
public func eddyCryptoInterfaceVersion() -> Int32 { 1 }

/// The SHA-256 of `count` bytes at `bytes`, into the 32 bytes at `out`.
@_cdecl("eddy_crypto_sha256")
public func eddyCryptoSHA256(_ bytes: UnsafeRawPointer?, _ count: Int, _ out: UnsafeMutablePointer<UInt8>) {
    var hasher = SHA256()
    if let bytes, count > 0 { hasher.update(bufferPointer: UnsafeRawBufferPointer(start: bytes, count: count)) }
    store(hasher.finalize(), out)
}

/// A new SHA-256 hasher (freed by ``eddyCryptoSHA256Finish(_:_:)``).
@_cdecl("eddy_crypto_sha256_start")
public func eddyCryptoSHA256Start() -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer(Unmanaged.passRetained(Hasher256()).toOpaque())
}

/// Adds `count` bytes at `bytes` to the hasher.
@_cdecl("eddy_crypto_sha256_update")
public func eddyCryptoSHA256Update(_ hasher: UnsafeMutableRawPointer, _ bytes: UnsafeRawPointer?, _ count: Int) {
    guard let bytes, count > 0 else { return }
    Unmanaged<Hasher256>.fromOpaque(hasher).takeUnretainedValue().state.update(
        bufferPointer: UnsafeRawBufferPointer(start: bytes, count: count))
}

/// Writes the hash into the 32 bytes at `out` and frees the hasher.
@_cdecl("eddy_crypto_sha256_finish")
public func eddyCryptoSHA256Finish(_ hasher: UnsafeMutableRawPointer, _ out: UnsafeMutablePointer<UInt8>) {
    let box = Unmanaged<Hasher256>.fromOpaque(hasher).takeRetainedValue()
    store(box.state.finalize(), out)
}

/// Whether the 64-byte `signature` is `publicKey`'s (32 bytes) over `count` bytes at `message`: 1 yes,
/// 0 no, -1 the key is not an Ed25519 public key.
@_cdecl("eddy_crypto_ed25519_verify")
public func eddyCryptoEd25519Verify(
    _ publicKey: UnsafePointer<UInt8>, _ signature: UnsafePointer<UInt8>, _ message: UnsafeRawPointer?, _ count: Int
) -> Int32 {
    guard
        let key = try? Curve25519.Signing.PublicKey(rawRepresentation: UnsafeBufferPointer(start: publicKey, count: 32))
    else { return -1 }
    let text =
        message.map { UnsafeRawBufferPointer(start: $0, count: count) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
    return key.isValidSignature(UnsafeBufferPointer(start: signature, count: 64), for: text) ? 1 : 0
}

/// Signs `count` bytes at `message` with the 32-byte private key into the 64 bytes at `signature`, and
/// writes the key's public half into the 32 bytes at `publicKey`: 0, or -1 when the key is not one.
@_cdecl("eddy_crypto_ed25519_sign")
public func eddyCryptoEd25519Sign(
    _ privateKey: UnsafePointer<UInt8>, _ message: UnsafeRawPointer?, _ count: Int,
    _ signature: UnsafeMutablePointer<UInt8>, _ publicKey: UnsafeMutablePointer<UInt8>
) -> Int32 {
    guard
        let key = try? Curve25519.Signing.PrivateKey(
            rawRepresentation: UnsafeBufferPointer(start: privateKey, count: 32))
    else { return -1 }
    let text =
        message.map { UnsafeRawBufferPointer(start: $0, count: count) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
    guard let signed = try? key.signature(for: text), signed.count == 64 else { return -1 }
    store(signed, signature)
    store(key.publicKey.rawRepresentation, publicKey)
    return 0
}

/// A new Ed25519 key pair: 32 private bytes at `privateKey`, 32 public at `publicKey`.
@_cdecl("eddy_crypto_ed25519_generate")
public func eddyCryptoEd25519Generate(
    _ privateKey: UnsafeMutablePointer<UInt8>, _ publicKey: UnsafeMutablePointer<UInt8>
) {
    let key = Curve25519.Signing.PrivateKey()
    store(key.rawRepresentation, privateKey)
    store(key.publicKey.rawRepresentation, publicKey)
}

/// A hasher kept across calls.
final class Hasher256 {
    var state = SHA256()
}

/// Copies `bytes` to `out` (which holds at least as many).
func store<B: Sequence>(_ bytes: B, _ out: UnsafeMutablePointer<UInt8>) where B.Element == UInt8 {
    var i = 0
    for b in bytes {
        out[i] = b
        i += 1
    }
}
