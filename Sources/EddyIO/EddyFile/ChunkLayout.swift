@_spi(Host) public import Eddy

/// Statistics of one column in one chunk: what zone maps test a filter against.
public struct ChunkColumnStats: Sendable {
    public var nullCount: Int
    /// Smallest and largest non-null value, for ordered types (nil when all null or not kept).
    public var min: Scalar?
    public var max: Scalar?
    /// Bytes of the column's plain (canonical) form and of its stored tree.
    public var plainBytes: Int
    public var storedBytes: Int

    public init(nullCount: Int, min: Scalar?, max: Scalar?, plainBytes: Int, storedBytes: Int) {
        self.nullCount = nullCount
        self.min = min
        self.max = max
        self.plainBytes = plainBytes
        self.storedBytes = storedBytes
    }
}

/// One node of a stored tree, as the footer describes it.
public struct StoredNodeLayout: Sendable {
    public var encoding: Int  // index into EddyFooter.encodings
    public var dtype: DType
    public var count: Int
    public var metadata: [UInt8]
    /// Buffers as (offset, length) relative to the segment.
    public var buffers: [(offset: Int, length: Int)]
    /// Indices of child nodes, each smaller than this node's index.
    public var children: [Int]
}

/// One column of one chunk: where its segment is, its checksum, its tree and its statistics.
public struct ColumnChunkLayout: Sendable {
    public var segmentOffset: Int
    public var segmentLength: Int
    public var checksum: UInt32
    public var nodes: [StoredNodeLayout]  // post-order: the last is the root
    public var stats: ChunkColumnStats
}

public struct ChunkLayout: Sendable {
    public var rows: Int
    public var columns: [ColumnChunkLayout]
}

/// An encoding a file uses, and who provided it when the file was written.
public struct StoredEncoding: Sendable, Equatable {
    public var name: String
    /// Empty for the engine's own encodings.
    public var pluginName: String
    public var pluginVersion: String
    public var pluginHash: String
    public var metadataVersion: UInt32

    public var isBuiltin: Bool { pluginName.isEmpty }
}

extension ColumnChunkLayout {
    /// The stored tree as indented text (one line per node: encoding, dtype, length, buffer bytes).
    public func treeText(encodings: [StoredEncoding]) -> String {
        var lines: [String] = []
        func render(_ i: Int, _ indent: String) {
            guard i >= 0, i < nodes.count else { return }
            let n = nodes[i]
            let name = n.encoding < encodings.count ? encodings[n.encoding].name : "?"
            let bytes = n.buffers.reduce(0) { $0 + $1.length }
            lines.append("\(indent)\(name)(\(n.dtype), len=\(n.count))" + (bytes > 0 ? " \(bytes) bytes" : ""))
            for c in n.children { render(c, indent + "  ") }
        }
        render(nodes.count - 1, "")
        return lines.joined(separator: "\n")
    }
}
