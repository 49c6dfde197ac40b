/// `coalesce(a, b, …)`: the first non-null argument, per row. Arguments share one type.
public struct CoalesceFunction: ScalarFunction {
    /// The encoding of `coalesce` nodes.
    public static let id = EncodingID("eddy.coalesce")
    /// The `coalesce` function.
    public init() {}
    public var encoding: EncodingID { Self.id }
    public var description: String { "coalesce" }

    public func returnType(_ arguments: [DType]) throws -> DType {
        guard let first = arguments.first(where: { $0 != .null }) ?? arguments.first else {
            throw EddyError(.invalidArgument, "coalesce needs arguments")
        }
        for a in arguments where a != .null && !a.equalsIgnoringNullability(first) {
            throw EddyError(.typeMismatch, "coalesce arguments differ in type: \(first) and \(a)")
        }
        // Non-null as soon as one argument is non-nullable.
        let nonNull = arguments.contains { !$0.isNullable }
        return first.with(nonNull ? .nonNullable : .nullable)
    }

    /// A lazy node computing `coalesce` of `arguments`; non-nullable as soon as one argument is.
    /// - Throws: ``EddyError/Code/invalidArgument`` for no arguments or arguments of different lengths;
    ///   ``EddyError/Code/typeMismatch`` when their types differ (nullability and the `null` type aside).
    public static func make(_ arguments: [any ArrayNode]) throws -> ScalarFnArray {
        try ScalarFnArray(CoalesceFunction(), arguments)
    }

    public func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode {
        let dtype = try returnType(arguments.map(\.dtype))
        // The first argument that has no nulls at all ends the search for every row.
        if let first = arguments.first, case .allValid = Canonical.validity(of: first), first.dtype == dtype {
            return first
        }
        var b = ArrayBuilder(dtype: dtype, capacity: count)
        for i in 0..<count {
            var v: ScalarValue = .null
            for a in arguments {
                let s = try a.scalar(at: i)
                if !s.isNull {
                    v = s.value
                    break
                }
            }
            b.append(v)
        }
        return try b.finish()
    }
}
