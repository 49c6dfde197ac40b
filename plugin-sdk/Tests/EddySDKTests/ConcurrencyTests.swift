@_spi(Host) import Eddy
import EddyTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

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
