@_spi(Host) import Eddy

extension ArrayGenerator {
    /// A comparison of an encoded column with a constant that occurs in it, on either side.
    public mutating func compareOverEncoded(
        dtypes: [DType] = [
            .primitive(.int64, .nullable), .utf8(.nullable),
            .primitive(.uint16, .nonNullable), .utf8(.nonNullable),
        ],
        maxCount: Int = 300
    ) throws -> any ArrayNode {
        let dtype = pick(dtypes)
        let column = try self.column(dtype, count: int(1...maxCount))
        let encoded = try encode(column, depth: int(1...3))
        return try compare(encoded)
    }

    /// `child op constant` (or `constant op child`) with a constant that usually occurs in the child,
    /// often lies between two neighbouring values of it, sometimes not, and sometimes is null.
    public mutating func compare(_ child: any ArrayNode) throws -> any ArrayNode {
        let op = pick(CompareOperator.allCases)
        let constant = ConstantArray(try constant(for: child), count: child.count)
        return chance(0.7)
            ? try CompareFunction.make(child, op, constant) : try CompareFunction.make(constant, op, child)
    }

    /// A constant to combine with `child`: a value of it (40%), a value between two neighbouring values
    /// of it (12.345 between 12.34 and 12.35; half a unit of the last decimal place from a value; the
    /// next float up or down; the integer next to one) (40%), another value, or null (5%).
    public mutating func constant(for child: any ArrayNode) throws -> Scalar {
        let dtype = child.dtype.with(.nonNullable)
        if chance(0.05) { return .null(dtype) }
        if child.count > 0, chance(0.8) {
            if chance(0.5), let between = try neighbourConstant(child, dtype) { return between }
            let s = try child.scalar(at: int(0...(child.count - 1)))
            if !s.isNull { return Scalar(s.value, dtype) }
        }
        return Scalar(value(dtype), dtype)
    }

    /// A number between two neighbouring values of `child` (or next to one of them), or nil when the
    /// child holds no numbers.
    mutating func neighbourConstant(_ child: any ArrayNode, _ dtype: DType) throws -> Scalar? {
        guard case .primitive(let p, _) = dtype else { return nil }
        var seen = Set<ScalarValue>()
        for _ in 0..<Swift.min(child.count, 48) {
            let v = try child.scalar(at: int(0...(child.count - 1))).value
            if !v.isNull { seen.insert(v) }
        }
        let sorted = seen.sorted(by: AggregatePartial.less)
        guard let first = sorted.first else { return nil }
        let i = int(0...(sorted.count - 1))
        let (a, b) = (sorted[i], i + 1 < sorted.count ? sorted[i + 1] : first)
        let v: ScalarValue
        switch (a, b) {
        case (.float(let x), .float(let y)):
            switch int(0...3) {
            case 0 where y > x && (x + (y - x) / 2).isFinite: v = Self.float(x + (y - x) / 2, p)
            case 1:
                // Half a unit of the last decimal place: exactly where rounding to nearest goes wrong.
                let half = 0.5 / Self.powersOfTen[int(0...3)]
                v = Self.float(chance(0.5) ? x + half : x - half, p)
            case 2: v = .float(p == .float32 ? Double(Float(x).nextUp) : x.nextUp)
            default: v = .float(p == .float32 ? Double(Float(x).nextDown) : x.nextDown)
            }
        case (.int(let x), .int(let y)):
            // The gap between the neighbours, at most 2^30 (Int64.max - Int64.min does not fit).
            let (gap, wide) = y.subtractingReportingOverflow(x)
            let room: Int64 = y <= x ? 0 : wide ? 1 << 30 : Swift.min(gap - 1, 1 << 30)
            let step: Int64 = room > 0 ? Int64(int(1...Int(room))) : 1
            let (up, overflow) = x.addingReportingOverflow(chance(0.7) ? step : -step)
            v = overflow ? a : .int(up)
        case (.uint(let x), .uint(let y)):
            let step: UInt64 = y > x && y - x > 1 ? UInt64(int(1...Int(Swift.min(y - x - 1, 1 << 30)))) : 1
            v = chance(0.7) ? (x <= UInt64.max - step ? .uint(x + step) : a) : (x >= step ? .uint(x - step) : a)
        default:
            return nil
        }
        return v.fits(dtype) ? Scalar(v, dtype) : Scalar(a, dtype)
    }

    /// A node with parent encoding `parent` over `child` (in slot 0 or, for binary functions, either
    /// slot): compare, like, arithmetic, cast, aggregates, filter, take and slice. Nil when `parent`
    /// is not one of those or does not apply to the child's type.
    public mutating func parent(_ parent: EncodingID, over child: any ArrayNode) throws -> (any ArrayNode)? {
        let n = child.count
        switch parent {
        case CompareFunction.id:
            return try compare(child)
        case LikeFunction.id:
            guard case .utf8 = child.dtype else { return nil }
            let word = n > 0 ? (try child.scalar(at: int(0...(n - 1))).value).utf8Text ?? "a" : "a"
            let body = String(word.prefix(int(0...3)))
            let pattern = pick([body, body + "%", "%" + body, "%" + body + "%", "_" + body, body + "_%", "%", ""])
            return try LikeFunction.make(child, pattern: pattern, negated: chance(0.3))
        case ArithmeticFunction.id:
            guard case .primitive = child.dtype else { return nil }
            let op = pick(ArithmeticOperator.allCases)
            let c = ConstantArray(
                chance(0.1)
                    ? Scalar(zero(child.dtype), child.dtype.with(.nonNullable))
                    : try constant(for: child), count: n)
            return chance(0.7) ? try ArithmeticFunction.make(child, op, c) : try ArithmeticFunction.make(c, op, child)
        case NegateFunction.id:
            guard case .primitive = child.dtype else { return nil }
            return try NegateFunction.make(child)
        case NotFunction.id:
            guard case .bool = child.dtype else { return nil }
            return try NotFunction.make(child)
        case IsNullFunction.id:
            return try IsNullFunction.make(child)
        case CastFunction.id:
            let targets: [DType] = [
                .primitive(.int64, .nullable), .primitive(.int32, .nullable),
                .primitive(.uint8, .nullable), .primitive(.float64, .nullable), .utf8(.nullable),
            ]
            return try? CastFunction.make(child, to: pick(targets).with(child.dtype.nullability))
        case FilterArray.id:
            let bits = Bitmap(count: n) { _ in chance(0.5) }
            if chance(0.3) {
                let valid = Bitmap(count: n) { _ in chance(0.8) }
                return try FilterArray(
                    child, mask: BoolArray(bits: bits, validity: .bitmap(valid), nullability: .nullable))
            }
            return try FilterArray(child, bitmap: bits)
        case TakeArray.id:
            let m = count(max: 2 * Swift.max(n, 1))
            let nulls = chance(0.2)
            var indices: [Int64?] = []
            for _ in 0..<m {
                if nulls && chance(0.2) {
                    indices.append(nil)
                } else if n == 0 || chance(0.02) {
                    indices.append(Int64(n + int(0...3)))  // out of range: must be an error, not a crash
                } else {
                    indices.append(Int64(int(0...(n - 1))))
                }
            }
            return try TakeArray(
                child, indices: nulls ? PrimitiveArray(indices) : PrimitiveArray(indices.map { $0 ?? 0 }))
        case SliceArray.id:
            let start = int(0...n)
            return try SliceArray(child, start: start, length: int(0...(n - start)))
        default:
            for kind in AggregateFunction.Kind.allCases where AggregateFunction(kind).encoding == parent {
                return try? AggregateFunction(kind).make(child)
            }
            return nil
        }
    }

    private func zero(_ dtype: DType) -> ScalarValue {
        guard case .primitive(let p, _) = dtype else { return .null }
        return p.isFloat ? .float(0) : p.isUnsignedInteger ? .uint(0) : .int(0)
    }
}

extension ScalarValue {
    var utf8Text: String? { if case .utf8(let s) = self { s } else { nil } }
}
