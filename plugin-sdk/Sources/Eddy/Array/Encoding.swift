/// An array node whose type is one encoding, named by a static ``id``: what the typed kernel
/// registrations (``PluginRegistrar/compare(on:name:_:)`` and the others) are keyed by.
///
/// A plugin's own encoding conforms by declaring `static let id = EncodingID("ext.myencoding")`;
/// ``ArrayNode/encoding`` then comes for free.
public protocol Encoding: ArrayNode {
    /// The encoding's interned identity, for example `eddy.dict`.
    static var id: EncodingID { get }
}

extension Encoding {
    /// The encoding of this node: ``Encoding/id``.
    public var encoding: EncodingID { Self.id }
}

extension PrimitiveArray: Encoding {}
extension BoolArray: Encoding {}
extension VarBinArray: Encoding {}
extension NullArray: Encoding {}
extension StructArray: Encoding {}
extension ConstantArray: Encoding {}
extension DictArray: Encoding {}
extension RunEndArray: Encoding {}
extension FoRArray: Encoding {}
extension BitPackedArray: Encoding {}
extension ChunkedArray: Encoding {}
extension SparseArray: Encoding {}
extension SliceArray: Encoding {}
extension FilterArray: Encoding {}
extension TakeArray: Encoding {}
extension IntStringArray: Encoding {}
