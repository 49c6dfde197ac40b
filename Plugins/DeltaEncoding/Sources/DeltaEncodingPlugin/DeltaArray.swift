import Eddy

/// Delta encoding for 64-bit integers that mostly increase (ids, timestamps, counters):
/// element `i` is `base + deltas[0] + … + deltas[i]`, with `deltas[0] == 0`.
///
/// The deltas are an ordinary child array, so the compressor encodes them again: sequential ids
/// become a constant, timestamps a narrow bit-packed array.
public final class DeltaArray: Encoding {
    public static let id = EncodingID("ext.delta")
    public let base: Int64
    public let deltas: any ArrayNode
    public let dtype: DType
    /// Whether every delta is non-negative (known at encode time); lets kernels binary-search.
    public let nonDecreasing: Bool

    public init(base: Int64, deltas: any ArrayNode, nullability: Nullability, nonDecreasing: Bool) {
        self.base = base
        self.deltas = deltas
        self.dtype = .primitive(.int64, nullability)
        self.nonDecreasing = nonDecreasing
    }

    /// Delta-encodes a column with no nulls; nil when a running sum would not fit 64 bits.
    public static func encode(_ column: PrimitiveArray) -> DeltaArray? {
        guard column.ptype == .int64, case .allValid = column.validity, column.count > 0 else { return nil }
        return try? column.withValues(Int64.self) { v -> DeltaArray? in
            var deltas = [Int64](repeating: 0, count: v.count)
            var monotone = true
            for i in 1..<max(v.count, 1) where v.count > 1 {
                let (d, overflow) = v[i].subtractingReportingOverflow(v[i - 1])
                if overflow { return nil }
                deltas[i] = d
                if d < 0 { monotone = false }
            }
            return DeltaArray(
                base: v[0], deltas: PrimitiveArray(deltas), nullability: column.dtype.nullability,
                nonDecreasing: monotone)
        }
    }

    public var count: Int { deltas.count }
    public var children: [any ArrayNode] { [deltas] }
    public var metadataDescription: String { "base=\(base)" + (nonDecreasing ? " non-decreasing" : "") }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        DeltaArray(base: base, deltas: children[0], nullability: dtype.nullability, nonDecreasing: nonDecreasing)
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard let d = deltas as? PrimitiveArray, d.ptype == .int64 else {
            if deltas.isCanonical {
                throw EddyError(
                    .typeMismatch, "ext.delta needs i64 deltas, found \(deltas.dtype)", source: "plugin delta")
            }
            return .executeChild(0, .canonical)
        }
        let values = try d.withValues(Int64.self) { v in
            PrimitiveArray.build(Int64.self, count: v.count, nullability: dtype.nullability) { out in
                var running = base
                for i in 0..<v.count {
                    running &+= v[i]
                    out[i] = running
                }
            }
        }
        return .done(values)
    }

    public func scalar(at index: Int) throws -> Scalar {
        guard index >= 0 && index < count else {
            throw EddyError(.outOfBounds, "index \(index) out of bounds for ext.delta of length \(count)")
        }
        var running = base
        for k in 0...index { running &+= try deltas.scalar(at: k).int64Value ?? 0 }
        return Scalar(.int(running), dtype)
    }
}
