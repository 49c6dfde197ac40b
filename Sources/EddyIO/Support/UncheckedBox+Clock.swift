import CEddyIO

// The two helpers every host module needs, kept once here: EddyIO is the lowest module that
// EddyHost, EddyQuery and EddyServer all import.

/// A value handed to other threads that only read it (or that become its only user), or one that is
/// only ever touched under a lock (`Mutex(UncheckedBox(State()))` for a state that is not `Sendable`).
public struct UncheckedBox<T>: @unchecked Sendable {  // safe by the rule above, which each user keeps
    public var value: T
    public init(_ value: T) { self.value = value }
}

/// Seconds on the monotonic clock (CLOCK_MONOTONIC, read in C). Not `timespec` here: which module owns
/// that C type (Glibc or NIO's CNIOLinux) changes from build to build, and a clean build failed on it
/// under MemberImportVisibility.
package func now() -> Double { Double(eddy_monotonic_nanoseconds()) / 1e9 }
