@_spi(Host) import Eddy
import EddyHostTestSupport
import EddyTesting
import Testing

@testable import EddyHost

/// What a plugin can hand the SDK and the host, and what comes back: the findings of a hostile review.
@Suite struct SDKEdgeTests {
    @Test func aSealedRegistrarRecordsNothingMore() {
        let registrar = PluginRegistrar(owner: .plugin("late", version: "1"))
        registrar.register("first", parent: CompareFunction.id, child: DictArray.id) { _, _, _, _ in nil }
        registrar.seal()
        registrar.register("late", parent: CompareFunction.id, child: DictArray.id) { _, _, _, _ in nil }
        registrar.encoding(DictArray.self)
        #expect(registrar.contents.kernels.map(\.name) == ["first"])
        #expect(registrar.encodings.isEmpty)
        #expect(registrar.lateCalls == 2)
    }

    @Test func unnamedAndSharedNamesAreProblemsForKernelsAndRulesAlike() {
        let registrar = PluginRegistrar(owner: .plugin("names", version: "1"))
        registrar.register("", parent: CompareFunction.id, child: DictArray.id) { _, _, _, _ in nil }
        registrar.registerRule("", parent: SliceArray.id, child: DictArray.id) { _, _, _ in nil }
        registrar.register("same", parent: FilterArray.id, child: DictArray.id) { _, _, _, _ in nil }
        registrar.registerRule("same", parent: SliceArray.id, child: RunEndArray.id) { _, _, _ in nil }
        #expect(
            registrar.declarations == [
                "kernel eddy.compare|eddy.dict|", "kernel eddy.filter|eddy.dict|same", "rule eddy.slice|eddy.dict|",
                "rule eddy.slice|eddy.runend|same",
            ])
        let problems = registrar.problems
        #expect(problems.contains("a kernel for (eddy.compare, eddy.dict) has no name"))
        #expect(problems.contains("a rule for (eddy.slice, eddy.dict) has no name"))
        #expect(problems.contains("the name 'same' is used for more than one kernel or rule; give each its own"))
    }

    @Test func aPluginClassCannotPoseAsABuiltinEncoding() throws {
        let session = Session()
        let registrar = PluginRegistrar(owner: .plugin("poser", version: "1"))
        registrar.compare(on: PrimitiveArray.self) { array, _, _, _ in
            FakeDict(try BoolArray(bits: Bitmap(repeating: true, count: array.count)))
        }
        session.kernels.replace(
            pluginNamed: "poser", kernels: registrar.contents.kernels, rules: [], owner: registrar.owner)
        let query = try CompareFunction.make(
            PrimitiveArray([1, 2, 3] as [Int64]), .eq, ConstantArray(.int64(2), count: 3))
        #expect {
            _ = try session.makeContext().execute(query)
        } throws: { error in
            "\(error)".contains("returned a FakeDict that claims the engine's encoding eddy.dict")
        }
    }

    @Test func anErrorFromAPluginEncodingNamesThePlugin() throws {
        let session = Session()
        let registrar = PluginRegistrar(owner: .plugin("broken", version: "1"))
        registrar.encoding(BrokenEncoding.self)
        session.kernels.replace(
            pluginNamed: "broken", kernels: [], rules: [], owner: registrar.owner, encodings: registrar.encodings)
        let query = try CompareFunction.make(BrokenEncoding(count: 3), .eq, ConstantArray(.int64(2), count: 3))
        #expect {
            _ = try session.makeContext().execute(query)
        } throws: { error in
            "\(error)".contains("encoding 'ext.broken' of plugin broken@1 failed")
                && "\(error)".contains("no data here")
        }
    }

    @Test func nonNullableArraysRefuseNulls() throws {
        #expect(throws: EddyError.self) {
            try BoolArray(bits: Bitmap(repeating: true, count: 3), validity: .allInvalid, nullability: .nonNullable)
        }
        #expect(throws: EddyError.self) {
            try PrimitiveArray(
                ptype: .int64, buffer: Buffer(copying: [Int64](repeating: 0, count: 3)), count: 3, validity: .allInvalid
            )
        }
        // A nullable all-null result is not made non-nullable to fit a non-nullable parent.
        let nulls = try BoolArray(
            bits: Bitmap(repeating: false, count: 3), validity: .allInvalid, nullability: .nullable)
        #expect(KernelResult.conform(nulls, to: .bool(.nonNullable)).dtype == .bool(.nullable))
        #expect(throws: EddyError.self) {
            try Buffer(storage: BufferStorage(byteCount: 8), byteOffset: 4, byteCount: Int.max)
        }
    }

    @Test func buffersBitmapsAndArraysCheckTheirRangesAndThrow() throws {
        let bits = Bitmap(repeating: true, count: 10)
        #expect(throws: EddyError.self) { try bits.slice(5, 6) }
        #expect(throws: EddyError.self) { try bits.slice(Int.max, 2) }
        let values = PrimitiveArray([1, 2, 3] as [Int64])
        #expect(throws: EddyError.self) { try values.slice(2, 2) }
        #expect(throws: EddyError.self) { try values.buffer.slice(byteOffset: 8, byteCount: Int.max) }
        #expect(throws: EddyError.self) { try SliceArray(values, start: Int.max, length: 2) }
        #expect(throws: EddyError.self) { try Canonical.filter(values, mask: bits) }
        #expect(throws: EddyError.self) { try Canonical.repeating(.int64(1), count: -1) }
        #expect(NullArray(count: -5).count == 0)
        #expect(throws: EddyError.self) {
            _ = try Session().makeContext().execute(ConstantArray(.int64(1), count: -5))
        }
        let offsets = Buffer(copying: [0, 3, 2] as [Int32])  // decreasing
        #expect(throws: EddyError.self) {
            try VarBinArray(
                dtype: .utf8(.nonNullable), offsets: offsets, bytes: Buffer(copying: Array("abc".utf8)), count: 2)
        }
        let beyond = Buffer(copying: [0, 2, 99] as [Int32])  // past the bytes
        #expect(throws: EddyError.self) {
            try VarBinArray(
                dtype: .utf8(.nonNullable), offsets: beyond, bytes: Buffer(copying: Array("abc".utf8)), count: 2)
        }
        let good = try VarBinArray(
            dtype: .utf8(.nonNullable), offsets: Buffer(copying: [0, 2, 3] as [Int32]),
            bytes: Buffer(copying: Array("abc".utf8)), count: 2)
        #expect(good.string(at: 0) == "ab" && good.string(at: 1) == "c")
    }

    @Test func takeWithNullIndicesKeepsAStructsFieldTypes() throws {
        let structs = try StructArray(
            names: ["id", "name"],
            fields: [PrimitiveArray([10, 20, 30] as [Int32]), VarBinArray(["a", nil, "c"] as [String?])],
            count: 3, validity: .allValid, nullability: .nullable)
        let take = try TakeArray(structs, indices: PrimitiveArray([2, nil, 0] as [Int64?]))
        for options in [ExecutionOptions(), ExecutionOptions(useKernels: false)] {
            let r = try Session().makeContext(options: options).execute(take)
            #expect(r.dtype == take.dtype, "\(r.dtype) vs \(take.dtype)")
            let (first, second, third) = (try r.scalar(at: 0), try r.scalar(at: 1), try r.scalar(at: 2))
            #expect(first.value == .struct([.int(30), .utf8("c")]))
            #expect(second.isNull)
            #expect(third.value == .struct([.int(10), .utf8("a")]))
        }
        // Only null indices against an empty struct array: null rows of the right type.
        let empty = try StructArray(
            names: ["id"], fields: [PrimitiveArray([] as [Int32])], count: 0, validity: .allValid,
            nullability: .nullable)
        let r = try Session().makeContext().execute(TakeArray(empty, indices: PrimitiveArray([nil, nil] as [Int64?])))
        let row = try r.scalar(at: 0)
        #expect(r.count == 2 && row.isNull)
        let outOfRange = try TakeArray(empty, indices: PrimitiveArray([2] as [Int64]))
        for options in [ExecutionOptions(), ExecutionOptions(useKernels: false)] {
            #expect(throws: EddyError.self) { _ = try Session().makeContext(options: options).execute(outOfRange) }
        }
    }

    @Test func registeredNamesMustBePrintableAndUnique() {
        let registrar = PluginRegistrar(owner: .plugin("names", version: "1"))
        registrar.register("fake\nkernel FAKE [builtin]\u{1b}[2J", parent: CompareFunction.id, child: DictArray.id) {
            _, _, _, _ in nil
        }
        registrar.register("same", parent: CompareFunction.id, child: RunEndArray.id) { _, _, _, _ in nil }
        registrar.register("same", parent: LikeFunction.id, child: RunEndArray.id) { _, _, _, _ in nil }
        let problems = registrar.problems.joined(separator: "\n")
        #expect(problems.contains("has control or format characters"), "\(problems)")
        #expect(problems.contains("the name 'same' is used for more than one kernel or rule"), "\(problems)")
    }

    @Test func errorTextFromPluginsCannotCarryTerminalEscapes() {
        struct Hostile: Error, CustomStringConvertible { var description: String { "bad\u{1b}[2J\u{202e}text" } }
        let e = EddyError(.kernelFailed, "kernel 'k' of plugin p@1 failed\u{7}", cause: Hostile(), source: "plugin p@1")
        let text = e.description
        #expect(!text.unicodeScalars.contains { $0 == "\u{1b}" || $0 == "\u{7}" || $0 == "\u{202e}" }, "\(text)")
        #expect(text.contains("bad\\u{1b}[2J\\u{202e}text"))
    }

    @Test(arguments: [
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=a\nname=b\nversion=1\n", "manifest field 'name' given twice"),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6\nname=a\nversion=1\n", "plugin built with Swift 6"),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.9garbage\nname=a\nversion=1\n", "plugin built with Swift 6.9garbage"),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=..\nversion=1\n", "plugin name"),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=a\nversion=   \n", "plugin version"),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=a\nversion=1\u{1b}[2J\n", "plugin version"),
        // Separators of the name@version lists it is written in, and what prints as nothing.
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=a\nversion=9,9@9\n", "plugin version"),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=a\nversion=1#2\n", "plugin version"),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=a\nversion=\u{2028}\n", "plugin version"),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=a\nversion=\u{a0}\u{a0}\n", "plugin version"),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=a\nversion=1.0 beta\n", "plugin version"),
        // A newline in the name or version: the rest of it is a line of its own.
        (
            "EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=evil\n\u{1b}[31mred\nversion=9.9.9\n",
            "manifest line 5 is not key=value"
        ),
        ("EDDY-PLUGIN\nabi=2\ncompiler=6.3\nname=a\nversion=9.9.9\n2\n", "manifest line 6 is not key=value"),
    ])
    func laxManifestsAreRefused(text: String, problem: String) {
        do {
            _ = try ParsedManifest(text)
            Issue.record("accepted: \(text)")
        } catch let e as HandshakeError {
            #expect(e.lines.joined(separator: "; ").contains(problem), "\(e.lines)")
        } catch {
            Issue.record("\(error)")
        }
    }
}

/// A plugin's class claiming the built-in dictionary encoding's id.
final class FakeDict: Encoding {
    static let id = EncodingID("eddy.dict")
    let inner: BoolArray
    init(_ inner: BoolArray) { self.inner = inner }
    var dtype: DType { inner.dtype }
    var count: Int { inner.count }
    var children: [any ArrayNode] { [] }
    func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode { self }
    func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep { .done(inner) }
    func scalar(at index: Int) throws -> Scalar { try inner.scalar(at: index) }
}

/// A plugin encoding whose decoding fails.
final class BrokenEncoding: Encoding {
    static let id = EncodingID("ext.broken")
    let count: Int
    init(count: Int) { self.count = count }
    var dtype: DType { .primitive(.int64, .nonNullable) }
    var children: [any ArrayNode] { [] }
    func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode { self }
    func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep { throw EddyError(.invalidArgument, "no data here") }
    func scalar(at index: Int) throws -> Scalar { throw EddyError(.invalidArgument, "no data here") }
}
