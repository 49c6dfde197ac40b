import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Owns one aligned allocation and frees it when the last ``Buffer`` that refers to it is gone.
public final class BufferStorage: Sendable {
    // The pointer is written once at initialisation and never mutated afterwards through this class.
    /// The start of the allocation, aligned as requested; it never changes.
    nonisolated(unsafe) public let pointer: UnsafeMutableRawPointer
    /// The number of bytes requested (the allocation is at least this large).
    public let byteCount: Int
    /// What keeps borrowed memory alive (a file mapping, say); nil when this storage owns its allocation.
    let owner: (any AnyObject & Sendable)?

    /// Memory this storage does not own and never frees: `owner` keeps it alive (and unchanged) for as
    /// long as any buffer refers to this storage. For bytes used in place, such as a mapped file.
    public init(borrowing pointer: UnsafeRawPointer, byteCount: Int, owner: any AnyObject & Sendable) {
        self.pointer = UnsafeMutableRawPointer(mutating: pointer)
        self.byteCount = Swift.max(byteCount, 0)
        self.owner = owner
    }

    /// Allocates `byteCount` bytes aligned to `alignment` (a power of two); the memory is zeroed.
    public init(byteCount: Int, alignment: Int = Buffer.defaultAlignment) {
        self.byteCount = byteCount
        self.pointer = Self.allocate(byteCount, alignment)
        self.owner = nil
        self.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: Swift.max(byteCount, 1))
    }

    /// Allocates without zeroing; every byte must be written before the buffer is shared.
    public init(uninitializedByteCount byteCount: Int, alignment: Int = Buffer.defaultAlignment) {
        self.byteCount = byteCount
        self.pointer = Self.allocate(byteCount, alignment)
        self.owner = nil
    }

    /// Buffers this large are aligned to 2 MiB and asked to be backed by huge pages: a fresh result
    /// is otherwise dominated by one page fault per 4 KiB on first touch.
    static let hugePageThreshold = 4 << 20
    static let hugePageSize = 2 << 20

    private static func allocate(_ byteCount: Int, _ alignment: Int) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        let size = Swift.max(byteCount, 1)
        if size >= hugePageThreshold {
            let rounded = (size + hugePageSize - 1) / hugePageSize * hugePageSize
            if let reused = LargeBlockCache.shared.take(rounded) { return reused }
            if posix_memalign(&raw, hugePageSize, rounded) == 0, let raw {
                #if canImport(Glibc)
                    _ = madvise(raw, rounded, MADV_HUGEPAGE)
                #endif
                return raw
            }
        }
        guard posix_memalign(&raw, Swift.max(alignment, MemoryLayout<Int>.size), size) == 0, let raw else {
            fatalError("out of memory allocating \(byteCount) bytes")
        }
        return raw
    }

    deinit {
        if owner != nil { return }
        if byteCount >= Self.hugePageThreshold {
            let rounded = (byteCount + Self.hugePageSize - 1) / Self.hugePageSize * Self.hugePageSize
            if LargeBlockCache.shared.put(pointer, rounded) { return }
        }
        free(pointer)
    }
}

/// An immutable, aligned run of bytes. Slicing shares the allocation.
///
/// `Buffer` is frozen so that kernels compiled into plugins read its fields directly;
/// its layout is a permanent ABI promise.
@frozen
public struct Buffer: Sendable {
    /// The alignment of new allocations, in bytes (one cache line).
    public static let defaultAlignment = 64

    /// The allocation this view shares; it stays alive as long as any buffer refers to it.
    public let storage: BufferStorage
    /// Byte offset of this view into the storage.
    public let byteOffset: Int
    /// Length of this view in bytes.
    public let byteCount: Int

    /// A view of `byteCount` bytes starting `byteOffset` bytes into `storage`.
    /// - Throws: ``EddyError/Code/outOfBounds`` when the range does not lie within the storage.
    public init(storage: BufferStorage, byteOffset: Int, byteCount: Int) throws {
        let (end, overflow) = byteOffset.addingReportingOverflow(byteCount)
        guard byteOffset >= 0, byteCount >= 0, !overflow, end <= storage.byteCount else {
            throw EddyError(
                .outOfBounds,
                "bytes \(byteOffset)..<\(byteOffset &+ byteCount) do not fit a storage of \(storage.byteCount) bytes")
        }
        self.init(uncheckedStorage: storage, byteOffset: byteOffset, byteCount: byteCount)
    }

    /// The checks of ``init(storage:byteOffset:byteCount:)`` hold by construction (the engine's own use).
    @inlinable
    init(uncheckedStorage storage: BufferStorage, byteOffset: Int, byteCount: Int) {
        self.storage = storage
        self.byteOffset = byteOffset
        self.byteCount = byteCount
    }

    /// An empty buffer.
    public static var empty: Buffer {
        Buffer(uncheckedStorage: BufferStorage(byteCount: 0), byteOffset: 0, byteCount: 0)
    }

    /// The first byte of this view.
    @inlinable
    public var baseAddress: UnsafeRawPointer { UnsafeRawPointer(storage.pointer + byteOffset) }

    /// A view of `count` bytes starting `offset` bytes into this one.
    @inlinable
    /// - Throws: ``EddyError/Code/outOfBounds`` when the range is not within this view.
    public func slice(byteOffset offset: Int, byteCount count: Int) throws -> Buffer {
        guard offset >= 0, count >= 0, offset <= byteCount, count <= byteCount - offset else {
            throw EddyError(
                .outOfBounds, "bytes \(offset)..<\(offset &+ count) out of bounds for a buffer of \(byteCount) bytes")
        }
        return uncheckedSlice(byteOffset: offset, byteCount: count)
    }

    /// ``slice(byteOffset:byteCount:)`` where the engine knows the range is within this view.
    @inlinable
    func uncheckedSlice(byteOffset offset: Int, byteCount count: Int) -> Buffer {
        Buffer(uncheckedStorage: storage, byteOffset: byteOffset + offset, byteCount: count)
    }

    /// Calls `body` with the bytes of this view as values of type `T`.
    @inlinable
    public func withUnsafeBufferPointer<T, R>(as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) rethrows
        -> R
    {
        let n = byteCount / MemoryLayout<T>.stride
        return try withExtendedLifetime(storage) {
            try body(UnsafeBufferPointer(start: baseAddress.assumingMemoryBound(to: T.self), count: n))
        }
    }

    /// The bytes of this view as values of type `T`; the caller keeps `self` alive while using it.
    @inlinable
    public func typed<T>(_ type: T.Type) -> UnsafeBufferPointer<T> {
        UnsafeBufferPointer(
            start: baseAddress.assumingMemoryBound(to: T.self), count: byteCount / MemoryLayout<T>.stride)
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
        return Buffer(uncheckedStorage: storage, byteOffset: 0, byteCount: bytes)
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

/// Keeps a few recently freed large blocks for reuse: a query that runs again gets memory that is
/// already mapped, instead of paying a page fault per page of a fresh mapping. Bounded in bytes.
final class LargeBlockCache: Sendable {
    static let shared = LargeBlockCache()
    static let capacityBytes = 512 << 20

    private struct State {
        var blocks: [Int: [UnsafeMutableRawPointer]] = [:]
        var bytes = 0
    }
    // Raw pointers are owned by the cache while listed here; only touched under the lock.
    private let state = Mutex(UnsafeSendableBox(State()))

    func take(_ size: Int) -> UnsafeMutableRawPointer? {
        state.withLock { box in
            guard var list = box.value.blocks[size], let p = list.popLast() else { return nil }
            box.value.blocks[size] = list
            box.value.bytes -= size
            return p
        }
    }

    /// Keeps the block if there is room; false means the caller must free it.
    func put(_ pointer: UnsafeMutableRawPointer, _ size: Int) -> Bool {
        state.withLock { box in
            guard box.value.bytes + size <= Self.capacityBytes else { return false }
            box.value.blocks[size, default: []].append(pointer)
            box.value.bytes += size
            return true
        }
    }
}

/// Carries a value that is only ever accessed under a lock.
struct UnsafeSendableBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
