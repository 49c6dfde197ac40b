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
        let snapshot = session.kernels.snapshot
        let opened: EddyFile?
        if let descriptor {
            opened = try? EddyFile(
                descriptor: descriptor, path: path, snapshot: snapshot, requireEncodings: false,
                verifyChecksums: false, maxFooterBytes: 4 << 20, mapped: false)
        } else {
            opened = try? EddyFile(path: path, snapshot: snapshot, requireEncodings: false, verifyChecksums: false)
        }
        guard let file = opened else { return nil }
        for e in file.missing {
            if let note = quarantineNote(for: e) { return "\(Self.escaped(path)): \(note)" }
        }
        return nil
    }
}
