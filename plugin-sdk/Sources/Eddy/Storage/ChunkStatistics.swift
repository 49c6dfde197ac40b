/// The statistics a file's footer keeps for a column chunk, computed again from the decoded chunk: what
/// a host compares with the footer after a plugin's storage read the chunk.
///
/// Host API: a plugin never needs it (the host checks plugin-encoded chunks itself).
@_spi(Host)
public enum ChunkStatistics {
    /// The nulls, and the smallest and largest non-null values in the engine's min/max order (NaN above
    /// every number; `.null` when every value is null), of a canonical array.
    ///
    /// f64 and f32 columns take one pass that only orders (the aggregate partial also sums, which costs
    /// as much again); anything else is ordered as ``AggregatePartial/of(_:order:)`` orders it.
    /// - Parameter order: false skips min and max (both `.null`): the footer keeps none for the column.
    /// - Throws: what reading the array throws.
    public static func of(_ array: any ArrayNode, order: Bool = true) throws -> (
        nulls: Int, min: ScalarValue, max: ScalarValue
    ) {
        let nulls = Canonical.validity(of: array).nullCount(array.count)
        guard order else { return (nulls, .null, .null) }
        if let p = array as? PrimitiveArray, p.ptype == .float64 || p.ptype == .float32 {
            let (lo, hi) = p.ptype == .float64 ? floatBounds(p, Double.self) : floatBounds(p, Float.self)
            return (nulls, lo, hi)
        }
        let p = try AggregatePartial.of(array, order: true)
        return (nulls, p.min, p.max)
    }

    private static func floatBounds<F: BinaryFloatingPoint & NativeType>(_ array: PrimitiveArray, _: F.Type)
        -> (min: ScalarValue, max: ScalarValue)
    {
        var lo = Double.infinity
        var hi = -Double.infinity
        var numbers = false
        var nan = false
        let valid = ValidityBits(array.validity)
        array.withValuesUnchecked(F.self) { v in
            for i in 0..<v.count where valid.isValid(i) {
                let x = Double(v[i])
                if x.isNaN {
                    nan = true
                    continue
                }
                numbers = true
                if x < lo { lo = x }
                if x > hi { hi = x }
            }
        }
        // As the engine's min and max: the min is NaN only when every value is, the max once any is.
        let min: ScalarValue = numbers ? .float(lo) : nan ? .float(.nan) : .null
        let max: ScalarValue = nan ? .float(.nan) : numbers ? .float(hi) : .null
        return (min, max)
    }
}
