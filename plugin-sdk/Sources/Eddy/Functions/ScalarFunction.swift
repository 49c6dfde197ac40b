/// A function applied element-wise to its argument arrays, evaluated lazily as a ``ScalarFnArray`` node.
///
/// The function names the encoding of the nodes that apply it, so that kernels can be keyed on it
/// (for example `eddy.compare` over `eddy.dict`).
public protocol ScalarFunction: Sendable, CustomStringConvertible {
    /// The encoding id of nodes applying this function.
    var encoding: EncodingID { get }
    /// The result type for arguments of the given types.
    /// - Throws: ``EddyError/Code/typeMismatch`` when the arguments do not fit.
    func returnType(_ arguments: [DType]) throws -> DType
    /// Computes the result from arguments that are each canonical or constant, all of length `count`.
    func execute(_ arguments: [any ArrayNode], count: Int, ctx: ExecutionCtx) throws -> any ArrayNode
}

/// A lazy node applying a ``ScalarFunction`` to child arrays.
public final class ScalarFnArray: ArrayNode {
    /// The function applied.
    public let function: any ScalarFunction
    /// The argument arrays, all of length ``count``: the node's children, in order.
    public let arguments: [any ArrayNode]
    /// The function's encoding, stored so that dispatch does not call through the function.
    public let encoding: EncodingID
    public let dtype: DType
    public let count: Int

    /// - Throws: when the arguments' lengths differ or their types do not fit the function.
    public init(_ function: any ScalarFunction, _ arguments: [any ArrayNode]) throws {
        guard let first = arguments.first else { throw EddyError(.invalidArgument, "\(function) needs arguments") }
        for a in arguments where a.count != first.count {
            throw EddyError(.invalidArgument, "\(function) arguments differ in length (\(first.count) and \(a.count))")
        }
        self.function = function
        self.arguments = arguments
        self.encoding = function.encoding
        self.count = first.count
        self.dtype = try function.returnType(arguments.map(\.dtype))
    }

    /// A node whose arguments are known to have the given types (no re-validation).
    private init(_ function: any ScalarFunction, _ arguments: [any ArrayNode], dtype: DType, count: Int) {
        self.function = function
        self.arguments = arguments
        self.encoding = function.encoding
        self.dtype = dtype
        self.count = count
    }

    public var children: [any ArrayNode] { arguments }
    public var metadataDescription: String { "\(function)" }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        // Execution replaces a child by an equivalent of the same dtype and length: skip re-checking.
        if children.count == arguments.count,
            zip(children, arguments).allSatisfy({ $0.count == count && $0.dtype == $1.dtype })
        {
            return ScalarFnArray(function, children, dtype: dtype, count: count)
        }
        return try ScalarFnArray(function, children)
    }

    public func reduce() throws -> (any ArrayNode)? {
        // All-constant arguments: evaluate once on one row.
        guard count != 1, arguments.allSatisfy({ $0.encoding == ConstantArray.id }) else { return nil }
        // No rows: nothing is evaluated (decoding first would not evaluate the value either, nor fail on it).
        if count == 0 {
            let empty = ArrayBuilder(dtype: dtype, capacity: 0)
            return try empty.finish()
        }
        let one = arguments.map { ConstantArray(($0 as! ConstantArray).scalar, count: 1) as any ArrayNode }
        let r = try function.execute(one, count: 1, ctx: ExecutionCtx(snapshot: KernelSnapshot.empty))
        return ConstantArray(try r.scalar(at: 0), count: count)
    }

    /// Above this many arguments (a long `and`/`or` chain), the arguments are executed here in one
    /// pass instead of one executor step each: each step rebuilds the node, so step by step is
    /// quadratic in the argument count.
    static let wideArgumentCount = 16

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard let slot = arguments.firstIndex(where: { !$0.isColumnar }) else {
            return .done(try function.execute(arguments, count: count, ctx: ctx))
        }
        guard arguments.count > Self.wideArgumentCount else { return .executeChild(slot, .columnar) }
        var executed = arguments
        for k in slot..<executed.count where !executed[k].isColumnar {
            executed[k] = try ctx.executeUntil(executed[k], .columnar)
        }
        return .done(try function.execute(executed, count: count, ctx: ctx))
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        let one = try arguments.map { ConstantArray(try $0.scalar(at: index), count: 1) as any ArrayNode }
        return try function.execute(one, count: 1, ctx: ExecutionCtx(snapshot: KernelSnapshot.empty)).scalar(at: 0)
    }
}

extension KernelSnapshot {
    /// A snapshot with no kernels, for evaluating single rows.
    static let empty = KernelSnapshot(generation: 0, width: 0, executeParent: [], reduceParent: [])
}
