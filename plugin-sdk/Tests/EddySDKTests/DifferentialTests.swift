@_spi(Host) import Eddy
import EddyTestSupport
import Testing

/// Random encodings nested at least three deep under random compare / boolean / filter / take / slice
/// trees: executing with every kernel must give exactly what pure decode-then-compute gives.
@Suite struct DifferentialTests {
    /// Builds one random expression tree over encoded columns, seeded.
    struct Case {
        let tree: any ArrayNode
        let description: String
    }

    static func makeCase(seed: UInt64) throws -> Case {
        var r = RandomArrays(seed: seed)
        let dtype = RandomArrays.dtypes[r.int(0...(RandomArrays.dtypes.count - 1))]
        let n = r.int(0...60)
        let column = r.column(dtype, count: n)
        let encoded = try r.encode(column, depth: r.int(3...4))
        var tree: any ArrayNode = encoded
        var steps: [String] = []
        var aggregated = false
        if r.chance(0.2) {
            // Aggregates straight over the encoded column, where the fused kernels apply.
            let kind = AggregateFunction.Kind.allCases[r.int(0...(AggregateFunction.Kind.allCases.count - 1))]
            if let node = try? AggregateFunction(kind).make(tree) {
                return Case(
                    tree: node,
                    description: "seed \(seed): \(dtype) n=\(n) aggregate \(kind.rawValue)\n"
                        + encoded.treeDescription())
            }
        }
        for _ in 0..<r.int(1...3) where !aggregated {
            let kind = r.int(0...10)
            let m = tree.count
            switch kind {
            case 0 where m > 0 && !tree.dtype.isBool && tree.dtype.ptype != nil || (kindIsCompareOnText(tree) && m > 0):
                // Compare with a value that occurs in the column (or a fresh one), on either side.
                let pick =
                    try column.count > 0 && column.dtype.equalsIgnoringNullability(tree.dtype) && r.chance(0.7)
                    ? column.scalar(at: r.int(0...(column.count - 1))) : Scalar(r.value(tree.dtype), tree.dtype)
                let constant = ConstantArray(
                    Scalar(pick.value, tree.dtype.with(r.chance(0.2) ? .nullable : .nonNullable)), count: m)
                let op = CompareOperator.allCases[r.int(0...5)]
                tree =
                    r.chance(0.8)
                    ? try CompareFunction.make(tree, op, constant) : try CompareFunction.make(constant, op, tree)
                steps.append("compare \(op.rawValue) \(pick)")
            case 1 where tree.dtype.isBool:
                let other = try r.encode(r.column(.bool(r.chance(0.5) ? .nullable : .nonNullable), count: m), depth: 2)
                switch r.int(0...3) {
                case 0: tree = try BooleanFunction.and(tree, other); steps.append("and")
                case 1: tree = try BooleanFunction.or(other, tree); steps.append("or")
                case 2: tree = try NotFunction.make(tree); steps.append("not")
                default: tree = try IsNullFunction.make(tree); steps.append("is_null")
                }
            case 2:
                let mask = BoolArray((0..<m).map { _ in r.chance(0.15) ? nil : r.chance(0.5) })
                tree = try FilterArray(tree, mask: mask)
                steps.append("filter")
            case 3 where m > 0:
                let k = r.int(0...m + 3)
                let nullable = r.chance(0.3)
                let idx: [Int32?] = (0..<k).map { _ in nullable && r.chance(0.2) ? nil : Int32(r.int(0...(m - 1))) }
                let indices: any ArrayNode = nullable ? PrimitiveArray(idx) : PrimitiveArray(idx.map { $0! })
                tree = try TakeArray(
                    tree, indices: r.chance(0.3) ? try r.encode(indices as! PrimitiveArray, depth: 1) : indices)
                steps.append("take \(k)")
            case 4:
                let start = r.int(0...m)
                let len = r.int(0...(m - start))
                tree = try SliceArray(tree, start: start, length: len)
                steps.append("slice \(start)+\(len)")
            case 6 where tree.dtype.ptype != nil:
                let op = ArithmeticOperator.allCases[r.int(0...3)]
                let value =
                    try column.count > 0 && column.dtype.equalsIgnoringNullability(tree.dtype) && r.chance(0.5)
                    ? column.scalar(at: r.int(0...(column.count - 1))).value : r.value(tree.dtype)
                let constant = ConstantArray(
                    Scalar(value.isNull ? r.value(tree.dtype) : value, tree.dtype.with(.nonNullable)), count: m)
                if r.chance(0.2), let negated = try? NegateFunction.make(tree) {
                    tree = negated
                    steps.append("negate")
                    continue
                }
                tree =
                    r.chance(0.7)
                    ? try ArithmeticFunction.make(tree, op, constant) : try ArithmeticFunction.make(constant, op, tree)
                steps.append("arithmetic \(op.rawValue) \(value)")
            case 7:
                let targets: [DType] = [
                    .primitive(.int64, .nonNullable), .primitive(.uint8, .nonNullable),
                    .primitive(.float64, .nonNullable), .primitive(.int16, .nonNullable),
                    .bool(.nonNullable), .utf8(.nonNullable),
                ]
                let target = targets[r.int(0...(targets.count - 1))]
                guard let node = try? CastFunction.make(tree, to: target) else { continue }
                tree = node
                steps.append("cast \(target)")
            case 8 where tree.dtype.isUTF8:
                let patterns = ["a%", "%b", "%b%", "_", "%", "a_c", "Z%h", "%🙂", "", "emoji%"]
                let pattern = patterns[r.int(0...(patterns.count - 1))]
                tree = try LikeFunction.make(tree, pattern: pattern, negated: r.chance(0.3))
                steps.append("like \(pattern)")
            case 9:
                let kind = AggregateFunction.Kind.allCases[r.int(0...(AggregateFunction.Kind.allCases.count - 1))]
                guard let node = try? AggregateFunction(kind).make(tree) else { continue }
                tree = node
                aggregated = true
                steps.append("aggregate \(kind.rawValue)")
            case 10 where tree.dtype != .null && m > 0:
                let fill =
                    try column.count > 0 && column.dtype.equalsIgnoringNullability(tree.dtype)
                    ? column.scalar(at: r.int(0...(column.count - 1))).value : .null
                guard !fill.isNull,
                    let v = try? Canonical.repeating(Scalar(fill, tree.dtype.with(.nonNullable)), count: m),
                    let node = try? CoalesceFunction.make([tree, v])
                else { continue }
                tree = node
                steps.append("coalesce \(fill)")
            default:
                if tree.dtype.isBool || m == 0 || aggregated { continue }
                let other = try r.encode(column.count == m ? column : r.column(tree.dtype, count: m), depth: 2)
                guard other.dtype.equalsIgnoringNullability(tree.dtype) else { continue }
                let op = CompareOperator.allCases[r.int(0...5)]
                tree = try CompareFunction.make(tree, op, other)
                steps.append("compare \(op.rawValue) column")
            }
        }
        return Case(
            tree: tree,
            description: "seed \(seed): \(dtype) n=\(n) " + steps.joined(separator: " | ")
                + "\n" + encoded.treeDescription())
    }

    @Test(arguments: 0..<8)
    func kernelsAgreeWithDecodeThenCompute(batch: Int) throws {
        let session = Session()
        var executed = 0
        for i in 0..<500 {
            let seed = UInt64(batch * 1_000_003 + i)
            let c: Case
            do {
                c = try Self.makeCase(seed: seed)
            } catch {
                Issue.record("seed \(seed): building the case failed: \(error)")
                continue
            }
            let fast: Result<any ArrayNode, any Error> = Result { try session.makeContext().execute(c.tree) }
            let slow: Result<any ArrayNode, any Error> = Result {
                try session.makeContext(options: ExecutionOptions(useKernels: false)).execute(c.tree)
            }
            switch (fast, slow) {
            case (.success(let f), .success(let s)):
                #expect(f.isCanonical, "\(c.description)")
                try expectSameValues(f, s, c.description, approximateFloats: true)
                executed += 1
            case (.failure(let fe), .failure(let se)):
                // Both refuse (an out-of-range take, an overflow, a bad cast): the same kind of error either way.
                #expect((fe as? EddyError)?.code == (se as? EddyError)?.code, "\(c.description)\n\(fe)\n\(se)")
            case (.failure(let e), .success):
                Issue.record("kernels failed where the reference did not: \(e)\n\(c.description)")
            case (.success, .failure(let e)):
                Issue.record("the reference failed where kernels did not: \(e)\n\(c.description)")
            }
        }
        #expect(executed > 350)
    }

    @Test func everyBuiltinKernelIsExercisedByTheGenerator() throws {
        // If a kernel never runs on generated cases, the differential test above proves nothing about it.
        let session = Session()
        var fired: Set<String> = []
        for seed in UInt64(0)..<6000 {
            guard let c = try? Self.makeCase(seed: seed &* 7919) else { continue }
            let trace = ExecutionTrace()
            _ = try? session.makeContext(trace: trace).execute(c.tree)
            for e in trace.events where e.step == .executeParent { fired.insert(e.name) }
        }
        let all = Set(session.kernels.snapshot.entries.flatMap { $0.kernels.map(\.name) })
        #expect(all.subtracting(fired).isEmpty, "kernels never exercised: \(all.subtracting(fired).sorted())")
    }

    @Test func kernelsActuallyFire() throws {
        // Guard against a differential test that passes because no kernel ever runs.
        let session = Session()
        let trace = ExecutionTrace()
        let d = try DictArray(codes: PrimitiveArray([UInt16(0), 1, 1, 0]), values: VarBinArray(["a", "b"]))
        let cmp = try CompareFunction.make(d, .eq, ConstantArray(.utf8("b"), count: 4))
        let out = try session.makeContext(trace: trace).execute(cmp)
        #expect(try values(out) == [.bool(false), .bool(true), .bool(true), .bool(false)])
        #expect(trace.events.contains { $0.step == .executeParent && $0.name == "compare over dictionary values" })
    }
}

func kindIsCompareOnText(_ tree: any ArrayNode) -> Bool { tree.dtype.isUTF8 }
