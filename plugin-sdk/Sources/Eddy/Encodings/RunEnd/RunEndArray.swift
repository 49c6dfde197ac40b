/// Compressed array of runs: `values[j]` repeats up to (not including) logical position `ends[j]`.
///
/// `offset` lets a slice start inside a run without rewriting the ends: element `i` is the value of
/// the first run whose end is greater than `offset + i`.
public final class RunEndArray: ArrayNode {
    public static let id = EncodingID("eddy.runend")
    /// Non-nullable integers, positive and strictly increasing: exclusive run ends in logical positions,
    /// before ``offset`` is applied.
    public let ends: any ArrayNode
    /// One value per run: `values[j]` fills the positions from `ends[j - 1]` (0 for the first run)
    /// up to `ends[j]`.
    public let values: any ArrayNode
    /// The logical position of element 0: element `i` is at position `offset + i`.
    public let offset: Int
    public let count: Int

    /// - Throws: when ends are not non-nullable integers, counts differ, or (for canonical ends)
    ///   ends are not strictly increasing or do not cover `offset + count`.
    public init(ends: any ArrayNode, values: any ArrayNode, offset: Int = 0, count: Int? = nil) throws {
        guard ends.dtype.isInteger, !ends.dtype.isNullable else {
            throw EddyError(.typeMismatch, "run ends must be non-nullable integers, got \(ends.dtype)")
        }
        guard ends.count == values.count else {
            throw EddyError(.invalidArgument, "run-end has \(ends.count) ends but \(values.count) values")
        }
        self.ends = ends
        self.values = values
        self.offset = offset
        if let e = ends as? PrimitiveArray {
            let list = e.uncheckedInt64Values()
            for k in list.indices.dropFirst() where list[k] <= list[k - 1] {
                throw EddyError(
                    .invalidArgument, "run ends must increase strictly (end \(list[k]) after \(list[k - 1]))")
            }
            if let first = list.first, first <= 0 {
                throw EddyError(.invalidArgument, "first run end must be positive")
            }
            let total = Int(list.last ?? 0)
            let n = count ?? (total - offset)
            guard n >= 0, offset + n <= total else {
                throw EddyError(.invalidArgument, "run ends cover \(total) rows, fewer than offset \(offset) + \(n)")
            }
            self.count = n
        } else {
            guard let count else { throw EddyError(.invalidArgument, "run-end over encoded ends needs a count") }
            self.count = count
        }
    }

    /// Run-end encodes a canonical array (adjacent equal values, nulls included, form one run).
    public static func encode(_ array: any ArrayNode) throws -> RunEndArray {
        var ends: [UInt32] = []
        var starts: [Int64] = []
        var previous: Scalar?
        for i in 0..<array.count {
            let s = try array.scalar(at: i)
            if let p = previous, p.value.isIdentical(to: s.value) {
                ends[ends.count - 1] = UInt32(i + 1)
            } else {
                ends.append(UInt32(i + 1))
                starts.append(Int64(i))
                previous = s
            }
        }
        let values = try Canonical.take(array, indices: PrimitiveArray(starts))
        return try RunEndArray(ends: PrimitiveArray(ends), values: values.withDType(array.dtype))
    }

    public var encoding: EncodingID { Self.id }
    public var dtype: DType { values.dtype }
    public var children: [any ArrayNode] { [ends, values] }
    public var metadataDescription: String {
        offset == 0 ? "runs=\(ends.count)" : "runs=\(ends.count) offset=\(offset)"
    }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try RunEndArray(ends: children[0], values: children[1], offset: offset, count: count)
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard let e = ends as? PrimitiveArray else { return .executeChild(0, .canonical) }
        guard values.isCanonical else { return .executeChild(1, .canonical) }
        return .done(try Canonical.take(values, indices: runIndices(e)))
    }

    /// For each logical element, the index of its run (canonical ends).
    public func runIndices(_ ends: PrimitiveArray) -> PrimitiveArray {
        let list = ends.uncheckedInt64Values()
        var run = firstRun(list)
        return PrimitiveArray.build(UInt32.self, count: count) { out in
            for i in 0..<count {
                while Int(list[run]) <= offset + i { run += 1 }
                out[i] = UInt32(run)
            }
        }
    }

    /// The run holding logical element 0.
    func firstRun(_ ends: [Int64]) -> Int { RunEndArray.search(ends, Int64(offset)) }

    /// The first run whose end is greater than `position`.
    static func search(_ ends: [Int64], _ position: Int64) -> Int {
        var lo = 0
        var hi = ends.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ends[mid] <= position { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        var lo = 0
        var hi = ends.count
        let position = Int64(offset + index)
        while lo < hi {
            let mid = (lo + hi) / 2
            if try ends.scalar(at: mid).int64Value! <= position { lo = mid + 1 } else { hi = mid }
        }
        return try values.scalar(at: lo)
    }
}
