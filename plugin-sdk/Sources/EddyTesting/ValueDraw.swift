@_spi(Host) import Eddy

/// How one column's values are drawn: floats of one decimal scale (most float columns: prices, cents,
/// 12.34), integers clustered around one base (neighbours, sometimes at the type's bounds), or
/// anything ``ArrayGenerator/value(_:)`` gives.
struct ValueDraw {
    private enum Style {
        case any
        case decimals(places: Int)
        case cluster(base: ScalarValue)
    }

    private let dtype: DType
    private let style: Style
    private let extremes: Bool

    init(dtype: DType, extremes: Bool, rng g: inout ArrayGenerator) {
        self.dtype = dtype
        self.extremes = extremes
        switch dtype {
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
