/// Canonical struct array: one child array per field, all of the same length, and a validity.
public final class StructArray: ArrayNode {
    public static let id = EncodingID("eddy.struct")
    /// One child array per field, in field order, each of length ``count``.
    public let fields: [any ArrayNode]
    /// The field names, one per element of ``fields``.
    public let names: [String]
    /// Which rows are valid; the fields of a null row are ignored.
    public let validity: Validity
    public let count: Int
    public let dtype: DType

    /// A struct array of `count` rows whose field `k` is named `names[k]` and holds `fields[k]`. `validity`
    /// covers `count` rows and must be `.allValid` unless `nullability` is `.nullable` (neither is checked).
    /// - Throws: ``EddyError/Code/invalidArgument`` when names and fields differ in number, or a field's
    ///   length is not `count`.
    public init(
        names: [String], fields: [any ArrayNode], count: Int, validity: Validity = .allValid,
        nullability: Nullability = .nonNullable
    ) throws {
        guard names.count == fields.count else {
            throw EddyError(.invalidArgument, "struct has \(names.count) names but \(fields.count) fields")
        }
        for (n, f) in zip(names, fields) where f.count != count {
            throw EddyError(.invalidArgument, "struct field '\(n)' has length \(f.count), expected \(count)")
        }
        self.names = names
        self.fields = fields
        self.count = count
        self.validity = validity
        self.dtype = .struct(zip(names, fields).map { StructField($0, $1.dtype) }, nullability)
    }

    public var encoding: EncodingID { Self.id }
    /// Canonical once every field is canonical.
    public var isCanonical: Bool { fields.allSatisfy(\.isCanonical) }
    public var children: [any ArrayNode] { fields }
    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try StructArray(
            names: names, fields: children, count: count, validity: validity, nullability: dtype.nullability)
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        if let i = fields.firstIndex(where: { !$0.isCanonical }) { return .executeChild(i, .canonical) }
        return .done(self)
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        guard validity.isValid(index) else { return .null(dtype) }
        return Scalar(.struct(try fields.map { try $0.scalar(at: index).value }), dtype)
    }
}
