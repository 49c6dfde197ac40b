@_spi(Host) import Eddy

extension ArrayGenerator {
    /// What an edge column holds: every edge value of its type once, or only signed zeros — mostly one,
    /// the other in a row or two — so that a min or max is a tie between 0.0 and -0.0, which the engine
    /// breaks by row order.
    /// `loneLastLow` / `loneLastHigh`: integers in a narrow range with the column's minimum (maximum)
    /// alone in its last row — what a kernel that stops one row short of a batch answers wrongly, on an
    /// array a frame of reference packs narrow (every edge of the type would make it 64 bits wide, where
    /// a packed kernel declines). The low one has no nulls: a null slot's bits may read as the smallest
    /// value and hide the row skipped.
    enum EdgeShape: Sendable { case everyEdge, signedZeros, loneLastLow, loneLastHigh }

    /// The dtypes and shapes of the edge inputs, in the order the first inputs of a key take them: the
    /// floats first (NaN, the infinities and ±0.0 are where a `Swift.max`, a `<` or a sum in another
    /// order goes wrong), then the integers at their bounds, then text.
    static let edgeKinds: [(dtype: DType, shape: EdgeShape)] = [
        (.primitive(.float64, .nullable), .everyEdge), (.primitive(.float32, .nonNullable), .everyEdge),
        (.primitive(.int64, .nullable), .everyEdge), (.primitive(.float64, .nonNullable), .signedZeros),
        (.utf8(.nullable), .everyEdge), (.primitive(.uint64, .nonNullable), .everyEdge),
        (.primitive(.int32, .nullable), .everyEdge), (.primitive(.float64, .nullable), .signedZeros),
        (.primitive(.int64, .nonNullable), .loneLastLow), (.primitive(.int32, .nullable), .loneLastHigh),
    ]

    /// The dtype and shape edge input `index` of a key takes among `holds` (the dtypes its encodings
    /// hold), or nil when none of them has edges.
    static func edgeInput(_ index: Int, among holds: [DType]) -> (dtype: DType, shape: EdgeShape)? {
        let fit = edgeKinds.filter { e in holds.contains(e.dtype) }
        return fit.isEmpty ? nil : fit[index % fit.count]
    }

    /// An edge column of `shape` (see ``EdgeShape``).
    mutating func edgeColumn(_ dtype: DType, count: Int, shape: EdgeShape) throws -> (any ArrayNode)? {
        switch shape {
        case .everyEdge: return try edgeColumn(dtype, count: count)
        case .signedZeros: return try signedZerosColumn(dtype, count: count)
        case .loneLastLow: return try loneLastColumn(dtype, count: count, low: true)
        case .loneLastHigh: return try loneLastColumn(dtype, count: count, low: false)
        }
    }

    /// At least `count` (and 130) rows of `base ... base + 200`, 10% null when nullable, then one last row
    /// below (`low`) or above all of them. Nil for a dtype that is not a signed integer.
    mutating func loneLastColumn(_ dtype: DType, count: Int, low: Bool) throws -> (any ArrayNode)? {
        guard case .primitive(let p, _) = dtype, p.isSignedInteger, p.byteWidth >= 2 else { return nil }
        let n = Swift.max(count, 130)
        let base = Int64(int(-1_000...1_000))
        var b = ArrayBuilder(dtype: dtype, capacity: n)
        for _ in 0..<(n - 1) {
            b.append(dtype.isNullable && chance(0.1) ? .null : .int(base + Int64(int(0...200))))
        }
        b.append(.int(low ? base - 1 - Int64(int(0...3)) : base + 201 + Int64(int(0...3))))
        return try b.finish()
    }

    /// A float column of signed zeros: one of 0.0 and -0.0 in the first row and most others — what a
    /// sparse, run-end or dictionary encoding makes its fill or its most common value — and the other
    /// in one or two later rows, with nulls when the dtype is nullable. Its min and its max are both a
    /// tie the engine breaks by row order (the first row's zero): a kernel that compares the fill with
    /// the best patch, or folds in another order, answers the other zero. At least `count` rows; nil
    /// for a dtype that is not a float.
    public mutating func signedZerosColumn(_ dtype: DType, count: Int) throws -> (any ArrayNode)? {
        guard case .primitive(let p, _) = dtype, p.isFloat else { return nil }
        let n = Swift.max(count, 12)
        let common: Double = chance(0.5) ? 0.0 : -0.0
        var others = Set((0..<int(1...2)).map { _ in int(1...(n - 1)) })
        if others.isEmpty { others = [n - 1] }
        var b = ArrayBuilder(dtype: dtype, capacity: n)
        for i in 0..<n {
            if others.contains(i) {
                b.append(.float(-common))
            } else if i > 0, dtype.isNullable, chance(0.1) {
                b.append(.null)
            } else {
                b.append(.float(common))
            }
        }
        return try b.finish()
    }

    /// A column of `dtype` holding each of the type's edge values once — for floats NaN, ±inf, -0.0 and
    /// 0.0, the largest finite magnitude and subnormals; for integers the minimum and maximum; for text
    /// the empty string, long non-ASCII text and a prefix beside its extension — among ordinary values,
    /// never in the first row (a kernel that starts from the first value and compares onwards meets
    /// each of them), with nulls when the dtype is nullable. At least `count` rows; nil for dtypes
    /// without edges (booleans, binary, structs).
    ///
    /// The kit gives these to the first inputs of every key: a random draw reaches a NaN in an f64
    /// column of a given key only now and then, and a wrong answer on it must not wait for a long run.
    public mutating func edgeColumn(_ dtype: DType, count: Int) throws -> (any ArrayNode)? {
        var edges: [ScalarValue]
        switch dtype {
        case .primitive(let p, _):
            edges = Self.extremes(p)
            if p.isFloat { edges += [.float(0.0), Self.float(1.5, p), Self.float(-2.25, p)] }
        case .utf8:
            edges = [.utf8(""), .utf8(String(repeating: "Zürich 日本語", count: 30)), .utf8("ab"), .utf8("abc")]
        default:
            return nil
        }
        // Shuffled, so that NaN is not always before +inf, nor -0.0 before 0.0.
        for i in stride(from: edges.count - 1, to: 0, by: -1) { edges.swapAt(i, int(0...i)) }
        let n = Swift.max(count, edges.count * 2 + 2)
        var rows = [ScalarValue]()
        rows.reserveCapacity(n)
        var draw = ValueDraw(dtype: dtype, extremes: false, rng: &self)
        for _ in 0..<n {
            // Ordinary values only: each edge is in the column once, where it is put below.
            var v = draw.next(&self)
            for _ in 0..<8 where edges.contains(where: { $0.isIdentical(to: v) }) { v = draw.next(&self) }
            if edges.contains(where: { $0.isIdentical(to: v) }) { v = Self.ordinary(dtype) }
            rows.append(v)
        }
        // Each edge at its own row past the first: spread over the column, the last one sometimes last.
        var taken = Set<Int>([0])
        for (k, e) in edges.enumerated() {
            var row = k == edges.count - 1 && chance(0.5) ? n - 1 : 1 + (k * (n - 1)) / edges.count + int(0...1)
            while taken.contains(row) || row >= n { row = int(1...(n - 1)) }
            taken.insert(row)
            rows[row] = e
        }
        if dtype.isNullable {
            for i in 1..<n where !taken.contains(i) && chance(0.1) { rows[i] = .null }
        }
        var b = ArrayBuilder(dtype: dtype, capacity: n)
        for v in rows { b.append(v) }
        return try b.finish()
    }

    /// A value of `dtype` that is no edge of it: 7, 7.5 or "x".
    static func ordinary(_ dtype: DType) -> ScalarValue {
        switch dtype {
        case .primitive(let p, _): p.isFloat ? .float(7.5) : p.isUnsignedInteger ? .uint(7) : .int(7)
        default: .utf8("x")
        }
    }
}
