@_spi(Host) public import Eddy
public import EddyIO

/// Zone maps: whether a chunk's statistics prove that a `--where` predicate keeps none of its rows.
///
/// Conservative: a chunk is skipped only when every row is proven false or null. Understood forms are
/// comparisons of a column with a literal (either side), `and`, `or`, `x is null`, `x is not null`
/// and literal `false`/`null`; anything else may keep rows. Bounds are compared with the engine's own
/// scalar comparison (strings bytewise, floats at the column's precision); a NaN bound proves nothing.
public enum ZoneMap {
    /// True when no row of a chunk with these per-column statistics can satisfy `predicate`.
    public static func provesEmpty(_ predicate: Bound, chunk: ChunkLayout) -> Bool {
        !mayMatch(predicate, chunk, depth: 0)
    }

    static func mayMatch(_ b: Bound, _ chunk: ChunkLayout, depth: Int) -> Bool {
        guard depth < 64 else { return true }
        switch b {
        case .literal(let s):
            if case .bool(let v) = s.value { return v }
            return !s.isNull
        case .function(let f, let args, _):
            if let f = f as? BooleanFunction {
                switch f.op {
                case .and: return args.allSatisfy { mayMatch($0, chunk, depth: depth + 1) }
                case .or: return args.contains { mayMatch($0, chunk, depth: depth + 1) }
                @unknown default: return true
                }
            }
            if f is IsNullFunction, args.count == 1, case .column(let c, _) = args[0], c < chunk.columns.count {
                return chunk.columns[c].stats.nullCount > 0
            }
            if let f = f as? CompareFunction, args.count == 2 {
                switch (args[0], args[1]) {
                case (.column(let c, _), .literal(let lit)):
                    return compareMay(c, f.op, lit, chunk)
                case (.literal(let lit), .column(let c, _)):
                    return compareMay(c, f.op.swapped, lit, chunk)
                default: return true
                }
            }
            if f is NotFunction, args.count == 1, case .function(let g, let inner, _) = args[0], g is IsNullFunction,
                inner.count == 1, case .column(let c, _) = inner[0], c < chunk.columns.count
            {
                return chunk.columns[c].stats.nullCount < chunk.rows
            }
            return true
        default: return true
        }
    }

    /// Whether `column op lit` can be true for some row of the chunk.
    static func compareMay(_ c: Int, _ op: CompareOperator, _ lit: Scalar, _ chunk: ChunkLayout) -> Bool {
        guard c < chunk.columns.count else { return true }
        let st = chunk.columns[c].stats
        if lit.isNull || st.nullCount == chunk.rows { return false }  // every comparison is null
        guard let lo = st.min, let hi = st.max else { return true }
        for bound in [lo, hi] { if case .float(let x) = bound.value, x.isNaN { return true } }
        if case .float(let x) = lit.value, x.isNaN { return true }
        func holds(_ a: Scalar, _ o: CompareOperator, _ b: Scalar) -> Bool? {
            Compare.scalars(a, o, b, .nullable).boolValue
        }
        // A minimum above the maximum (a file that lies, in a chunk's, a row group's or a page's
        // statistics) proves nothing: the rows are read.
        if holds(lo, .gt, hi) == true { return true }
        // nil (types the comparison does not know) proves nothing.
        switch op {
        case .eq:
            if holds(lit, .lt, lo) == true || holds(lit, .gt, hi) == true { return false }
        case .ne:
            if holds(lo, .eq, hi) == true, holds(lo, .eq, lit) == true { return false }
        case .lt:
            if holds(lo, .ge, lit) == true { return false }
        case .le:
            if holds(lo, .gt, lit) == true { return false }
        case .gt:
            if holds(hi, .le, lit) == true { return false }
        case .ge:
            if holds(hi, .lt, lit) == true { return false }
        }
        return true
    }
}
