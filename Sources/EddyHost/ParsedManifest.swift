@_spi(Host) import Eddy

struct HandshakeError: Error {
    var lines: [String]
}

/// A manifest as read by the host, checked field by field.
struct ParsedManifest {
    var name = ""
    var version = ""
    var abi = 0
    var compiler = ""

    /// What a plugin name may be, for messages.
    static let nameRule = "expected letters, digits, '-', '_' or '.' (at most 128, not only dots)"

    /// A manifest's name: also a file name component, so never empty, '.', '..', nor holding a '/'.
    static func isValidName(_ name: String) -> Bool {
        !(name.isEmpty || name.count > 128 || name.allSatisfy({ $0 == "." })
            || !name.unicodeScalars.allSatisfy({
                $0.isASCII
                    && ($0.properties.isAlphabetic || ("0"..."9").contains($0)
                        || $0 == "-" || $0 == "_" || $0 == ".")
            }))
    }

    init(_ text: String) throws {
        let lines = text.split(separator: "\n").map(String.init)
        guard lines.first == PluginABI.magic else {
            let sent = String((lines.first ?? "").prefix(80))
            throw HandshakeError(lines: ["magic: host expects \(PluginABI.magic), plugin sent '\(sent)'"])
        }
        var fields: [String: String] = [:]
        var problems: [String] = []
        for (n, line) in lines.dropFirst().enumerated() {
            // Every field is `key=value` on its own line: a line without '=' is the rest of a name or
            // version that held a newline (it would load as something else than it says it is).
            guard let eq = line.firstIndex(of: "=") else {
                problems.append(
                    "manifest line \(n + 2) is not key=value: '\(PluginHost.escaped(String(line.prefix(40))))' "
                        + "(a newline in the plugin's name or version?)")
                continue
            }
            let key = String(line[..<eq])
            let value = String(line[line.index(after: eq)...])
            if fields[key] != nil {
                problems.append("manifest field '\(key.prefix(40))' given twice")
            }
            fields[key] = value
        }
        abi = Int(fields["abi"] ?? "") ?? -1
        if !PluginABI.supportedPluginABIs.contains(abi) {
            problems.append(
                "plugin built against Eddy SDK ABI \(fields["abi"] ?? "none"), this host loads plugin ABI "
                    + "\(PluginHost.abiRange): \(PluginHost.rebuildAdvice)")
        }
        name = fields["name"] ?? ""
        version = fields["version"] ?? ""
        compiler = fields["compiler"] ?? ""
        let hostMajor = PluginABI.hostCompilerVersion.split(separator: ".").first.map(String.init) ?? ""
        let parts = compiler.split(separator: ".", omittingEmptySubsequences: false)
        let wellFormed =
            parts.count == 2
            && parts.allSatisfy { !$0.isEmpty && $0.count <= 4 && $0.allSatisfy { ("0"..."9").contains($0) } }
        let pluginMajor = wellFormed ? String(parts[0]) : ""
        if pluginMajor != hostMajor {
            problems.append(
                "plugin built with Swift \(compiler.isEmpty ? "(unknown)" : String(compiler.prefix(40))), this host with Swift "
                    + "\(PluginABI.hostCompilerVersion) (Swift has no stable ABI across major versions on Linux): rebuild it "
                    + "with a Swift \(hostMajor).x compiler")
        }
        if !Self.isValidName(name) {
            problems.append("plugin name: \(Self.nameRule), found '\(name.prefix(140))'")
        }
        // It stands in `name@version` lists (Eddy-Plugins, fingerprints, logs): no separator of theirs
        // (`,` `@` `#` spaces), nothing that prints as nothing.
        let wellFormedVersion =
            !version.isEmpty && version.utf8.count <= 64
            && version.unicodeScalars.allSatisfy {
                $0.isASCII
                    && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-+_~".unicodeScalars.contains($0))
            }
        if !wellFormedVersion {
            problems.append(
                "plugin version: expected 1 to 64 letters, digits, '.', '-', '+', '_' or '~' (it is written in "
                    + "name@version lists), found '\(PluginHost.escaped(String(version.unicodeScalars.prefix(70))))'")
        }
        if !problems.isEmpty { throw HandshakeError(lines: problems) }
    }
}

extension PluginHost {
    /// Whether `name` is a name a manifest may give (checked as ``ParsedManifest`` checks it).
    @_spi(Host) public static func isValidPluginName(_ name: String) -> Bool { ParsedManifest.isValidName(name) }
    /// What a plugin name may be, for messages.
    @_spi(Host) public static var pluginNameRule: String { ParsedManifest.nameRule }
}
