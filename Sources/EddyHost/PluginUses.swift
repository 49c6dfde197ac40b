@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

/// What a plugin build registered, by name: the (parent, child) keys of its kernels and rules, the
/// purposes its compressor hooks are for, and the encodings it stores. The probe reports it with its
/// verdict (the probe process registers the build; the host that asked never runs plugin code), the
/// verdict keeps it (`probed.tsv`), and a one-shot `eddy eval` maps only the builds whose
/// registrations can meet its query (see EddyEval's `PluginDemand`).
///
/// What a build reports of itself only ever decides whether that build is mapped: kernels agree with
/// decode-then-compute, so a build wrongly left out costs speed, never an answer. The encodings a file
/// stores are never decided from it (a file with a plugin's encoding maps every build).
public struct PluginUses: Sendable, Equatable {
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
    @_spi(Host) public init?(hash: String, snapshot: KernelSnapshot) {
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

    /// The registrations as one field of a probe's record and a verdict's line: keys, hook purposes and
    /// stored encodings, `;`-separated (lists `,`-separated).
    public var field: String {
        [keys.joined(separator: ","), String(hookPurposes), storedEncodings.joined(separator: ",")]
            .joined(separator: ";")
    }

    /// The registrations in `field`, or nil when it is not such a field (any part malformed).
    public init?(field: some StringProtocol) {
        let f = String(field).split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 3, let purposes = UInt32(f[1]), purposes <= 3 else { return nil }
        func list(_ s: String) -> [String]? {
            guard !s.isEmpty else { return [] }
            let items = s.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return items.allSatisfy({ !$0.isEmpty }) ? items : nil
        }
        guard let keys = list(f[0]), let stored = list(f[2]), keys.count <= 4096, stored.count <= 4096,
            keys.allSatisfy({ k in
                let parts = k.split(separator: "|", omittingEmptySubsequences: false)
                return parts.count == 2 && parts.allSatisfy { Self.isRecordable(String($0)) }
            }), stored.allSatisfy(Self.isRecordable)
        else { return nil }
        self.init(keys: keys, hookPurposes: purposes, storedEncodings: stored)
    }
}
