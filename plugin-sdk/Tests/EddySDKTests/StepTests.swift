@_spi(Host) import Eddy
import EddyTestSupport
import Testing

@Suite struct StepTests {
    @Test func singleStepsReachTheSameResultAsExecute() throws {
        let session = Session()
        let ctx = session.makeContext()
        let d = try DictArray(codes: PrimitiveArray([UInt8(1), 0, 1]), values: VarBinArray(["a", "b"]))
        var node: any ArrayNode = try CompareFunction.make(d, .eq, ConstantArray(.utf8("b"), count: 3))
        var steps = 0
        while !node.isCanonical && steps < 20 {
            node = try ctx.step(node)
            steps += 1
        }
        #expect(node.isCanonical)
        #expect(steps >= 1)
        #expect(try values(node) == [.bool(true), .bool(false), .bool(true)])
    }
}
