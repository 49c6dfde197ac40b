@_spi(Host) import Eddy
import EddyHostTestSupport
import Testing

@testable @_spi(Host) import EddyIO
@testable @_spi(Host) import EddyQuery

/// Zone maps rule a chunk, a row group or a Parquet page out by its statistics
/// (Sources/EddyQuery/ZoneMap.swift); statistics that contradict themselves must rule nothing out.
@Suite struct ZoneMapTests {
    static func chunk(min: Int64, max: Int64, nulls: Int = 0) -> ChunkLayout {
        let dtype = DType.primitive(.int64, .nullable)
        let stats = ChunkColumnStats(
            nullCount: nulls, min: Scalar(.int(min), dtype), max: Scalar(.int(max), dtype), plainBytes: 0,
            storedBytes: 0)
        let column = ColumnChunkLayout(segmentOffset: 0, segmentLength: 0, checksum: 0, nodes: [], stats: stats)
        return ChunkLayout(rows: 100, columns: [column])
    }

    @Test func honestBoundsRuleOut() {
        let lit = Scalar(.int(500), .primitive(.int64, .nonNullable))
        #expect(!ZoneMap.compareMay(0, .eq, lit, Self.chunk(min: 1, max: 10)))
        #expect(ZoneMap.compareMay(0, .eq, lit, Self.chunk(min: 1, max: 1000)))
        #expect(
            !ZoneMap.compareMay(0, .lt, Scalar(.int(1), .primitive(.int64, .nonNullable)), Self.chunk(min: 1, max: 10)))
    }

    @Test func aMinimumAboveTheMaximumRulesNothingOut() {
        // A file that lies: min 1000, max 10. Every comparison must keep the chunk.
        let lying = Self.chunk(min: 1000, max: 10)
        for value: Int64 in [5, 10, 100, 1000, 2000] {
            let lit = Scalar(.int(value), .primitive(.int64, .nonNullable))
            for op in [CompareOperator.eq, .ne, .lt, .le, .gt, .ge] {
                #expect(ZoneMap.compareMay(0, op, lit, lying), "\(op) \(value)")
            }
        }
    }
}
