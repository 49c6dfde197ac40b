/// Builds a FlatBuffer back to front (children before the tables that point at them), as Arrow's IPC
/// metadata needs: tables with vtables, strings, vectors of offsets and of 16-byte structs. Small
/// buffers only (a schema, a record batch header): bytes are prepended.
struct FlatBufferBuilder {
    /// The buffer's tail; an object's position is given as its distance from the end (`offEnd`).
    private(set) var bytes: [UInt8] = []
    private var fields: [(id: Int, offEnd: Int)] = []
    private var tableStart = 0

    private mutating func prepend(_ b: [UInt8]) { bytes.insert(contentsOf: b, at: 0) }

    /// Pads so that after prepending `size` more bytes, the front is aligned to `alignment`.
    private mutating func align(_ size: Int, _ alignment: Int) {
        let pad = (alignment - (bytes.count + size) % alignment) % alignment
        if pad > 0 { prepend([UInt8](repeating: 0, count: pad)) }
    }

    private static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        withUnsafeBytes(of: v.littleEndian) { Array($0) }
    }

    /// A uoffset to the object at `target`, placed at the front.
    private mutating func prependOffset(to target: Int) {
        align(4, 4)
        prepend(Self.le(UInt32(bytes.count + 4 - target)))
    }

    mutating func string(_ s: String) -> Int {
        let utf8 = Array(s.utf8)
        align(utf8.count + 1 + 4, 4)
        prepend(utf8 + [0])
        prepend(Self.le(UInt32(utf8.count)))
        return bytes.count
    }

    mutating func offsetVector(_ targets: [Int]) -> Int {
        align(4 * targets.count + 4, 4)
        for t in targets.reversed() { prependOffset(to: t) }
        prepend(Self.le(UInt32(targets.count)))
        return bytes.count
    }

    /// A vector of structs of two Int64s each (Arrow's FieldNode and Buffer).
    mutating func pairVector(_ pairs: [(Int64, Int64)]) -> Int {
        align(16 * pairs.count, 8)
        for (a, b) in pairs.reversed() { prepend(Self.le(a) + Self.le(b)) }
        align(4, 4)
        prepend(Self.le(UInt32(pairs.count)))
        return bytes.count
    }

    mutating func startTable() {
        fields = []
        tableStart = bytes.count
    }

    mutating func add<T: FixedWidthInteger>(_ id: Int, _ v: T) {
        align(MemoryLayout<T>.size, MemoryLayout<T>.size)
        prepend(Self.le(v))
        fields.append((id, bytes.count))
    }

    mutating func addOffset(_ id: Int, _ target: Int) {
        prependOffset(to: target)
        fields.append((id, bytes.count))
    }

    mutating func endTable() -> Int {
        align(4, 4)
        prepend([0, 0, 0, 0])  // the soffset to the vtable, patched below
        let table = bytes.count
        let count = (fields.map(\.id).max() ?? -1) + 1
        var slots = [UInt16](repeating: 0, count: count)
        for f in fields { slots[f.id] = UInt16(table - f.offEnd) }
        var vtable = Self.le(UInt16(4 + 2 * count)) + Self.le(UInt16(table - tableStart))
        for s in slots { vtable += Self.le(s) }
        prepend(vtable)
        // The table's first field: vtable position = table position - soffset.
        let soffset = Self.le(Int32(bytes.count - table))
        let at = bytes.count - table
        for k in 0..<4 { bytes[at + k] = soffset[k] }
        return table
    }

    /// The finished buffer: a root offset to `root`, padded to a multiple of 8 bytes.
    mutating func finish(_ root: Int) -> [UInt8] {
        align(4, 8)
        prependOffset(to: root)
        return bytes
    }
}
