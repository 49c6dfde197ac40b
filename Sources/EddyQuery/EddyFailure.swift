import Eddy
import EddyIO

/// Why a query, or a request for one, failed: one classification for `eddy eval`, `eddy serve` and its
/// worker processes, with one mapping to an HTTP status (``httpStatus``) and one to an exit status
/// (``exitCode``). Both front ends classify the engine's errors here (``init(_:)``) instead of each
/// deciding what a `QueryError` or an `EddyError` is worth.
package struct EddyFailure: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is: who is at fault, and what the caller can do about it.
    package enum Kind: String, CaseIterable, Sendable {
        /// The request itself is malformed: an unknown or mistyped field or parameter, an unknown format.
        case badRequest
        /// An expression that does not parse or bind (a syntax error, an unknown column, a wrong type).
        case query
        /// An input file that cannot be read as its format says: a CSV that does not parse, a bad footer.
        case input
        /// The data makes the evaluation fail: an overflow, a division by zero, a value that does not cast.
        case data
        /// A file the caller may not read: outside the data directories, not a regular file.
        case forbidden
        /// No such file.
        case notFound
        /// A body or a result past its limit.
        case tooLarge
        /// The evaluation did not finish by its deadline.
        case deadline
        /// The request's body did not arrive in time.
        case bodyTimeout
        /// The client went away before the answer.
        case cancelled
        /// Too many evaluations at once, or the file changed while it was opened: try again.
        case busy
        /// No or a wrong bearer token.
        case unauthorized
        /// A `Host` this server does not serve.
        case misdirected
        /// A kernel broke its contract, failed or did not converge: the server's or a plugin's fault,
        /// not the data's.
        case kernel
        /// Anything else: the server's fault.
        case `internal`
    }

    package var kind: Kind
    /// What went wrong, for people.
    package var message: String
    /// Whose code raised it (a kernel's owner), when known.
    package var owner: String?

    package init(_ kind: Kind, _ message: String, owner: String? = nil) {
        self.kind = kind
        self.message = message
        self.owner = owner
    }

    package var description: String { message }

    /// The engine's error classified: an expression's error is `.query`, a file's `.input`, an
    /// `EddyError` `.kernel` when a kernel is at fault and `.data` otherwise, a stopped evaluation by
    /// its cause; nil for an error the engine does not raise.
    package init?(classifying error: any Error) {
        switch error {
        case let e as EddyFailure: self = e
        case let e as QueryError: self.init(.query, e.description)
        case let e as IOError: self.init(.input, e.description)
        case let e as EddyError:
            // A kernel that broke its contract or failed is the server's (or a plugin's) fault; overflow,
            // division by zero or a bad cast are the data's.
            let kernel = e.code == .kernelContract || e.code == .kernelFailed || e.code == .iterationLimit
            self.init(kernel ? .kernel : .data, e.description, owner: e.source)
        case let e as EvaluationStopped:
            let kind: Kind =
                switch e.cause {
                case .deadline: .deadline
                case .cancelled: .cancelled
                case .resultTooLarge: .tooLarge
                }
            self.init(kind, e.description)
        default: return nil
        }
    }

    /// Any error classified; one the engine does not raise is `.internal`.
    package init(_ error: any Error) {
        self = EddyFailure(classifying: error) ?? EddyFailure(.internal, "\(error)")
    }

    /// The HTTP status `eddy serve` answers this failure with (and a worker replies with).
    package var httpStatus: Int {
        switch kind {
        case .badRequest, .query, .input: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .bodyTimeout: 408
        case .tooLarge: 413
        case .misdirected: 421
        case .data: 422
        case .cancelled: 499  // nginx's "Client Closed Request": no one reads it, but logs and metrics do
        case .kernel, .internal: 500
        case .busy: 503
        case .deadline: 504
        }
    }

    /// The exit status `eddy eval` ends with for this failure: 2 for a bad expression, 1 for a bad input
    /// or a failed evaluation (docs/cli.md); 64 (`EX_USAGE`, as ArgumentParser ends on a bad option) for
    /// a malformed request.
    package var exitCode: Int32 {
        switch kind {
        case .query: 2
        case .badRequest: 64
        case .input, .data, .forbidden, .notFound, .tooLarge, .deadline, .bodyTimeout, .cancelled, .busy,
            .unauthorized, .misdirected, .kernel, .internal:
            1
        }
    }
}
