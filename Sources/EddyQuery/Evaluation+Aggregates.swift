@_spi(Host) import Eddy
import EddyIO

/// Aggregates: each batch folded into per-item partials, the partials finished into one row.
extension Evaluation {
    /// The aggregates' values, one row.
    func writeAggregates(_ accumulators: [AggregatePartial], into writer: ResultWriter) throws {
        let values = try zip(items, accumulators).map { item, acc -> any ArrayNode in
            guard case .aggregate(let f, let arg, _) = item.bound else { fatalError("checked above") }
            do {
                return ConstantArray(try finish(f, arg?.dtype ?? .bool(.nonNullable), acc), count: 1)
            } catch var e as EddyError {
                // A total that does not fit its type belongs to no row: name the item and the input.
                let kept = predicate == nil ? "" : "--where kept "
                e.message += " (\(item.name) over the \(rowsSelected) rows \(kept)of \(reader.path))"
                throw e
            }
        }
        try writer.write(values)
    }

    /// Folds one batch into an aggregate's accumulator, running the aggregate through the executor
    /// (so its kernels, built-in or plugin, apply) and merging the per-batch results.
    func fold(
        _ f: AggregateFunction, _ arg: Bound?, _ inputs: [any ArrayNode], _ count: Int,
        into acc: inout AggregatePartial
    ) throws {
        guard let arg else {
            acc.rows += count
            return
        }
        if try foldFusedSum(f, arg, inputs, count, into: &acc) { return }
        var node = try arg.node(inputs, count: count)
        if f.kind == .mean, node is FilterArray {
            // A mean is a count and a sum: over a lazy filter each would filter again, so the filtered
            // argument is built once.
            node = try context.executeUntil(node, .columnar)
        }
        func run(_ kind: AggregateFunction.Kind) throws -> Scalar {
            try context.execute(AggregateArray(AggregateFunction(kind), node)).scalar(at: 0)
        }
        /// A batch's sum: an integer sum past 64 bits is not an error here (only the total must fit):
        /// then the batch's exact partial, summed in 128 bits, stands in.
        enum BatchSum { case integer(Int128), float(Double), none }
        func batchSum() throws -> BatchSum {
            let sum: Result<Scalar, any Error> = Result { try run(.sum) }
            if case .failure(let e as EddyError) = sum, e.code == .overflow, e.source == nil {
                let p = try AggregatePartial.fused(node, context, order: false)
                return p.nonNull == 0 ? .none : .integer(p.intSum)
            }
            switch try sum.get().value {
            case .int(let v): return .integer(Int128(v))
            case .uint(let v): return .integer(Int128(v))
            case .float(let v): return .float(v)
            default: return .none
            }
        }
        acc.rows += count
        switch f.kind {
        case .countAll: break
        case .count: acc.nonNull += Int(try run(.count).int64Value ?? 0)
        case .sum:
            // A sum is null exactly when the batch has no valid value; that is all finish() needs.
            switch try batchSum() {
            case .integer(let v): acc.intSum += v; acc.nonNull += 1
            case .float(let v): acc.floatSum += v; acc.nonNull += 1
            case .none: break
            }
        case .mean:
            let n = Int(try run(.count).int64Value ?? 0)
            acc.nonNull += n
            if n > 0 {
                switch try batchSum() {
                case .integer(let v): acc.intSum += v
                case .float(let v): acc.floatSum += v
                case .none: break
                }
            }
        case .min, .max:
            let v = try run(f.kind).value
            if !v.isNull {
                acc.nonNull += 1
                acc.min = acc.min.isNull || AggregatePartial.less(v, acc.min) ? v : acc.min
                acc.max = acc.max.isNull || AggregatePartial.less(acc.max, v) ? v : acc.max
            }
        @unknown default:
            throw EddyError(.unsupported, "aggregate \(f) is not supported by this host")
        }
    }

    /// Sum or mean of `x + y` or `x - y` over packed Int64 columns whose bounds rule out overflow:
    /// Σx ± Σy over the rows where both are valid, from the packed words (no array of x ± y is built).
    /// Not under a trace, which shows the executor's steps. False when it does not apply.
    private func foldFusedSum(
        _ f: AggregateFunction, _ arg: Bound, _ inputs: [any ArrayNode], _ count: Int, into acc: inout AggregatePartial
    ) throws -> Bool {
        if trace == nil, f.kind == .sum || f.kind == .mean,
            case .function(let function, let operands, let type) = arg, type.ptype == .int64,
            let arithmetic = function as? ArithmeticFunction, operands.count == 2,
            let fused = AggregatePartial.sumOfSumOrDifference(
                arithmetic.op, try operands[0].node(inputs, count: count), try operands[1].node(inputs, count: count))
        {
            acc.rows += count
            if fused.count > 0 {
                acc.intSum += fused.sum
                acc.nonNull += f.kind == .sum ? 1 : fused.count
            }
            return true
        }
        return false
    }

    func finish(_ f: AggregateFunction, _ input: DType, _ acc: AggregatePartial) throws -> Scalar {
        try f.finish(acc, input: input)
    }
}
