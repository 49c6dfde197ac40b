/// Compressed integers stored as a difference from a reference: element `i` is `reference + child[i]`.
///
/// The child is an integer array, usually unsigned and narrower (then often bit-packed). The sum
/// never wraps for a valid array: the compressor picks the reference as the minimum.
public final class FoRArray: ArrayNode {
    public static let id = EncodingID("eddy.for")
    /// The non-null integer added to every child value; its ptype is the array's ptype.
    public let reference: Scalar
    /// The integer differences from ``reference``, one per element; a null child element is null.
    public let child: any ArrayNode
    public let dtype: DType

    /// - Throws: unless `reference` is a non-null integer and `child` an integer array.
    public init(reference: Scalar, child: any ArrayNode) throws {
        guard let p = reference.dtype.ptype, p.isInteger, !reference.isNull else {
            throw EddyError(.typeMismatch, "frame-of-reference needs a non-null integer reference, got \(reference)")
        }
        guard child.dtype.isInteger else {
            throw EddyError(.typeMismatch, "frame-of-reference child must be integers, got \(child.dtype)")
        }
        self.reference = reference
        self.child = child
        self.dtype = .primitive(p, child.dtype.nullability)
    }

    /// Encodes integers as their difference from their minimum, in the narrowest unsigned type.
    public static func encode(_ array: PrimitiveArray) throws -> FoRArray {
        guard array.ptype.isInteger else { throw EddyError(.typeMismatch, "frame-of-reference needs integers") }
        let all = array.int128Values()
        let valid = all.indices.filter { array.validity.isValid($0) }.map { all[$0] }
        let minimum = valid.min() ?? 0
        let maximum = valid.max() ?? 0
        let width = PType.smallestUnsigned(holding: UInt64(maximum - minimum))
        let deltas: [UInt64] = all.enumerated().map { i, v in array.validity.isValid(i) ? UInt64(v - minimum) : 0 }
        let child = width.visitIntegerUnchecked(
            Narrow(deltas: deltas, validity: array.validity, nullability: array.dtype.nullability))
        let ref = array.ptype.isSignedInteger ? ScalarValue.int(Int64(minimum)) : ScalarValue.uint(UInt64(minimum))
        return try FoRArray(reference: Scalar(ref, .primitive(array.ptype, .nonNullable)), child: child)
    }

    private struct Narrow: IntegerPTypeVisitor {
        let deltas: [UInt64]
        let validity: Validity
        let nullability: Nullability
        func visit<T: NativeInteger>(_ type: T.Type) -> any ArrayNode {
            PrimitiveArray.build(T.self, count: deltas.count, validity: validity, nullability: nullability) { out in
                for i in deltas.indices { out[i] = T(truncatingIfNeeded: deltas[i]) }
            }
        }
    }

    public var encoding: EncodingID { Self.id }
    public var count: Int { child.count }
    public var children: [any ArrayNode] { [child] }
    public var metadataDescription: String { "reference=\(reference)" }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try FoRArray(reference: reference, child: children[0])
    }

    /// The reference's two's-complement bits, added with wrapping to each child value.
    var referenceBits: UInt64 { reference.value.asUInt64Bits }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        if let bp = child as? BitPackedArray, bp.patchRange.isEmpty {
            // Packed values without patches: unpacked and shifted by the reference in one pass.
            return .done(dtype.ptype!.visitIntegerUnchecked(DecodePacked(packed: bp, referenceBits: referenceBits)))
        }
        guard let c = child as? PrimitiveArray else { return .executeChild(0, .canonical) }
        return .done(
            c.ptype.visitIntegerUnchecked(DecodeChild(child: c, parent: dtype.ptype!, referenceBits: referenceBits)))
    }

    /// Unpacks with the reference added in the same pass (see
    /// ``BitPackedArray/unpackAll(_:_:_:_:adding:into:)``), narrowing to the parent's type.
    private struct DecodePacked: IntegerPTypeVisitor {
        let packed: BitPackedArray
        let referenceBits: UInt64
        func visit<T: NativeInteger>(_ type: T.Type) -> any ArrayNode {
            let a = packed
            let reference = referenceBits
            return withExtendedLifetime(a.packed) {
                PrimitiveArray.build(T.self, count: a.count, validity: a.validity, nullability: a.dtype.nullability) {
                    out in
                    let words = a.packed.baseAddress.assumingMemoryBound(to: UInt64.self)
                    BitPackedArray.unpackAll(words, a.bitWidth, a.offset, a.count, adding: reference, into: out)
                }
            }
        }
    }

    private struct DecodeChild: IntegerPTypeVisitor {
        let child: PrimitiveArray
        let parent: PType
        let referenceBits: UInt64
        func visit<C: NativeInteger>(_ type: C.Type) -> any ArrayNode {
            parent.visitIntegerUnchecked(DecodeInto<C>(child: child, referenceBits: referenceBits))
        }
    }

    private struct DecodeInto<C: NativeInteger>: IntegerPTypeVisitor {
        let child: PrimitiveArray
        let referenceBits: UInt64
        func visit<T: NativeInteger>(_ type: T.Type) -> any ArrayNode {
            child.withValuesUnchecked(C.self) { src in
                PrimitiveArray.build(
                    T.self, count: src.count, validity: child.validity,
                    nullability: child.dtype.nullability
                ) { out in
                    for i in 0..<src.count {
                        out[i] = T(truncatingIfNeeded: UInt64(truncatingIfNeeded: src[i]) &+ referenceBits)
                    }
                }
            }
        }
    }

    public func scalar(at index: Int) throws -> Scalar {
        let c = try child.scalar(at: index)
        if c.isNull { return .null(dtype) }
        let bits = c.value.asUInt64Bits &+ referenceBits
        let p = dtype.ptype!
        let value: ScalarValue =
            p.isSignedInteger
            ? .int(signExtend(bits, p.byteWidth)) : .uint(bits & widthMask(p.byteWidth))
        return Scalar(value, dtype)
    }
}

func widthMask(_ bytes: Int) -> UInt64 { bytes == 8 ? ~0 : (UInt64(1) << UInt64(bytes * 8)) - 1 }

func signExtend(_ bits: UInt64, _ bytes: Int) -> Int64 {
    let shift = UInt64(64 - bytes * 8)
    return Int64(bitPattern: bits << shift) >> Int64(shift)
}

extension PrimitiveArray {
    /// Integer values widened to `Int128`, which holds every integer ptype exactly.
    public func int128Values() -> [Int128] { ptype.visitIntegerUnchecked(ToInt128(array: self)) }

    private struct ToInt128: IntegerPTypeVisitor {
        let array: PrimitiveArray
        func visit<T: NativeInteger>(_ type: T.Type) -> [Int128] {
            array.withValuesUnchecked(T.self) { $0.map { Int128($0) } }
        }
    }
}
