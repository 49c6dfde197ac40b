import CEddyIO

/// Runs `body` marked as the engine's own work on this thread (see `eddy_engine_work_enter`): a crash
/// there outside plugin code is the engine's (say, out of `--worker-memory`), never charged to a
/// plugin whose code ran in the process earlier.
@inline(__always)
public func asEngineWork<T>(_ body: () throws -> T) rethrows -> T {
    eddy_engine_work_enter()
    defer { eddy_engine_work_leave() }
    return try body()
}
