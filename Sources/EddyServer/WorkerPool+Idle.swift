import CDispatch
import CEddyHost
import CNIOLinux
import Dispatch
@_spi(Host) import EddyHost
import EddyIO
import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Taking an idle worker for a request: alive, and apart from other builds of its plugins.
extension WorkerPool {
    /// An idle worker that is still alive. Idle workers that died (killed from outside) are reaped and
    /// replaced first, all of them, so that none lingers as a zombie.
    func takeIdle() -> Worker? {
        reapDeadIdle()
        return idle.withLock { workers in
            guard let w = workers.popLast() else { return nil }
            busy.withLock { _ = $0.insert(w.pid) }
            return w
        }
    }

    /// Keeps the builds of the plugins named apart: from now on a request that names one goes to a
    /// worker that loaded no other build of it. Two builds of one plugin (same Swift module, same type
    /// names) are not made to share a process while both serve — a canary and the build it may replace.
    /// `builds`: plugin name → the content hashes of its builds in use.
    func keepApart(_ builds: [String: Set<String>]) {
        apart.withLock { if $0 != builds { $0 = builds } }
    }

    /// An idle worker for a request naming `plugins`: with no plugin kept apart among them, any (see
    /// ``takeIdle()``); else one that loaded no other build of those plugins — when every idle worker
    /// did, one is replaced by a fresh worker, which is then taken.
    func takeIdle(for plugins: [WorkerRequest.Plugin]) -> Worker? {
        let builds = apart.withLock { $0 }
        let kept = builds.isEmpty ? [] : plugins.filter { builds[$0.name] != nil }
        guard !kept.isEmpty else { return takeIdle() }
        func fits(_ w: Worker) -> Bool {
            w.loaded.allSatisfy { l in kept.allSatisfy { $0.name != l.name || $0.hash == l.hash } }
        }
        // A worker that loaded a build no longer in use (a canary replaced by a newer one) is replaced
        // first, rather than one another request needs.
        func stale(_ w: Worker) -> Bool {
            w.loaded.contains { l in builds[l.name].map { inUse in !inUse.contains(l.hash) } ?? false }
        }
        reapDeadIdle()
        for _ in 0..<2 {
            let (taken, other) = idle.withLock { workers -> (Worker?, Worker?) in
                if let k = workers.lastIndex(where: fits) {
                    let w = workers.remove(at: k)
                    busy.withLock { _ = $0.insert(w.pid) }
                    return (w, nil)
                }
                guard let k = workers.firstIndex(where: stale) ?? workers.indices.last else { return (nil, nil) }
                let w = workers.remove(at: k)
                busy.withLock { _ = $0.insert(w.pid) }
                return (nil, w)
            }
            if let taken { return taken }
            guard let other else { return nil }
            // Its replacement joins the idle workers and loaded nothing yet.
            _ = killAndReap(other)
            _ = replace(other, outcome: .cancelled)
        }
        return takeIdle()
    }

    /// An idle worker for a request naming `plugins`, preferably one whose replies are read by the
    /// calling thread's loop (then the reply wakes the loop the request's task runs on, and no other);
    /// nil when there is none, when an idle worker died or when one of `plugins` is kept apart (reaping
    /// or replacing a worker may block: ``takeIdle(for:)`` does that off the loops).
    func takeIdleAlive(for plugins: [WorkerRequest.Plugin]) -> Worker? {
        let builds = apart.withLock { $0 }
        guard builds.isEmpty || !plugins.contains(where: { builds[$0.name] != nil }) else { return nil }
        return idle.withLock { workers in
            guard !workers.contains(where: { eddy_has_exited($0.pid) == 1 }) else { return nil }
            guard let k = workers.lastIndex(where: { $0.link.eventLoop.inEventLoop }) ?? workers.indices.last else {
                return nil
            }
            let w = workers.remove(at: k)
            busy.withLock { _ = $0.insert(w.pid) }
            return w
        }
    }
}
