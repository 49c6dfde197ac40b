/// A two-argument scalar function with a constant on the other side of the child.
struct BinaryCall {
    let function: any ScalarFunction
    let scalar: Scalar
    let side: OperandSide

    init?(_ parent: any ArrayNode, _ slot: Int) {
        guard let fn = parent as? ScalarFnArray, fn.arguments.count == 2, slot == 0 || slot == 1,
            let constant = fn.arguments[1 - slot] as? ConstantArray
        else { return nil }
        function = fn.function
        scalar = constant.scalar
        side = slot == 0 ? .left : .right
    }
}

/// The engine's own node types: only they may carry an encoding in the engine's namespace (`eddy.*`).
enum EngineEncodings {
    static let types: Set<ObjectIdentifier> = Set(
        ([
            PrimitiveArray.self, BoolArray.self, VarBinArray.self, NullArray.self, StructArray.self,
            ConstantArray.self, DictArray.self, RunEndArray.self, FoRArray.self, BitPackedArray.self,
            ChunkedArray.self, SparseArray.self, SliceArray.self, FilterArray.self, TakeArray.self, IntStringArray.self,
            ScalarFnArray.self, AggregateArray.self,
        ] as [any ArrayNode.Type]).map { ObjectIdentifier($0) })

    /// The first node of `tree` (at most `limit` nodes are visited) that claims an `eddy.` encoding
    /// without being the engine's type: a plugin's class posing as a built-in encoding.
    static func impostor(in tree: any ArrayNode, limit: Int = 10_000) -> (any ArrayNode)? {
        var stack: [any ArrayNode] = [tree]
        var visited = 0
        while let node = stack.popLast(), visited < limit {
            visited += 1
            if !types.contains(ObjectIdentifier(type(of: node))) && node.encoding.name.hasPrefix("eddy.") {
                return node
            }
            stack.append(contentsOf: node.children)
        }
        return nil
    }
}

/// Throws ``EddyError/Code/outOfBounds`` with `message` unless `start ..< start + length` lies within
/// `0 ..< count` (checked without overflow): the one range check of the SDK's slices.
func requireRange(_ start: Int, _ length: Int, within count: Int, _ message: @autoclosure () -> String) throws {
    guard start >= 0, length >= 0, start <= count, length <= count - start else {
        throw EddyError(.outOfBounds, message())
    }
}
