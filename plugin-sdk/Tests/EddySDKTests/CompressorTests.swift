@_spi(Host) import Eddy
import EddyTestSupport
import Testing

@Suite struct CompressorTests {
    @Test(arguments: 0..<4)
    func roundTripIsExact(batch: Int) throws {
        let session = Session()
        let compressor = Compressor()
        for i in 0..<150 {
            var r = RandomArrays(seed: UInt64(90_000 + batch * 1000 + i))
            let dtype = RandomArrays.dtypes[r.int(0...(RandomArrays.dtypes.count - 1))]
            let column = r.column(dtype, count: r.int(0...3000))
            let compressed = try compressor.compress(column)
            #expect(compressed.dtype == column.dtype)
            try expectSameValues(
                try session.makeContext().execute(compressed), column, "\(compressed.treeDescription())")
        }
    }

    @Test func picksTheEncodingThatFitsTheData() throws {
        let compressor = Compressor()
        let constant = try compressor.compress(PrimitiveArray([Int64](repeating: 7, count: 1000)))
        #expect(constant.encoding == ConstantArray.id)

        let runs = try compressor.compress(PrimitiveArray((0..<10_000).map { Int64($0 / 100) * 1_000_003 }))
        #expect(runs.encoding == RunEndArray.id, "\(runs.treeDescription())")

        let words = ["alpha", "beta", "gamma", "delta"]
        let lowCardinality = try compressor.compress(VarBinArray((0..<5000).map { words[($0 * 7) % 4] }))
        #expect(lowCardinality.encoding == DictArray.id, "\(lowCardinality.treeDescription())")

        var g = SeededRandom(seed: 3)
        let narrow = PrimitiveArray((0..<10_000).map { _ in 1_000_000 + Int64(g.next() % 4096) })
        let packed = try compressor.compress(narrow)
        #expect(
            packed.encoding == FoRArray.id && packed.children[0].encoding == BitPackedArray.id,
            "\(packed.treeDescription())")
        #expect(packed.byteSize * 4 < narrow.byteSize)

        let mostlyZero = PrimitiveArray((0..<10_000).map { $0 % 500 == 0 ? Int32($0) : 0 })
        #expect(try compressor.compress(mostlyZero).encoding == SparseArray.id)
    }

    @Test func outliersBecomePatches() throws {
        var values = [Int64](repeating: 0, count: 4096)
        for i in values.indices { values[i] = Int64(i % 16) }
        values[100] = 1 << 40
        let compressed = try Compressor().compress(PrimitiveArray(values))
        let bp = try #require(compressed.children.first as? BitPackedArray, "\(compressed.treeDescription())")
        #expect(bp.bitWidth == 4)
        #expect(bp.patchIndices == [100])
        try expectSameValues(try Session().makeContext().execute(compressed), PrimitiveArray(values))
    }
}
