@_spi(Host) import Eddy

/// How one column's values are drawn: floats of one decimal scale (most float columns: prices, cents,
/// 12.34), integers clustered around one base (neighbours, sometimes at the type's bounds), or
/// anything ``ArrayGenerator/value(_:)`` gives.
struct ValueDraw {
    private enum Style {
        case any
        case decimals(places: Int)
        case cluster(base: ScalarValue)
        /// `bottom` first, then `bottom + span - (0...5)`.
        case spanTop(bottom: ScalarValue, span: UInt64)
    }

    private let dtype: DType
    private let style: Style
    private let extremes: Bool
    /// Values drawn so far.
    private var drawn = 0

    init(dtype: DType, extremes: Bool, rng g: inout ArrayGenerator) {
        self.dtype = dtype
        self.extremes = extremes
        switch dtype {
        case .primitive(let p, _) where g.spanTops && !p.isFloat:
            // Often the widest span the type holds (a frame of reference then packs it at that width).
            let widest = p.byteWidth >= 8 ? UInt64.max : (UInt64(1) << UInt64(p.byteWidth * 8)) - 1
            let spans: [UInt64] = [0xFF, 0xFFFF, 0xFFFF_FFFF].filter { $0 <= widest }
            // Half the time 2^16 (where kernels that keep 16-bit values in 32-bit sums go wrong).
            let widestSpan = spans.last.map { g.chance(0.5) ? $0 : g.pick(spans) } ?? 0xFF
            let span = spans.contains(0xFFFF) && g.chance(0.5) ? 0xFFFF : widestSpan
            // A signed span is centred on zero (-128...127 for 2^8), or starts at zero when that fits.
            let centred = g.chance(0.5) || span == widest
            let bottom: ScalarValue =
                p.isSignedInteger ? .int(centred ? -Int64(span / 2) - 1 : 0) : .uint(0)
            style = .spanTop(bottom: bottom, span: span)
        case .primitive(let p, _) where p.isFloat:
            style = !extremes || g.chance(0.75) ? .decimals(places: g.int(0...3)) : .any
        case .primitive(let p, _) where g.chance(0.3):
            style = .cluster(base: g.chance(0.3) ? g.nearBound(p) : g.value(dtype))
        default:
            style = .any
        }
    }

    mutating func next(_ g: inout ArrayGenerator) -> ScalarValue {
        guard case .primitive(let p, _) = dtype else { return g.value(dtype) }
        switch style {
        case .any:
            return g.value(dtype)
        case .decimals(let places):
            if extremes, g.chance(0.03), let x = ArrayGenerator.extremes(p).randomElement(using: &g) { return x }
            // Now and then another scale, so that a column's values need not share one exponent.
            return ArrayGenerator.float(g.decimal(places: g.chance(0.1) ? g.int(0...3) : places), p)
        case .spanTop(let bottom, let span):
            // The first value drawn is the bottom (``ArrayGenerator/spanTopColumn(_:count:)`` puts it in one row).
            drawn += 1
            let down = drawn == 1 ? span : UInt64(g.int(0...5))
            let x: ScalarValue
            switch bottom {
            case .int(let b): x = .int(b &+ Int64(truncatingIfNeeded: span &- down))
            case .uint(let b): x = .uint(b &+ span &- down)
            default: x = g.value(dtype)
            }
            return x.fits(dtype) ? x : bottom
        case .cluster(let base):
            let step = g.int(0...5)
            switch base {
            case .int(let b):
                let (v, overflow) = b.addingReportingOverflow(Int64(b < 0 ? step : -step))
                let x = ScalarValue.int(v)
                return !overflow && x.fits(dtype) ? x : base
            case .uint(let b):
                let x = ScalarValue.uint(b >= UInt64(step) && b > 100 ? b - UInt64(step) : b + UInt64(step))
                return x.fits(dtype) ? x : base
            default:
                return g.value(dtype)
            }
        }
    }
}
