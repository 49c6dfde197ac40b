@_spi(Host) import Eddy
import EddyTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A kernel for (filter, primitive) that records its name in the result's first value, so a test
/// can see which kernel ran. It keeps the parent's length and dtype.
func markingKernel(_ name: String, owner: KernelOwner, value: Int64, declines: Bool = false) -> ExecuteParentKernel {
    ExecuteParentKernel(name, owner: owner, parent: FilterArray.id, child: PrimitiveArray.id) { parent, _, slot, _ in
        guard slot == 0, !declines else { return nil }
        return PrimitiveArray.build(Int64.self, count: parent.count) { $0.initialize(repeating: value) }
    }
}

let plugin = KernelOwner.plugin("test-plugin", version: "1.0")

func filterInput() throws -> FilterArray {
    try FilterArray(PrimitiveArray([Int64(1), 2, 3]), mask: BoolArray([true, false, true]))
}

func firstValue(_ ctx: ExecutionCtx) throws -> ScalarValue { try ctx.execute(filterInput()).scalar(at: 0).value }

@Suite struct SnapshotTests {
    @Test func contextCreatedBeforeARegistrationDoesNotSeeIt() throws {
        let session = Session()
        let before = session.makeContext()
        session.kernels.register(markingKernel("late", owner: plugin, value: 99))
        let after = session.makeContext()
        #expect(try firstValue(before) == .int(1))
        #expect(try firstValue(after) == .int(99))
        #expect(after.snapshot.generation == before.snapshot.generation + 1)
    }

    @Test func pluginKernelsRunBeforeBuiltins() throws {
        let session = Session()
        session.kernels.register(markingKernel("plugin", owner: plugin, value: 7))
        let trace = ExecutionTrace()
        #expect(try firstValue(session.makeContext(trace: trace)) == .int(7))
        let list = session.kernels.snapshot.kernels(parent: FilterArray.id, child: PrimitiveArray.id)
        #expect(list.first?.owner == plugin)
        #expect(list.last?.owner == .builtin)
        #expect(trace.events.contains { $0.name == "plugin" && $0.owner == plugin })
    }

    @Test func registeringAgainAppends() throws {
        let session = Session(builtins: false)
        session.kernels.register(markingKernel("first", owner: plugin, value: 1))
        session.kernels.register(markingKernel("second", owner: plugin, value: 2))
        #expect(
            session.kernels.snapshot.kernels(parent: FilterArray.id, child: PrimitiveArray.id).map(\.name)
                == ["first", "second"])
        #expect(try firstValue(session.makeContext()) == .int(1))
    }

    @Test func decliningKernelFallsThroughToTheNext() throws {
        let session = Session()
        session.kernels.register(markingKernel("declines", owner: plugin, value: 5, declines: true))
        session.kernels.register(markingKernel("accepts", owner: plugin, value: 6))
        #expect(try firstValue(session.makeContext()) == .int(6))
        let other = Session()
        other.kernels.register(markingKernel("declines", owner: plugin, value: 5, declines: true))
        #expect(try firstValue(other.makeContext()) == .int(1))  // built-in filter
    }

    @Test func unregisterLetsBuiltinsTakeOverAgain() throws {
        let session = Session()
        session.kernels.register(markingKernel("plugin", owner: plugin, value: 7))
        #expect(try firstValue(session.makeContext()) == .int(7))
        #expect(session.kernels.unregister(owner: plugin) == 1)
        #expect(try firstValue(session.makeContext()) == .int(1))
    }

    @Test func wrongLengthResultNamesTheKernelAndOwner() throws {
        let session = Session()
        session.kernels.register(
            ExecuteParentKernel("bad length", owner: plugin, parent: FilterArray.id, child: PrimitiveArray.id) {
                _, _, _, _ in
                PrimitiveArray([Int64(1)])
            })
        let error = try #require(throws: EddyError.self) { try session.makeContext().execute(filterInput()) }
        #expect(error.code == .kernelContract)
        #expect(error.message.contains("bad length"))
        #expect(error.message.contains("test-plugin"))
    }

    @Test func wrongDTypeResultNamesTheKernelAndOwner() throws {
        let session = Session()
        session.kernels.register(
            ExecuteParentKernel("bad dtype", owner: plugin, parent: FilterArray.id, child: PrimitiveArray.id) {
                p, _, _, _ in
                PrimitiveArray([Int32](repeating: 0, count: p.count))
            })
        let error = try #require(throws: EddyError.self) { try session.makeContext().execute(filterInput()) }
        #expect(error.code == .kernelContract)
        #expect(error.message.contains("bad dtype") && error.message.contains("test-plugin"))
    }

    @Test func throwingPluginKernelIsBlamed() throws {
        struct Boom: Error {}
        let session = Session()
        session.kernels.register(
            ExecuteParentKernel("throws", owner: plugin, parent: FilterArray.id, child: PrimitiveArray.id) {
                _, _, _, _ in
                throw Boom()
            })
        let error = try #require(throws: EddyError.self) { try session.makeContext().execute(filterInput()) }
        #expect(error.code == .kernelFailed && error.source == plugin.description)
    }

    @Test func nonConvergingPlanHitsTheIterationLimit() throws {
        // A rule that rewrites a node into an equal node forever.
        let session = Session()
        session.kernels.register(
            ReduceParentRule("loops", owner: plugin, parent: SliceArray.id, child: DictArray.id) { parent, _, _ in
                let s = parent as! SliceArray
                return try SliceArray(s.child, start: s.start, length: s.count)
            })
        let d = try DictArray(codes: PrimitiveArray([UInt8(0), 0, 0]), values: PrimitiveArray([Int64(4)]))
        let ctx = session.makeContext(options: ExecutionOptions(iterationLimit: 1000))
        let error = try #require(throws: EddyError.self) { try ctx.execute(SliceArray(d, start: 1, length: 1)) }
        #expect(error.code == .iterationLimit)
    }

    @Test func snapshotLookupIgnoresEncodingsInternedAfterIt() {
        let session = Session()
        let snap = session.kernels.snapshot
        let fresh = EncodingID("test.fresh-\(UInt64.random(in: 0...UInt64.max))")
        #expect(snap.kernels(parent: fresh, child: PrimitiveArray.id).isEmpty)
        #expect(EncodingID(fresh.name) == fresh)
    }
}
