extension StringProtocol {
    /// Whether `other` occurs in this text, byte for byte in UTF-8. `String.contains(_:)` taking a
    /// string is the string-processing library's, which the SDK and the modules on `eddy eval`'s path
    /// do not import (see the packages' `withoutImplicitRuntimeImports` / `leanSettings`).
    @_spi(Host) public func holds(_ other: some StringProtocol) -> Bool {
        let needle = Array(other.utf8)
        guard !needle.isEmpty else { return true }
        let hay = Array(utf8)
        guard hay.count >= needle.count else { return false }
        return (0...(hay.count - needle.count)).contains { hay[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}
