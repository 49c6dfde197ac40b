import EddyIO

#if canImport(Glibc)
    import Glibc
#endif

/// Result text on its way to standard output, held back until it passes `limit` bytes, so that a query
/// that fails early prints no rows at all. A query that fails after some rows went out (a result larger
/// than the limit) ends its output with a line saying that it is incomplete: a reader of the CSV or
/// JSON sees it in the data itself, not only in the exit status and on standard error.
package final class HeldOutput {
    /// 16 MiB: every result up to that size is all-or-nothing.
    static let defaultLimit = 16 << 20

    let limit: Int
    private var held: [UInt8] = []
    /// Whether some of the result was written out already.
    private(set) var released = false

    package init(limit: Int = HeldOutput.defaultLimit) { self.limit = limit }

    package func write(_ text: String) {
        if released {
            Stdout.write(text)
            return
        }
        held.append(contentsOf: text.utf8)
        if held.count > limit { release() }
    }

    /// Bytes of a binary result (`--format arrow`), held like text.
    package func write(bytes: [UInt8]) {
        if released {
            Self.put(bytes)
            return
        }
        held.append(contentsOf: bytes)
        if held.count > limit { release() }
    }

    /// Writes what is held and everything after it straight through.
    private func release() {
        released = true
        Self.put(held)
        held = []
    }

    /// As they are: a binary result is not UTF-8.
    private static func put(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = fwrite($0.baseAddress, 1, $0.count, Stdout.stream) }
    }

    /// The query succeeded: all of it goes out.
    package func finish() {
        if !released { release() }
        Stdout.flush()
    }

    /// The query failed with `message`: what is held is dropped; if rows went out already, a last
    /// line says that they are only part of the result (it breaks a JSON document on purpose).
    package func abandon(_ message: String) {
        held = []
        if released {
            Stdout.write(
                "\neddy: error: output incomplete, the rows above are only part of the result: "
                    + shortForDisplay(message, limit: 400) + "\n")
        }
        Stdout.flush()
    }
}
