import Synchronization

/// At most `limit` evaluations at once; up to `queueLimit` more wait in arrival order, and past
/// that a request is refused at once (the caller answers 503) instead of piling up threads.
final class EvaluationSlots: Sendable {
    let limit: Int
    let queueLimit: Int

    private struct State {
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    init(limit: Int, queueLimit: Int) {
        self.limit = max(1, limit)
        self.queueLimit = max(0, queueLimit)
    }

    var running: Int { state.withLock { $0.running } }
    var queued: Int { state.withLock { $0.waiting.count } }

    /// Takes a slot, waiting in the queue if need be; false when the queue is full too.
    func acquire() async -> Bool {
        enum Decision { case go, wait, refuse }
        let decision: Decision = state.withLock { s in
            if s.running < limit {
                s.running += 1
                return .go
            }
            return s.waiting.count < queueLimit ? .wait : .refuse
        }
        switch decision {
        case .go: return true
        case .refuse: return false
        case .wait:
            await withCheckedContinuation { continuation in
                let started: Bool = state.withLock { s in
                    // A slot may have freed up between the two locks.
                    if s.running < limit {
                        s.running += 1
                        return true
                    }
                    s.waiting.append(continuation)
                    return false
                }
                if started { continuation.resume() }
            }
            return true
        }
    }

    /// Gives the slot to the next waiter, or frees it.
    func release() {
        let next: CheckedContinuation<Void, Never>? = state.withLock { s in
            if s.waiting.isEmpty {
                s.running -= 1
                return nil
            }
            return s.waiting.removeFirst()  // the slot passes straight to it
        }
        next?.resume()
    }
}
