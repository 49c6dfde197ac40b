extension PrimitiveArray {
    /// Builds a primitive result from runs and slices, written in place into the result's own buffer
    /// (no copy at ``finish()``): a run is one ``append(_:count:)``, a stretch of another array's
    /// values one ``append(_:rows:)``.
    ///
    /// The hot appends are inlinable, so they are specialized for `T` in the plugin that calls them.
    /// The validity is only materialised from the first null on; ``finish()`` gives a nullable array
    /// when a null or rows of a nullable array were appended, and a non-nullable one otherwise (typed
    /// registrations adjust that to the parent's nullability).
    ///
    /// ```swift
    /// var result = PrimitiveArray.Builder<Int64>(capacity: array.count)
    /// try result.append(7, count: 1_000)
    /// try result.append(nil, count: 2)
    /// let column = result.finish()  // 1,002 rows, 2 of them null
    /// ```
    public struct Builder<T: NativeType> {
        @usableFromInline var storage: BufferStorage
        @usableFromInline var capacity: Int
        @usableFromInline var rows: Int = 0
        /// Nil until the first null: every row so far is valid.
        @usableFromInline var valid: BitmapBuilder?

        /// An empty builder with room for `capacity` rows (it grows past that when needed).
        public init(capacity: Int = 0) {
            self.capacity = Swift.max(capacity, 0)
            storage = BufferStorage(uninitializedByteCount: self.capacity * MemoryLayout<T>.stride)
        }

        /// The number of rows appended so far.
        public var count: Int { rows }

        /// Appends `count` rows of `value` (nil appends nulls, stored as zero).
        ///
        /// - Throws: ``EddyError/Code/invalidArgument`` for a negative `count`.
        @inlinable
        public mutating func append(_ value: T?, count n: Int = 1) throws {
            guard n >= 0, n <= Int.max / MemoryLayout<T>.stride - rows else {
                throw EddyError(.invalidArgument, "append(_:count:) cannot append \(n) rows")
            }
            reserve(n)
            let p = storage.pointer.assumingMemoryBound(to: T.self) + rows
            p.initialize(repeating: value ?? T.zero, count: n)
            if value == nil { if n > 0 { appendValidity(false, n) } } else if valid != nil { appendValidity(true, n) }
            rows += n
        }

        /// Appends `values`, all valid.
        @inlinable
        public mutating func append(contentsOf values: UnsafeBufferPointer<T>) {
            if valid != nil { appendValidity(true, values.count) }
            copyIn(values)
        }

        /// Appends rows `range` of `array`, values and nulls.
        ///
        /// - Throws: ``EddyError/Code/typeMismatch`` when `array` does not hold `T` values,
        ///   ``EddyError/Code/outOfBounds`` when `range` is not within it.
        @inlinable
        public mutating func append(_ array: PrimitiveArray, rows range: Range<Int>) throws {
            let part = try array.slice(range.lowerBound, range.count)
            try part.withValues(T.self) { copyIn($0) }
            appendValidity(of: part)
        }

        /// Copies `values` in after the last row; the caller records their validity.
        @inlinable
        mutating func copyIn(_ values: UnsafeBufferPointer<T>) {
            reserve(values.count)
            if let base = values.baseAddress {
                (storage.pointer.assumingMemoryBound(to: T.self) + rows).initialize(from: base, count: values.count)
            }
            rows += values.count
        }

        /// The rows appended so far as a primitive array; the builder is left empty.
        public mutating func finish() -> PrimitiveArray {
            let buffer = Buffer(
                uncheckedStorage: storage, byteOffset: 0, byteCount: rows * MemoryLayout<T>.stride)
            let validity: Validity
            var nullability = Nullability.nonNullable
            if var v = valid {
                validity = .bitmap(v.finish())
                nullability = .nullable
            } else {
                validity = .allValid
            }
            let result = PrimitiveArray(
                uncheckedPType: T.ptype, buffer: buffer, count: rows, validity: validity, nullability: nullability)
            self = Builder(capacity: 0)
            return result
        }

        /// Makes room for `n` more rows, doubling the allocation when it is too small.
        @usableFromInline
        mutating func reserve(_ n: Int) {
            if n <= capacity - rows { return }
            let wanted = Swift.max(rows + n, capacity * 2, 16)
            let grown = BufferStorage(uninitializedByteCount: wanted * MemoryLayout<T>.stride)
            grown.pointer.copyMemory(from: storage.pointer, byteCount: rows * MemoryLayout<T>.stride)
            storage = grown
            capacity = wanted
        }

        /// Records `n` rows of validity `isValid` (materialising the validity at the first null).
        @usableFromInline
        mutating func appendValidity(_ isValid: Bool, _ n: Int) {
            if valid == nil {
                if isValid { return }
                var v = BitmapBuilder(capacity: rows + n)
                v.append(true, count: rows)
                valid = v
            }
            valid!.append(isValid, count: n)
        }

        /// Records the validity of `part`, whose values were just appended (so `rows` already counts them).
        @usableFromInline
        mutating func appendValidity(of part: PrimitiveArray) {
            if part.count == 0 { return }
            let before = rows - part.count
            switch part.validity {
            case .allValid:
                if valid != nil { valid!.append(true, count: part.count) }
            case .allInvalid:
                if valid == nil {
                    var v = BitmapBuilder(capacity: rows)
                    v.append(true, count: before)
                    valid = v
                }
                valid!.append(false, count: part.count)
            case .bitmap(let b):
                if valid == nil {
                    var v = BitmapBuilder(capacity: rows)
                    v.append(true, count: before)
                    valid = v
                }
                valid!.append(contentsOf: b)
            }
        }
    }
}
