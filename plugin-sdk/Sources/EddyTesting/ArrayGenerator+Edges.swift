@_spi(Host) import Eddy

extension ArrayGenerator {
    /// The dtypes of the edge inputs, in the order the first inputs of a key take them: the floats
    /// first (NaN, the infinities and ±0.0 are where a `Swift.max`, a `<` or a sum in another order
    /// goes wrong), then the integers at their bounds, then text.
    static let edgeDTypes: [DType] = [
        .primitive(.float64, .nullable), .primitive(.float32, .nonNullable), .primitive(.int64, .nullable),
        .primitive(.float64, .nonNullable), .utf8(.nullable), .primitive(.uint64, .nonNullable),
        .primitive(.int32, .nullable), .primitive(.uint8, .nullable),
    ]

    /// The dtype edge input `index` of a key takes among `holds` (the dtypes its encodings hold), or nil
    /// when none of them has edges.
    static func edgeDType(_ index: Int, among holds: [DType]) -> DType? {
        let fit = edgeDTypes.filter { d in holds.contains(d) }
        return fit.isEmpty ? nil : fit[index % fit.count]
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
