/// Lazy filter: the child's elements whose mask element is true (a null mask element drops the row).
public final class FilterArray: ArrayNode {
    public static let id = EncodingID("eddy.filter")
    /// The array being filtered.
    public let child: any ArrayNode
    /// A bool array of the child's length; rows where it is true (and not null) are kept.
    public let mask: any ArrayNode
    public let count: Int

    /// - Parameter child: the array to filter.
    /// - Parameter mask: a bool array of the child's length; true (and not null) keeps the row.
    /// - Parameter count: the number of true mask elements, if known (else it is computed when the
    ///   mask is canonical or constant).
    /// - Throws: unless the mask is bool of the child's length.
    public init(_ child: any ArrayNode, mask: any ArrayNode, count: Int? = nil) throws {
        guard mask.dtype.isBool else { throw EddyError(.typeMismatch, "filter mask must be bool, got \(mask.dtype)") }
        guard mask.count == child.count else {
            throw EddyError(.invalidArgument, "filter mask has length \(mask.count), array has \(child.count)")
        }
        self.child = child
        self.mask = mask
        if let count {
            self.count = count
        } else if let m = mask as? BoolArray {
            self.count = m.trueAndValid.trueCount
        } else if let c = mask as? ConstantArray {
            self.count = c.scalar.boolValue == true ? child.count : 0
        } else {
            throw EddyError(.invalidArgument, "filter over an encoded mask needs its true count")
        }
    }

    /// Filters with a bitmap mask.
    public convenience init(_ child: any ArrayNode, bitmap: Bitmap) throws {
        try self.init(child, mask: BoolArray(uncheckedBits: bitmap))
    }

    public var encoding: EncodingID { Self.id }
    public var dtype: DType { child.dtype }
    public var children: [any ArrayNode] { [child, mask] }
    public var metadataDescription: String { "kept=\(count)" }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try FilterArray(children[0], mask: children[1], count: count)
    }

    public func reduce() throws -> (any ArrayNode)? {
        if count == child.count { return child }
        if let c = child as? ConstantArray { return ConstantArray(c.scalar, count: count) }
        return nil
    }

    /// The rows the canonical mask keeps.
    public var maskBits: Bitmap? { (mask as? BoolArray)?.trueAndValid }

    /// Reference path: decodes both children and copies the kept elements one at a time.
    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard let bits = maskBits else { return .executeChild(1, .canonical) }
        guard child.isCanonical else { return .executeChild(0, .canonical) }
        var b = ArrayBuilder(dtype: dtype, capacity: count)
        try bits.forEachSetBit { b.append(try child.scalar(at: $0)) }
        return .done(try b.finish())
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        var seen = 0
        for i in 0..<mask.count where try mask.scalar(at: i).boolValue == true {
            if seen == index { return try child.scalar(at: i) }
            seen += 1
        }
        throw EddyError(.outOfBounds, "filter element \(index) not found")
    }
}
