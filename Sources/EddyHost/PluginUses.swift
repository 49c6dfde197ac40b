@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// What a plugin build registered, by name: the (parent, child) keys of its kernels and rules, the
/// purposes its compressor hooks are for, and the encodings it stores. A one-shot `eddy eval` keeps it
/// per content hash (`uses.tsv` beside the private copies) once it has loaded the build, and next time
/// maps only the builds whose registrations can meet the query (see EddyEval's `PluginDemand`).
///
/// A record only ever makes a query skip a build whose kernels could not run in it: kernels agree with
/// decode-then-compute, so a build wrongly skipped costs speed, never an answer. The encodings a file
/// stores are never decided from a record (a file with a plugin's encoding loads every build).
@_spi(Host) public struct PluginUses: Sendable, Equatable {
    /// `parent|child` encoding names, sorted, without repeats.
    public var keys: [String]
    /// The union of its compressor hooks' purposes (``CompressorHook/Purpose`` bits).
    public var hookPurposes: UInt32
    /// The encodings it registered storage for, sorted.
    public var storedEncodings: [String]

    public init(keys: [String], hookPurposes: UInt32, storedEncodings: [String]) {
        self.keys = keys
        self.hookPurposes = hookPurposes
        self.storedEncodings = storedEncodings
    }

    /// The registrations of the build with content hash `hash` in `snapshot`; nil when one of its names
    /// holds a separator of the record (`|`, `,`, a tab or a control character): such a build is not
    /// recorded, and so always loads.
    public init?(hash: String, snapshot: KernelSnapshot) {
        var keys = Set<String>()
        for e in snapshot.entries {
            if e.kernels.contains(where: { $0.owner.contentHash == hash })
                || e.rules.contains(where: { $0.owner.contentHash == hash })
            {
                keys.insert(e.parent.name + "|" + e.child.name)
            }
        }
        let hooks = snapshot.compressorHooks.filter { $0.owner.contentHash == hash }
        let stored = snapshot.pluginEncodingStorages.filter { $0.owner.contentHash == hash }.map(\.encoding.name)
        let names = keys.flatMap { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        guard (names + stored).allSatisfy(Self.isRecordable) else { return nil }
        self.init(
            keys: keys.sorted(), hookPurposes: hooks.reduce(0) { $0 | $1.purpose.rawValue },
            storedEncodings: Set(stored).sorted())
    }

    static func isRecordable(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "|") && $0 != UInt8(ascii: ",") }
    }

    static let file = "uses.tsv"
    /// Past this size the file is started afresh (a line is a few hundred bytes).
    static let limit = 1 << 19

    /// The record's line for `hash`: hash, keys, hook purposes, stored encodings, tab-separated.
    func line(hash: String) -> String {
        [hash, keys.joined(separator: ","), String(hookPurposes), storedEncodings.joined(separator: ",")]
            .joined(separator: "\t")
    }

    /// The record in `line` for `hash`, or nil when the line is not one (any field malformed).
    static func parse(_ line: String, hash: String) -> PluginUses? {
        let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 4, f[0] == hash, let purposes = UInt32(f[2]), purposes <= 3 else { return nil }
        func list(_ s: String) -> [String]? {
            guard !s.isEmpty else { return [] }
            let items = s.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return items.allSatisfy({ !$0.isEmpty }) ? items : nil
        }
        guard let keys = list(f[1]), let stored = list(f[3]),
            keys.allSatisfy({ k in
                let parts = k.split(separator: "|", omittingEmptySubsequences: false)
                return parts.count == 2 && parts.allSatisfy { isRecordable(String($0)) }
            }), stored.allSatisfy(isRecordable)
        else { return nil }
        return PluginUses(keys: keys, hookPurposes: purposes, storedEncodings: stored)
    }
}

/// Appends ``PluginUses`` records through a descriptor opened before this process confines itself
/// (confinement takes away opening files for writing, not writing to one already open).
@_spi(Host) public final class PluginUsesRecorder: Sendable {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Appends the record of the build with content hash `hash`, as `snapshot` holds its registrations.
    public func record(hash: String, snapshot: KernelSnapshot) {
        guard hash.utf8.count == 64, let uses = PluginUses(hash: hash, snapshot: snapshot) else { return }
        let bytes = Array((uses.line(hash: hash) + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}

extension PluginHost {
    /// What the build with content hash `hash` registered when a host last loaded it, or nil.
    @_spi(Host) public func recordedUses(hash: String) -> PluginUses? {
        for line in copies.recordLines(PluginUses.file, startingWith: hash + "\t", limit: PluginUses.limit).reversed() {
            if let uses = PluginUses.parse(line, hash: hash) { return uses }
        }
        return nil
    }

    /// A recorder for builds this host is about to load without a record; nil when the record file
    /// cannot be opened (nothing is recorded then, and those builds keep loading every time).
    @_spi(Host) public func usesRecorder() -> PluginUsesRecorder? {
        copies.openRecordForAppending(PluginUses.file, limit: PluginUses.limit).map(PluginUsesRecorder.init(fd:))
    }
}
