import Synchronization

/// Owns one aligned allocation and frees it when the last ``Buffer`` that refers to it is gone.
public final class BufferStorage: Sendable {
    // The pointer is written once at initialisation and never mutated afterwards through this class.
    nonisolated(unsafe) public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    /// Allocates `byteCount` bytes aligned to `alignment` (a power of two); the memory is zeroed.
    public init(byteCount: Int, alignment: Int = Buffer.defaultAlignment) {
        self.byteCount = byteCount
        self.pointer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(byteCount, 1), alignment: alignment)
        self.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: Swift.max(byteCount, 1))
    }

    /// Allocates without zeroing; every byte must be written before the buffer is shared.
    public init(uninitializedByteCount byteCount: Int, alignment: Int = Buffer.defaultAlignment) {
        self.byteCount = byteCount
        self.pointer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(byteCount, 1), alignment: alignment)
    }

    deinit { pointer.deallocate() }
}

/// An immutable, aligned run of bytes. Slicing shares the allocation.
///
/// `Buffer` is frozen so that kernels compiled into plugins read its fields directly;
/// its layout is a permanent ABI promise.
@frozen
public struct Buffer: Sendable {
    public static let defaultAlignment = 64

    public let storage: BufferStorage
    /// Byte offset of this view into the storage.
    public let byteOffset: Int
    /// Length of this view in bytes.
    public let byteCount: Int

    @inlinable
    public init(storage: BufferStorage, byteOffset: Int, byteCount: Int) {
        self.storage = storage
        self.byteOffset = byteOffset
        self.byteCount = byteCount
    }

    /// An empty buffer.
    public static var empty: Buffer { Buffer(storage: BufferStorage(byteCount: 0), byteOffset: 0, byteCount: 0) }

    /// The first byte of this view.
    @inlinable
    public var baseAddress: UnsafeRawPointer { UnsafeRawPointer(storage.pointer + byteOffset) }

    /// A view of `count` bytes starting `offset` bytes into this one.
    @inlinable
    public func slice(byteOffset offset: Int, byteCount count: Int) -> Buffer {
        precondition(offset >= 0 && count >= 0 && offset + count <= byteCount, "buffer slice out of range")
        return Buffer(storage: storage, byteOffset: byteOffset + offset, byteCount: count)
    }

    /// Calls `body` with the bytes of this view as values of type `T`.
    @inlinable
    public func withUnsafeBufferPointer<T, R>(as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) rethrows -> R {
        let n = byteCount / MemoryLayout<T>.stride
        return try withExtendedLifetime(storage) {
            try body(UnsafeBufferPointer(start: baseAddress.assumingMemoryBound(to: T.self), count: n))
        }
    }

    /// The bytes of this view as values of type `T`; the caller keeps `self` alive while using it.
    @inlinable
    public func typed<T>(_ type: T.Type) -> UnsafeBufferPointer<T> {
        UnsafeBufferPointer(start: baseAddress.assumingMemoryBound(to: T.self), count: byteCount / MemoryLayout<T>.stride)
    }

    /// Allocates a buffer of `count` values of `T` and lets `body` write every one of them.
    @inlinable
    public static func build<T>(
        count: Int, of type: T.Type, _ body: (UnsafeMutableBufferPointer<T>) throws -> Void
    ) rethrows -> Buffer {
        let bytes = count * MemoryLayout<T>.stride
        let storage = BufferStorage(uninitializedByteCount: bytes)
        let p = storage.pointer.bindMemory(to: T.self, capacity: Swift.max(count, 1))
        try body(UnsafeMutableBufferPointer(start: p, count: count))
        return Buffer(storage: storage, byteOffset: 0, byteCount: bytes)
    }

    /// A buffer holding a copy of `values`.
    @inlinable
    public init<T>(copying values: some Collection<T>) {
        let n = values.count
        self = Buffer.build(count: n, of: T.self) { out in
            _ = out.initialize(from: values)
        }
    }
}
