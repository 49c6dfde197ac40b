import Eddy

#if DECIMAL_HANG
    import Glibc
#endif

// A third-party plugin as issue 21's trial wrote it: an f64 encoding "decimal floats" (integers × 10^-e)
// with a compressor hook, `.eddy` storage and compare / filter / sum / min / max kernels. The tests
// build it clean and with one realistic bug planted at a time (`-D DECIMAL_BUG_…`); the kit, the
// host's verification at load, the file's statistics and the shadow check must each catch them.
//
//   DECIMAL_BUG_ROUNDED_CONSTANT   compare scales the constant to the nearest integer (x = 12.345 matches 12.35)
//   DECIMAL_BUG_EXPONENT           the storage reader's exponent is off by one
//   DECIMAL_BUG_SHORT_READ         the storage reader drops the last row
//   DECIMAL_BUG_NEGATIVE_ZERO      the hook accepts -0.0 (decoded as +0.0)
//   DECIMAL_BUG_EXACT_SUM          sum adds the integers exactly, where the engine sums doubles in row order
//
// `-D DECIMAL_CRASH` builds version 0.2.0 whose sum kernel traps: a newer build that crashes its worker,
// for the server's fallback to the last good build (it is not one of the bugs the kit must catch).
// `-D DECIMAL_V2` builds version 0.2.0 (with or without a bug), `-D DECIMAL_HANG` a 0.2.0 whose sum
// kernel never returns: new builds for the server's canary.

/// Powers of ten that are exact doubles.
let powersOfTen: [Double] = [1, 10, 100, 1e3, 1e4, 1e5, 1e6]

/// `digits[i] / 10^exponent`, with the digits' validity.
public final class DecimalArray: Encoding {
    public static let id = EncodingID("fixture.decimal")
    public let exponent: Int
    public let digits: any ArrayNode
    public let dtype: DType

    public init(exponent: Int, digits: any ArrayNode, nullability: Nullability) throws {
        guard exponent >= 0, exponent < powersOfTen.count else {
            throw EddyError(.invalidArgument, "fixture.decimal exponent \(exponent) is outside 0...6")
        }
        guard digits.dtype.ptype == .int64 else {
            throw EddyError(.typeMismatch, "fixture.decimal needs i64 digits, found \(digits.dtype)")
        }
        self.exponent = exponent
        self.digits = digits
        self.dtype = .primitive(.float64, nullability)
    }

    var scale: Double { powersOfTen[exponent] }
    public var count: Int { digits.count }
    public var children: [any ArrayNode] { [digits] }
    public var metadataDescription: String { "e=\(exponent)" }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try DecimalArray(exponent: exponent, digits: children[0], nullability: dtype.nullability)
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard let d = digits as? PrimitiveArray else { return .executeChild(0, .canonical) }
        let p = scale
        let values = try d.withValues(Int64.self) { v in
            PrimitiveArray.build(
                Double.self, count: v.count, validity: dtype.isNullable ? d.validity : .allValid,
                nullability: dtype.nullability
            ) { out in
                for i in 0..<v.count { out[i] = Double(v[i]) / p }
            }
        }
        return .done(values)
    }

    public func scalar(at index: Int) throws -> Scalar {
        let s = try digits.scalar(at: index)
        guard let d = s.int64Value else { return .null(dtype) }
        return Scalar(.float(Double(d) / scale), dtype)
    }

    /// The digits as a plain i64 array (nil when they are not i64).
    func plainDigits(_ ctx: ExecutionCtx) throws -> PrimitiveArray? {
        guard let d = try ctx.execute(digits) as? PrimitiveArray, d.ptype == .int64 else { return nil }
        return d
    }

    /// The column as decimals with the smallest exponent that gives back every value bit for bit, or nil.
    static func encode(_ column: PrimitiveArray) throws -> (exponent: Int, digits: PrimitiveArray)? {
        guard column.ptype == .float64, column.count > 0 else { return nil }
        let limit = Double(1 << 50)
        return try column.withValues(Double.self) { v -> (Int, PrimitiveArray)? in
            for e in 0..<powersOfTen.count {
                let p = powersOfTen[e]
                var out = [Int64](repeating: 0, count: v.count)
                var fits = true
                for i in 0..<v.count where column.validity.isValid(i) {
                    let x = v[i]
                    let scaled = (x * p).rounded()
                    guard scaled.isFinite, abs(scaled) < limit else {
                        fits = false
                        break
                    }
                    let d = Int64(scaled)
                    #if DECIMAL_BUG_NEGATIVE_ZERO
                        let same = Double(d) / p == x
                    #else
                        let same = (Double(d) / p).bitPattern == x.bitPattern
                    #endif
                    guard same else {
                        fits = false
                        break
                    }
                    out[i] = d
                }
                if fits {
                    let digits =
                        column.dtype.isNullable
                        ? try PrimitiveArray(
                            ptype: .int64, buffer: Buffer(copying: out), count: out.count, validity: column.validity,
                            nullability: .nullable)
                        : PrimitiveArray(out)
                    return (e, digits)
                }
            }
            return nil
        }
    }
}

public enum DecimalPlugin: EddyPlugin {
    public static let name = "decimal"
    #if DECIMAL_CRASH || DECIMAL_V2 || DECIMAL_HANG
        public static let version = "0.2.0"
    #else
        public static let version = "0.1.0"
    #endif

    public static func register(into registrar: PluginRegistrar) throws {
        registrar.encoding(DecimalArray.self)
        // For queries too: a comparison or a sum over the scaled integers pays within one pass, so a CSV
        // column a query reads gets this encoding (`--compression query`, or `auto` for a filtered column).
        registrar.registerCompressor(
            "decimal floats", purpose: .queryAndStorage, applies: { $0.ptype == .float64 }
        ) { column, compressChild in
            guard let p = column as? PrimitiveArray, let (e, digits) = try DecimalArray.encode(p), e > 0 else {
                return nil
            }
            return try DecimalArray(
                exponent: e, digits: try compressChild(digits), nullability: column.dtype.nullability)
        }
        registrar.storage(
            for: DecimalArray.self, metadataVersion: 1,
            write: { d in
                var m = MetadataWriter()
                m.u8(UInt8(d.exponent))
                return StoredParts(metadata: m.bytes, children: [d.digits])
            },
            read: { stored in
                try stored.expect(buffers: 0, children: 1)
                var m = stored.metadataReader
                #if DECIMAL_BUG_EXPONENT
                    let e = Int(try m.u8()) + 1
                #else
                    let e = Int(try m.u8())
                #endif
                try m.finish()
                var digits = try stored.child(0)
                #if DECIMAL_BUG_SHORT_READ
                    if digits.count > 0 { digits = try SliceArray(digits, start: 0, length: digits.count - 1) }
                #endif
                return try DecimalArray(exponent: e, digits: digits, nullability: stored.dtype.nullability)
            })

        registrar.compare(on: DecimalArray.self, name: "compare decimal digits") { array, op, scalar, ctx in
            guard case .float(let c) = scalar.value, c.isFinite, let d = try array.plainDigits(ctx) else { return nil }
            let p = array.scale
            guard abs(c * p) < Double(1 << 52) else { return nil }
            #if DECIMAL_BUG_ROUNDED_CONSTANT
                let k = Int64((c * p).rounded())
                let (lt, le) = (k - 1, k)  // digits < k, digits <= k
            #else
                // Decoding is monotone in the digits: find the last digits whose value is < c and <= c.
                func lastAtMost(_ strict: Bool) -> Int64 {
                    var t = Int64((c * p).rounded(.down))
                    func ok(_ x: Int64) -> Bool { strict ? Double(x) / p < c : Double(x) / p <= c }
                    while ok(t + 1) { t += 1 }
                    while !ok(t) { t -= 1 }
                    return t
                }
                let (lt, le) = (lastAtMost(true), lastAtMost(false))
            #endif
            let validity = d.validity
            return try d.withValues(Int64.self) { v in
                let bits = Bitmap(count: v.count) { i in
                    let x = v[i]
                    switch op {
                    case .lt: return x <= lt
                    case .le: return x <= le
                    case .gt: return x > le
                    case .ge: return x > lt
                    case .eq: return x > lt && x <= le
                    case .ne: return !(x > lt && x <= le)
                    }
                }
                return try BoolArray(
                    bits: bits, validity: array.dtype.isNullable ? validity : .allValid,
                    nullability: array.dtype.nullability)
            }
        }

        registrar.filter(on: DecimalArray.self, name: "filter decimal digits") { array, mask, ctx in
            let kept = try ctx.execute(try FilterArray(array.digits, bitmap: mask))
            return try DecimalArray(exponent: array.exponent, digits: kept, nullability: array.dtype.nullability)
        }

        registrar.aggregate(.sum, on: DecimalArray.self, name: "sum decimal digits") { array, ctx in
            guard let d = try array.plainDigits(ctx) else { return nil }
            let p = array.scale
            #if DECIMAL_CRASH
                if d.count > 0 { fatalError("planted crash in sum decimal digits") }
            #endif
            #if DECIMAL_HANG
                while d.count > 0 { sleep(1) }
            #endif
            return try d.withValues(Int64.self) { v -> ScalarValue in
                var n = 0
                #if DECIMAL_BUG_EXACT_SUM
                    var exact: Int64 = 0
                    for i in 0..<v.count where d.validity.isValid(i) {
                        exact &+= v[i]
                        n += 1
                    }
                    return n == 0 ? .null : .float(Double(exact) / p)
                #else
                    var s = 0.0  // the engine's contract: doubles, in row order
                    for i in 0..<v.count where d.validity.isValid(i) {
                        s += Double(v[i]) / p
                        n += 1
                    }
                    return n == 0 ? .null : .float(s)
                #endif
            }
        }

        for kind in [AggregateFunction.Kind.min, .max] {
            registrar.aggregate(kind, on: DecimalArray.self, name: "\(kind.rawValue) of decimal digits") { array, ctx in
                guard let d = try array.plainDigits(ctx) else { return nil }
                let p = array.scale
                return try d.withValues(Int64.self) { v -> ScalarValue in
                    var best: Int64?
                    for i in 0..<v.count where d.validity.isValid(i) {
                        if let b = best, kind == .min ? v[i] >= b : v[i] <= b { continue }
                        best = v[i]
                    }
                    return best.map { .float(Double($0) / p) } ?? .null
                }
            }
        }
    }
}

#if DECIMAL_SO
    @_cdecl("eddy_plugin_entry_v2")
    public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
        pluginEntry(DecimalPlugin.self, request, argument)
    }
#endif
