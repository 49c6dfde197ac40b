import Eddy
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
        for _ in 0..<r.int(1...3) {
            let kind = r.int(0...5)
            let m = tree.count
            switch kind {
            case 0 where m > 0 && !tree.dtype.isBool:
                // Compare with a value that occurs in the column (or a fresh one), on either side.
                let pick = try column.count > 0 && r.chance(0.7)
                    ? column.scalar(at: r.int(0...(column.count - 1))) : Scalar(r.value(tree.dtype), tree.dtype)
                let constant = ConstantArray(Scalar(pick.value, tree.dtype.with(r.chance(0.2) ? .nullable : .nonNullable)), count: m)
                let op = CompareOperator.allCases[r.int(0...5)]
                tree = r.chance(0.8) ? try CompareFunction.make(tree, op, constant) : try CompareFunction.make(constant, op, tree)
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
                tree = try TakeArray(tree, indices: r.chance(0.3) ? try r.encode(indices as! PrimitiveArray, depth: 1) : indices)
                steps.append("take \(k)")
            case 4:
                let start = r.int(0...m)
                let len = r.int(0...(m - start))
                tree = try SliceArray(tree, start: start, length: len)
                steps.append("slice \(start)+\(len)")
            default:
                if tree.dtype.isBool || m == 0 { continue }
                let other = try r.encode(column.count == m ? column : r.column(tree.dtype, count: m), depth: 2)
                guard other.dtype.equalsIgnoringNullability(tree.dtype) else { continue }
                let op = CompareOperator.allCases[r.int(0...5)]
                tree = try CompareFunction.make(tree, op, other)
                steps.append("compare \(op.rawValue) column")
            }
        }
        return Case(tree: tree, description: "seed \(seed): \(dtype) n=\(n) " + steps.joined(separator: " | ")
                        + "\n" + encoded.treeDescription())
    }

    @Test(arguments: 0..<8)
    func kernelsAgreeWithDecodeThenCompute(batch: Int) throws {
        let session = Session()
        var executed = 0
        var fired: Set<String> = []
        for i in 0..<500 {
            let seed = UInt64(batch * 1_000_003 + i)
            let c: Case
            do {
                c = try Self.makeCase(seed: seed)
            } catch {
                Issue.record("seed \(seed): building the case failed: \(error)")
                continue
            }
            let trace = ExecutionTrace()
            let fast: Result<any ArrayNode, any Error> = Result { try session.makeContext(trace: trace).execute(c.tree) }
            for e in trace.events where e.step == .executeParent { fired.insert(e.name) }
            let slow: Result<any ArrayNode, any Error> = Result {
                try session.makeContext(options: ExecutionOptions(useKernels: false)).execute(c.tree)
            }
            switch (fast, slow) {
            case (.success(let f), .success(let s)):
                #expect(f.isCanonical, "\(c.description)")
                try expectSameValues(f, s, c.description)
                executed += 1
            case (.failure(let fe), .failure):
                // Both refuse (an out-of-range take, say): the same kind of error either way.
                #expect((fe as? EddyError)?.code == .outOfBounds, "\(c.description)\n\(fe)")
            case (.failure(let e), .success):
                Issue.record("kernels failed where the reference did not: \(e)\n\(c.description)")
            case (.success, .failure(let e)):
                Issue.record("the reference failed where kernels did not: \(e)\n\(c.description)")
            }
        }
        #expect(executed > 400)
        // Every built-in kernel ran somewhere in this batch, or the comparison above proves little.
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
