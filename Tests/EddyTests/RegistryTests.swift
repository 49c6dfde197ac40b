@_spi(Host) import Eddy
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

@Suite struct ConcurrencyTests {
    @Test func evaluatorsKeepRunningWhileAnotherThreadRegisters() throws {
        let session = Session()
        let stop = Flag()
        let failures = Counter()
        let evaluations = Counter()
        let d = try DictArray(
            codes: PrimitiveArray((0..<2000).map { UInt16($0 % 7) }),
            values: VarBinArray((0..<7).map { "v\($0)" }))
        let query = try CompareFunction.make(d, .eq, ConstantArray(.utf8("v3"), count: 2000))
        let expected = try values(Session().makeContext(options: ExecutionOptions(useKernels: false)).execute(query))
        let unrelated = (0..<64).map { EncodingID("test.concurrency.\($0)") }
        // Real threads, not tasks: the cooperative pool has one thread per core, and two busy
        // evaluators would starve the registering task.
        let evaluators = (0..<2).map { _ in
            TestThread {
                var n = 0
                while !stop.isSet || n < 50 {
                    do {
                        let out = try session.makeContext().execute(query)
                        if try values(out) != expected { _ = failures.increment() }
                    } catch {
                        _ = failures.increment()
                    }
                    n += 1
                    _ = evaluations.increment()
                }
            }
        }
        let registrar = TestThread {
            for i in 0..<400 {
                let p = unrelated[i % unrelated.count]
                session.kernels.register(
                    ExecuteParentKernel(
                        "noise \(i)", owner: plugin, parent: p,
                        child: unrelated[(i * 7) % unrelated.count]
                    ) { _, _, _, _ in nil })
                if i % 50 == 49 { session.kernels.unregister(owner: plugin) }
            }
            stop.set()
        }
        registrar.join()
        evaluators.forEach { $0.join() }
        #expect(failures.value == 0)
        #expect(evaluations.value >= 100)
    }

    @Test func kernelThatRegistersAnotherKernelWhileRunningDoesNotDeadlock() throws {
        let session = Session()
        let registered = Counter()
        session.kernels.register(
            ExecuteParentKernel("registers", owner: plugin, parent: FilterArray.id, child: PrimitiveArray.id) {
                [session] _, _, _, _ in
                let n = registered.increment()
                session.kernels.register(markingKernel("inner \(n)", owner: .plugin("inner", version: "1"), value: 42))
                return nil  // decline; the built-in runs
            })
        let first = session.makeContext()
        #expect(try firstValue(first) == .int(1))
        // The registration made during the run is visible to the next context, not the running one.
        #expect(try firstValue(session.makeContext()) == .int(42))
        #expect(registered.value >= 1)
    }
}

final class Flag: Sendable {
    private let state = Atomic<Bool>(false)
    var isSet: Bool { state.load(ordering: .acquiring) }
    func set() { state.store(true, ordering: .releasing) }
}

final class Counter: Sendable {
    private let state = Atomic<Int>(0)
    var value: Int { state.load(ordering: .acquiring) }
    func increment() -> Int { state.add(1, ordering: .acquiringAndReleasing).newValue }
}

/// A joinable POSIX thread running a closure.
final class TestThread: @unchecked Sendable {
    // Written once in init before the thread starts; read only by join on the creating thread.
    private var thread = pthread_t()

    init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(
            &thread, nil,
            { raw in
                let b = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                b.body()
                return nil
            }, box)
    }

    func join() { pthread_join(thread, nil) }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}

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
