extension ConstantArray {
    /// The constant's kernels: a compare against a columnar array at the array's cost alone, and
    /// aggregates in O(1).
    static func register(into registrar: PluginRegistrar) {
        registrar.compareWithArray(on: ConstantArray.self, name: "compare with a constant") { c, op, other, _ in
            guard other.isColumnar else { return nil }
            return try Compare.evaluate(other, op.swapped, c, count: c.count)
        }
        registrar.fusedAggregates(on: ConstantArray.self)
    }

    /// The aggregate partial of the constant: its value, weighed by the count (O(1)).
    func aggregatePartial() -> AggregatePartial {
        var p = AggregatePartial()
        p.add(scalar.value, weight: count)
        return p
    }
}
