internal import EddyKernelsC

/// An aggregate over a whole array: `count(*)`, `count(x)`, `sum`, `min`, `max`, `mean`.
///
/// Nulls are skipped (SQL semantics): `sum`, `min`, `max` and `mean` of no valid values are null;
/// counts are never null. A sum of integers that does not fit 64 bits is an overflow error. Floats:
/// NaN sorts above every number for `min`/`max`.
public struct AggregateFunction: Sendable, Hashable, CustomStringConvertible {
    /// Which aggregate to compute.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// `count(*)`: every row, nulls included.
        case countAll = "count(*)"
        /// `count(x)` counts the non-null rows; `sum`, `min`, `max` and `mean` are of the non-null values.
        case count, sum, min, max, mean
    }

    /// The aggregate this function computes.
    public let kind: Kind
    /// The aggregate of the given kind.
    public init(_ kind: Kind) { self.kind = kind }

    static let ids: [Kind: EncodingID] = Dictionary(
        uniqueKeysWithValues: Kind.allCases.map {
            ($0, EncodingID("eddy.agg.\($0 == .countAll ? "count_all" : $0.rawValue)"))
        })

    /// The encoding of nodes computing this aggregate.
    public var encoding: EncodingID { Self.ids[kind]! }
    public var description: String { kind.rawValue }

    /// The result type for an input of type `input`.
    public func returnType(_ input: DType) throws -> DType {
        switch kind {
        case .countAll, .count: return .primitive(.int64, .nonNullable)
        case .sum:
            guard let p = input.ptype else { throw EddyError(.typeMismatch, "sum needs numbers, got \(input)") }
            return .primitive(p.isFloat ? .float64 : p.isSignedInteger ? .int64 : .uint64, .nullable)
        case .mean:
            guard input.ptype != nil else { throw EddyError(.typeMismatch, "mean needs numbers, got \(input)") }
            return .primitive(.float64, .nullable)
        case .min, .max:
            switch input {
            case .primitive, .bool, .utf8, .binary, .null: return input.asNullable
            default: throw EddyError(.typeMismatch, "\(kind.rawValue) cannot order \(input)")
            }
        }
    }

    /// The result from a partial covering the whole input.
    /// - Throws: ``EddyError/Code/overflow`` for an integer sum beyond 64 bits.
    public func finish(_ p: AggregatePartial, input: DType) throws -> Scalar {
        let t = try returnType(input)
        switch kind {
        case .countAll: return Scalar(.int(Int64(p.rows)), t)
        case .count: return Scalar(.int(Int64(p.nonNull)), t)
        case .sum:
            if p.nonNull == 0 { return .null(t) }
            switch t.ptype {
            case .float64: return Scalar(.float(p.floatSum), t)
            case .int64:
                guard let v = Int64(exactly: p.intSum) else {
                    throw EddyError(.overflow, "sum \(p.intSum) does not fit i64")
                }
                return Scalar(.int(v), t)
            default:
                guard let v = UInt64(exactly: p.intSum) else {
                    throw EddyError(.overflow, "sum \(p.intSum) does not fit u64")
                }
                return Scalar(.uint(v), t)
            }
        case .mean:
            if p.nonNull == 0 { return .null(t) }
            let total = input.ptype?.isFloat == true ? p.floatSum : Double(p.intSum)
            return Scalar(.float(total / Double(p.nonNull)), t)
        case .min: return p.nonNull == 0 ? .null(t) : Scalar(p.min, t)
        case .max: return p.nonNull == 0 ? .null(t) : Scalar(p.max, t)
        }
    }

    /// A lazy node computing this aggregate over `input`.
    public func make(_ input: any ArrayNode) throws -> AggregateArray { try AggregateArray(self, input) }
}

/// What every aggregate needs from part of an array; partials of consecutive parts merge.
public struct AggregatePartial: Sendable {
    /// Rows covered, nulls included (the `count(*)` result).
    public var rows = 0
    /// Rows with a non-null value (the `count(x)` result).
    public var nonNull = 0
    /// Exact sum of integer values.
    public var intSum: Int128 = 0
    /// Sum of float values, as `Double` (NaN once any value is NaN).
    public var floatSum: Double = 0
    /// The smallest non-null value in ``less(_:_:)`` order; `.null` when there is none, or when
    /// ``of(_:order:)`` was asked for no order.
    public var min: ScalarValue = .null
    /// The largest non-null value in ``less(_:_:)`` order; `.null` in the same cases as ``min``.
    public var max: ScalarValue = .null

    /// An empty partial: no rows.
    public init() {}

    /// Adds `weight` copies of one value.
    public mutating func add(_ v: ScalarValue, weight: Int = 1) {
        rows += weight
        guard !v.isNull, weight > 0 else { return }
        nonNull += weight
        switch v {
        case .int(let i): intSum += Int128(i) * Int128(weight)
        case .uint(let u): intSum += Int128(u) * Int128(weight)
        case .float(let d): floatSum += d * Double(weight)
        default: break
        }
        if min.isNull || Self.less(v, min) { min = v }
        if max.isNull || Self.less(max, v) { max = v }
    }

    /// Folds another partial into this one.
    public mutating func merge(_ o: AggregatePartial) {
        rows += o.rows
        nonNull += o.nonNull
        intSum += o.intSum
        floatSum += o.floatSum
        if !o.min.isNull && (min.isNull || Self.less(o.min, min)) { min = o.min }
        if !o.max.isNull && (max.isNull || Self.less(max, o.max)) { max = o.max }
    }

    /// Order for min/max: numbers numerically with NaN above all, strings and bytes bytewise, false < true.
    public static func less(_ a: ScalarValue, _ b: ScalarValue) -> Bool {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x < y
        case (.uint(let x), .uint(let y)): return x < y
        case (.float(let x), .float(let y)):
            if x.isNaN { return false }
            if y.isNaN { return true }
            return x < y
        case (.bool(let x), .bool(let y)): return !x && y
        case (.utf8(let x), .utf8(let y)): return Compare.compareByteArrays(Array(x.utf8), Array(y.utf8)) < 0
        case (.binary(let x), .binary(let y)): return Compare.compareByteArrays(x, y) < 0
        default: return false
        }
    }

    /// The partial of a canonical or constant array.
    /// - Parameter array: a canonical or constant array (other encodings are read row by row).
    /// - Parameter order: whether min and max are needed (skipping them saves a pass over the data).
    public static func of(_ array: any ArrayNode, order: Bool = true) throws -> AggregatePartial {
        var p = AggregatePartial()
        if let c = array as? ConstantArray {
            p.add(c.scalar.value, weight: c.count)
            return p
        }
        if let prim = array as? PrimitiveArray {
            return prim.ptype.visit(PrimitivePartial(array: prim, order: order))
        }
        if let text = array as? VarBinArray {
            // Strings and bytes: min and max compared in place, bytewise (the order of `less`); only
            // the two winners become values.
            p.rows = text.count
            let valid = ValidityBits(text.validity)
            var lo = -1
            var hi = -1
            for i in 0..<text.count where valid.isValid(i) {
                p.nonNull += 1
                if lo < 0 {
                    (lo, hi) = (i, i)
                    continue
                }
                text.withBytes(at: i) { v in
                    if text.withBytes(at: lo, { Compare.compareBytes(v, $0) }) < 0 { lo = i }
                    if text.withBytes(at: hi, { Compare.compareBytes(v, $0) }) > 0 { hi = i }
                }
            }
            if lo >= 0 {
                p.min = try text.scalar(at: lo).value
                p.max = try text.scalar(at: hi).value
            }
            return p
        }
        for i in 0..<array.count { p.add(try array.scalar(at: i).value) }
        return p
    }

    private struct PrimitivePartial: PTypeVisitor {
        let array: PrimitiveArray
        let order: Bool
        func visit<T: NativeType>(_ type: T.Type) -> AggregatePartial {
            var p = AggregatePartial()
            p.rows = array.count
            let validity = array.validity
            let validBits = ValidityBits(validity)
            array.withValuesUnchecked(T.self) { v in
                let raw = UnsafeRawPointer(v.baseAddress)
                if let I = T.self as? any NativeInteger.Type {
                    func integers<I: NativeInteger>(_: I.Type) {
                        let values = UnsafeBufferPointer<I>(start: raw?.assumingMemoryBound(to: I.self), count: v.count)
                        if case .allValid = validity {
                            Self.dense(values, order: order, into: &p)
                        } else {
                            Self.masked(values, validBits, order: order, into: &p)
                        }
                    }
                    integers(I)
                } else if T.self == Float.self {
                    let values = UnsafeBufferPointer<Float>(
                        start: raw?.assumingMemoryBound(to: Float.self), count: v.count)
                    Self.floats(values, validBits, order: order, into: &p)
                } else {
                    let values = UnsafeBufferPointer<Double>(
                        start: raw?.assumingMemoryBound(to: Double.self), count: v.count)
                    Self.floats(values, validBits, order: order, into: &p)
                }
            }
            return p
        }

        /// Dense integers: exact sum without per-element overflow checks, and min/max in loops the
        /// compiler vectorises.
        static func dense<I: NativeInteger>(
            _ values: UnsafeBufferPointer<I>, order: Bool, into p: inout AggregatePartial
        ) {
            p.nonNull = values.count
            p.intSum = exactSum(values)
            guard order, let first = values.first else { return }
            var lo = first
            var hi = first
            for x in values {
                lo = Swift.min(lo, x)
                hi = Swift.max(hi, x)
            }
            p.min = lo.scalarValue
            p.max = hi.scalarValue
        }

        /// Integers with nulls: the masked sum (see ``maskedSum(_:_:)``), then min and max only when
        /// asked for, null rows counting as the type's bounds (which leave min and max as they were: no
        /// branch per row).
        static func masked<I: NativeInteger>(
            _ values: UnsafeBufferPointer<I>, _ validBits: ValidityBits, order: Bool, into p: inout AggregatePartial
        ) {
            (p.intSum, p.nonNull) = maskedSum(values, validBits)
            guard order, p.nonNull > 0 else { return }
            var lo = I.max
            var hi = I.min
            for k in 0..<values.count {
                let valid = validBits.isValid(k)
                lo = Swift.min(lo, valid ? values[k] : I.max)
                hi = Swift.max(hi, valid ? values[k] : I.min)
            }
            p.min = lo.scalarValue
            p.max = hi.scalarValue
        }

        /// The exact sum and count of the valid rows, without a branch per row: Int64 a validity word
        /// at a time in C; up to 32 bits in 64 (2^30 values cannot leave it; a null adds 0); wider
        /// values ANDed with their validity bit spread to a mask, split into 32-bit halves so that
        /// nothing can overflow.
        static func maskedSum<I: NativeInteger>(_ values: UnsafeBufferPointer<I>, _ validBits: ValidityBits) -> (
            Int128, Int
        ) {
            var n = 0
            var total: Int128 = 0
            var i = 0
            if I.self == Int64.self, validBits.kind == 2, let bits = validBits.base,
                let signed = UnsafeRawPointer(values.baseAddress)?.assumingMemoryBound(to: Int64.self)
            {
                var low: UInt64 = 0
                var high: Int64 = 0
                while i < values.count {
                    let end = Swift.min(values.count, i + (1 << 30))
                    n &+= eddy_masked_sum_i64(signed + i, bits, validBits.offset &+ i, end &- i, &low, &high)
                    total += Int128(high) << 32 + Int128(low)
                    i = end
                }
            }
            while i < values.count {
                let end = Swift.min(values.count, i + (1 << 30))
                if I.bitWidth <= 32 {
                    var sum: Int64 = 0
                    for k in i..<end {
                        let valid = validBits.isValid(k)
                        n &+= valid ? 1 : 0
                        sum &+= valid ? Int64(truncatingIfNeeded: values[k]) : 0
                    }
                    total += Int128(sum)
                } else {
                    var low: UInt64 = 0
                    var high: Int64 = 0
                    for k in i..<end {
                        let valid = validBits.isValid(k)
                        let mask = 0 &- UInt64(valid ? 1 : 0)
                        n &+= valid ? 1 : 0
                        let x = Int64(truncatingIfNeeded: values[k])
                        let bits =
                            I.isSigned || I.bitWidth < 64
                            ? UInt64(bitPattern: x) : UInt64(truncatingIfNeeded: values[k])
                        low &+= (bits & 0xFFFF_FFFF) & mask
                        let hi = I.isSigned ? Int64(x >> 32) : Int64(bits >> 32)
                        high &+= hi & Int64(bitPattern: mask)
                    }
                    total += Int128(high) << 32 + Int128(low)
                }
                i = end
            }
            return (total, n)
        }

        /// Floats: summed in Double in C, in row order (the same double as a row-by-row loop gives),
        /// without a branch or a bit test per row; min and max (NaN above every number) only when
        /// asked for.
        static func floats<F: BinaryFloatingPoint>(
            _ values: UnsafeBufferPointer<F>, _ validBits: ValidityBits, order: Bool, into p: inout AggregatePartial
        ) {
            var s = 0.0
            var n = 0
            if validBits.kind != 1, let base = values.baseAddress {
                let bits = validBits.kind == 2 ? validBits.base : nil
                if F.self == Double.self {
                    let doubles = UnsafeRawPointer(base).assumingMemoryBound(to: Double.self)
                    n = eddy_masked_sum_f64(doubles, bits, validBits.offset, values.count, &s)
                } else {
                    let floats = UnsafeRawPointer(base).assumingMemoryBound(to: Float.self)
                    n = eddy_masked_sum_f32(floats, bits, validBits.offset, values.count, &s)
                }
            }
            p.floatSum = s
            p.nonNull = n
            guard order else { return }
            var extremes = FloatExtremes()
            for i in 0..<values.count where validBits.isValid(i) { extremes.add(Double(values[i])) }
            p.min = extremes.min
            p.max = extremes.max
        }

        /// The exact sum of up to 2^32 integers: the low and high 32-bit halves are summed separately
        /// in 64 bits (neither can overflow), which keeps the loop free of overflow checks.
        static func exactSum<I: NativeInteger>(_ values: UnsafeBufferPointer<I>) -> Int128 {
            var total: Int128 = 0
            var start = 0
            let block = 1 << 30
            while start < values.count {
                let end = Swift.min(values.count, start + block)
                if I.bitWidth <= 32 {
                    var s: Int64 = 0
                    for i in start..<end { s &+= Int64(truncatingIfNeeded: values[i]) }
                    if !I.isSigned {
                        s = 0; for i in start..<end { s &+= Int64(UInt64(truncatingIfNeeded: values[i])) }
                    }
                    total += Int128(s)
                } else {
                    // One pass that vectorises on baseline x86-64 (adds and ors only): a wrapping sum, and
                    // the OR of every value plus 2^k, which stays below 2^(k+1) exactly when every value
                    // is in [-2^k, 2^k). With k = 61 - bits(rows) the exact sum is then within ±2^61 and
                    // the wrapping sum equals it; otherwise the split loop below sums again.
                    if I.isSigned {
                        let rows = end - start
                        let k = 61 - (Int.bitWidth - rows.leadingZeroBitCount)
                        let offset = UInt64(1) << UInt64(k)
                        var sum: UInt64 = 0
                        var bits: UInt64 = 0
                        for i in start..<end {
                            let x = UInt64(bitPattern: Int64(truncatingIfNeeded: values[i]))
                            sum &+= x
                            bits |= x &+ offset
                        }
                        if bits < offset << 1 {
                            total += Int128(Int64(bitPattern: sum))
                            start = end
                            continue
                        }
                    }
                    var low: UInt64 = 0
                    var high: Int64 = 0
                    if I.isSigned {
                        for i in start..<end {
                            let x = Int64(truncatingIfNeeded: values[i])
                            low &+= UInt64(truncatingIfNeeded: x) & 0xFFFF_FFFF
                            high &+= x >> 32
                        }
                    } else {
                        for i in start..<end {
                            let x = UInt64(truncatingIfNeeded: values[i])
                            low &+= x & 0xFFFF_FFFF
                            high &+= Int64(x >> 32)
                        }
                    }
                    total += (Int128(high) << 32) + Int128(low)
                }
                start = end
            }
            return total
        }
    }
}

extension ScalarValue {
    var floatValue: Double {
        switch self {
        case .float(let d): d
        case .int(let i): Double(i)
        case .uint(let u): Double(u)
        default: .nan
        }
    }
}

/// A lazy one-row node: an aggregate of its child.
public final class AggregateArray: ArrayNode {
    /// The aggregate computed.
    public let function: AggregateFunction
    /// The input array.
    public let child: any ArrayNode
    public let dtype: DType
    public let encoding: EncodingID

    /// A node computing `function` over `child`; its dtype is the function's return type for the child.
    /// - Throws: ``EddyError/Code/typeMismatch`` when the function does not accept the child's dtype.
    public init(_ function: AggregateFunction, _ child: any ArrayNode) throws {
        self.function = function
        self.child = child
        self.dtype = try function.returnType(child.dtype)
        self.encoding = function.encoding
    }

    public var count: Int { 1 }
    public var children: [any ArrayNode] { [child] }
    public var metadataDescription: String { function.description }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try AggregateArray(function, children[0])
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        if function.kind == .countAll {
            return .done(ConstantArray(Scalar(.int(Int64(child.count)), dtype), count: 1))
        }
        guard child.isColumnar else { return .executeChild(0, .columnar) }
        let order = function.kind == .min || function.kind == .max
        return .done(
            ConstantArray(try function.finish(AggregatePartial.of(child, order: order), input: child.dtype), count: 1))
    }

    /// The aggregate's value (executes the child with an empty registry: slow; for tests).
    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        let ctx = ExecutionCtx(snapshot: KernelSnapshot.empty, options: ExecutionOptions(useKernels: false))
        return try ctx.execute(self).scalar(at: 0)
    }
}

/// Min and max of floats in the engine's order: NaN above every number (so the max is NaN once one is
/// seen, the min only when every value is NaN); between equal values (-0.0 and 0.0) the first stays.
struct FloatExtremes {
    private var lo: Double?
    private var hi: Double?
    private var nan = false

    mutating func add(_ x: Double) {
        if x.isNaN {
            nan = true
            return
        }
        if lo.map({ x < $0 }) ?? true { lo = x }
        if hi.map({ x > $0 }) ?? true { hi = x }
    }

    var min: ScalarValue { lo.map { .float($0) } ?? (nan ? .float(.nan) : .null) }
    var max: ScalarValue { nan ? .float(.nan) : (hi.map { .float($0) } ?? .null) }
}
