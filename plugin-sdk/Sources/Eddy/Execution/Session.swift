/// A session: the kernel registry that execution contexts snapshot. Host API: plugins receive
/// contexts, they do not make sessions.
///
/// A new session is populated with the engine's built-in kernels and rules; plugins add theirs.
@_spi(Host)
public final class Session: Sendable {
    /// The session-scoped kernel registry.
    public let kernels: ArrayKernels

    /// - Parameter builtins: register the engine's built-in kernels and rules (default true).
    public init(builtins: Bool = true) {
        kernels = ArrayKernels()
        if builtins { BuiltinKernels.register(into: kernels) }
    }

    /// A context over the registry as it is now. Cheap: one atomic load and one retain.
    public func makeContext(options: ExecutionOptions = ExecutionOptions(), trace: ExecutionTrace? = nil)
        -> ExecutionCtx
    {
        ExecutionCtx(snapshot: kernels.snapshot, options: options, trace: trace)
    }
}

/// Options that govern one evaluation. Not frozen: later SDKs may add options.
public struct ExecutionOptions: Sendable {
    /// Steps allowed before a plan is declared non-converging.
    public var iterationLimit: Int
    /// When false, only the encodings' own `execute` steps run: pure decode-then-compute, the
    /// reference that kernels are tested against.
    public var useKernels: Bool

    /// - Parameters:
    ///   - iterationLimit: steps allowed before ``EddyError/Code/iterationLimit`` (default 10 million).
    ///   - useKernels: false for pure decode-then-compute (default true).
    public init(iterationLimit: Int = 10_000_000, useKernels: Bool = true) {
        self.iterationLimit = iterationLimit
        self.useKernels = useKernels
    }
}
