@_spi(Host) public import Eddy
@_spi(Host) public import EddyIO

extension PluginHost {
    /// The quarantine record of the build that wrote `encoding`, when that build is quarantined (so its
    /// plugin is not loaded although its file is in the plugin directory): matched by the content hash
    /// the file names, else by plugin name and version. Nil for a built-in encoding or a build not in
    /// quarantine.
    public func quarantine(of encoding: StoredEncoding) -> Quarantine? {
        guard !encoding.isBuiltin else { return nil }
        if !encoding.pluginHash.isEmpty {
            return quarantine(of: encoding.pluginHash)
        }
        return quarantined.last { $0.plugin == "\(encoding.pluginName)@\(encoding.pluginVersion)" }
    }

    /// Why `encoding` cannot be read, when its plugin's build is quarantined: "needs encoding E,
    /// written by plugin P V, whose build (sha256 …) is quarantined since T: CAUSE; drop a fixed build
    /// in the plugin directory to replace it". Nil when it is not.
    public func quarantineNote(for encoding: StoredEncoding) -> String? {
        guard let q = quarantine(of: encoding) else { return nil }
        return "needs encoding \(Self.escaped(encoding.name)), written by plugin "
            + "\(Self.escaped(encoding.pluginName)) \(Self.escaped(encoding.pluginVersion)), whose build "
            + "(sha256 \(q.hash.prefix(12))…) is in the plugin directory but quarantined since "
            + "\(Self.timestamp(q.time)): \(Self.escaped(q.cause)); drop a fixed build there to replace it"
    }

    /// For an `.eddy` file that cannot be opened because an encoding's plugin is not loaded: the
    /// message naming the file and saying that plugin's build is quarantined, and why. Nil when no
    /// encoding it needs is missing for that reason (the caller's own error stands).
    /// - Parameter descriptor: the file, already open (`eddy serve` never opens a checked path again):
    ///   its footer is read with `pread`, at most 4 MiB of it, and nothing is mapped.
    public func quarantineExplanation(forEddyFile path: String, descriptor: Int32? = nil) -> String? {
        guard let file = openedForExplanation(path, descriptor) else { return nil }
        for e in file.missing {
            if let note = quarantineNote(for: e) { return "\(Self.escaped(path)): \(note)" }
        }
        return nil
    }

    /// For an `.eddy` file that cannot be opened because an encoding's plugin is not loaded while a
    /// plugin file in the directory was refused (`rows`: its probe crashed, say): the message naming
    /// the file and the refusal — of the file that names that plugin, else of every refused file (a
    /// probe that crashed before the manifest names none) — instead of "add that plugin to the plugin
    /// directory". Nil when no file was refused or no plugin encoding is missing.
    public func refusalExplanation(forEddyFile path: String, descriptor: Int32? = nil, rows: [PluginReportRow])
        -> String?
    {
        let refused = rows.filter { $0.status == .rejected }
        guard !refused.isEmpty, let file = openedForExplanation(path, descriptor),
            let missing = file.missing.first(where: { !$0.isBuiltin })
        else { return nil }
        let named = refused.filter { $0.plugin == missing.pluginName }
        let shown = (named.isEmpty ? refused : named).prefix(3).map { "\(Self.escaped($0.file)): \($0.reason)" }
        return "\(Self.escaped(path)): needs encoding \(Self.escaped(missing.name)), written by plugin "
            + "\(Self.escaped(missing.pluginName)) \(Self.escaped(missing.pluginVersion)), which is not loaded: "
            + (named.isEmpty ? "a plugin file in the directory that may hold it was" : "its file was")
            + " refused (" + shown.joined(separator: "; ") + ")"
    }

    /// The file opened only for its footer and the encodings it needs (nothing mapped when `descriptor`
    /// is given: read with `pread`, at most 4 MiB of footer).
    private func openedForExplanation(_ path: String, _ descriptor: Int32?) -> EddyFile? {
        let snapshot = session.kernels.snapshot
        if let descriptor {
            return try? EddyFile(
                descriptor: descriptor, path: path, snapshot: snapshot, requireEncodings: false,
                verifyChecksums: false, maxFooterBytes: 4 << 20, mapped: false)
        }
        return try? EddyFile(path: path, snapshot: snapshot, requireEncodings: false, verifyChecksums: false)
    }
}
