/// A plug-in point of the compressor: proposes an encoding for columns of some types.
public struct CompressorHook: Sendable {
    /// The hook's name, non-empty and unique within its plugin; errors and crash reports name it.
    public let name: String
    /// The plugin the hook belongs to; blamed when the hook fails or breaks its contract.
    public let owner: KernelOwner
    /// What the hook's encoding is for: the compressor asks the hook only when it compresses for one of
    /// these purposes (``Purpose/storage`` for a hook made with the initialiser that does not say).
    public let purpose: Purpose
    /// Whether the hook should be tried on a column of the given dtype.
    public let applies: @Sendable (DType) -> Bool
    /// Returns an encoded equivalent of the canonical column (or nil); the second argument compresses
    /// a child array with the full compressor.
    public let compress: @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    /// Marked on the thread while a plugin's hook runs, for crash reports.
    let callSite: PluginCallSite?

    /// A hook of `owner` for ``Purpose/storage``: asked when a file is written (`eddy convert`) or a batch
    /// is compressed as a file would store it, never for a column a query reads once. Plugins register
    /// hooks with ``PluginRegistrar/registerCompressor(_:applies:compress:)``, which sets the owner. A
    /// result of another length or dtype than the column is a ``EddyError/Code/kernelContract`` error.
    public init(
        name: String, owner: KernelOwner, applies: @escaping @Sendable (DType) -> Bool,
        compress:
            @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    ) {
        self.init(name: name, owner: owner, purpose: .storage, applies: applies, compress: compress)
    }

    /// A hook of `owner` asked only when the compressor compresses for `purpose` (see ``Purpose``).
    /// Plugins register hooks with ``PluginRegistrar/registerCompressor(_:purpose:applies:compress:)``,
    /// which sets the owner. A result of another length or dtype than the column is a
    /// ``EddyError/Code/kernelContract`` error.
    public init(
        name: String, owner: KernelOwner, purpose: Purpose, applies: @escaping @Sendable (DType) -> Bool,
        compress:
            @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    ) {
        self.name = name
        self.owner = owner
        self.purpose = purpose
        self.applies = applies
        self.compress = compress
        self.callSite = PluginCallSite.of("compressor hook", name, owner)
    }

    /// The same hook (name, owner, purpose, the types it applies to) with `compress` in place of its
    /// own: for a host that wraps a plugin's hook to watch or filter what it proposes.
    public func replacing(
        compress:
            @escaping @Sendable (any ArrayNode, (any ArrayNode) throws -> any ArrayNode) throws -> (any ArrayNode)?
    ) -> CompressorHook {
        CompressorHook(name: name, owner: owner, purpose: purpose, applies: applies, compress: compress)
    }
}

extension CompressorHook {
    /// What a compressor hook's encoding is for. The compressor asks a hook only for its purpose, so a
    /// hook that costs more than one pass of a query saves is never run on a column read once.
    ///
    /// - ``storage``: data encoded once and read many times (`eddy convert`, `--compression storage`).
    ///   The encoding may take several passes to build; it pays back over the file's later reads.
    /// - ``query``: a column parsed from CSV or JSON Lines and read by one query. Declare it only when
    ///   the plugin's kernels on the encoding make that one query faster *including* the hook's own
    ///   pass over the column (say, a comparison that runs on a few distinct values instead of every
    ///   row). With `--compression auto` the hook is asked only for columns the query filters on.
    public struct Purpose: OptionSet, Sendable, Hashable, CustomStringConvertible {
        /// The purposes as bits: 1 query, 2 storage.
        public let rawValue: UInt32

        /// The purposes whose bits are set in `rawValue`.
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// A column read once by the query at hand, encoded just after it was parsed.
        public static let query = Purpose(rawValue: 1)
        /// Data encoded once to be stored and read many times.
        public static let storage = Purpose(rawValue: 2)
        /// Both: the hook pays within one pass and is worth storing too.
        public static let queryAndStorage: Purpose = [.query, .storage]

        /// `query`, `storage`, `query+storage` or `none`.
        public var description: String {
            let names = [(Purpose.query, "query"), (.storage, "storage")].filter { contains($0.0) }.map(\.1)
            return names.isEmpty ? "none" : names.joined(separator: "+")
        }
    }
}
