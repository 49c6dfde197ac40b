extension IntStringArray {
    /// Compare `=` / `!=` with a constant that has the format: compare the numbers (no text is built).
    /// Filter and slice the numbers, so that only the rows kept are ever written as text.
    static func register(into registrar: PluginRegistrar) {
        registrar.filterNode(on: IntStringArray.self, name: "filter intstring numbers") { a, filter, _ in
            try a.withNumbers(FilterArray(a.numbers, mask: filter.mask, count: filter.count))
        }
        registrar.slice(on: IntStringArray.self, name: "slice intstring numbers") { a, range, _ in
            try a.withNumbers(SliceArray(a.numbers, start: range.lowerBound, length: range.count))
        }
        registrar.compareWithConstant(on: IntStringArray.self, name: "compare intstring numbers") {
            a, op, scalar, resultType, _ in
            guard op == .eq || op == .ne, case .utf8(let text) = scalar.value, let n = a.number(of: Array(text.utf8))
            else { return nil }
            let constant = ConstantArray(
                Scalar(.uint(n), .primitive(.uint64, scalar.dtype.nullability)), count: a.count)
            let node = try CompareFunction.make(a.numbers, op, constant)
            return node.dtype == resultType ? node : nil
        }
    }
}
