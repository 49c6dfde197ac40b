import Eddy

/// The delta example "rebuilt" as 2.0.0, for the tests of a plugin replaced by a new build: the same
/// encoding and kernels (DeltaArray.swift and DeltaPlugin.swift are links to the example's sources),
/// and a changed storage layout — a flags byte where 1.0.0 stores a bool — that reads only its own
/// version, so a file written by 1.0.0 names both versions when 2.0.0 is asked to read it.
public enum DeltaV2Plugin: EddyPlugin {
    public static let version = "2.0.0"
    public static let name = DeltaPlugin.name

    public static func register(into registrar: PluginRegistrar) throws {
        registrar.encoding(DeltaArray.self)
        registerStorage(into: registrar)
        DeltaPlugin.registerKernels(into: registrar)
    }

    /// Version 2 metadata is `base` (i64) then a flags byte (bit 0: non-decreasing).
    static func registerStorage(into registrar: PluginRegistrar) {
        registrar.storage(
            for: DeltaArray.self, metadataVersion: 2,
            write: { delta in
                var m = MetadataWriter()
                m.i64(delta.base)
                m.u8(delta.nonDecreasing ? 1 : 0)
                return StoredParts(metadata: m.bytes, children: [delta.deltas])
            },
            read: { stored in
                try stored.expect(buffers: 0, children: 1)
                var m = stored.metadataReader
                let base = try m.i64()
                let nonDecreasing = (try m.u8() & 1) == 1
                try m.finish()
                return try DeltaPlugin.array(stored, base: base, nonDecreasing: nonDecreasing)
            })
    }
}
