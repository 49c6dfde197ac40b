extension BoolArray {
    /// The value of element `index`: nil when it is null.
    ///
    /// - Throws: ``EddyError/Code/outOfBounds`` when `index` is not within the array.
    public func value(at index: Int) throws -> Bool? {
        try checkIndex(index)
        return validity.isValid(index) ? bits[index] : nil
    }

    /// Builds a bool result by ranges: a run of equal answers (or of nulls) is one call, written a
    /// word at a time, and 64 answers computed at once are one ``append(word:count:)``.
    ///
    /// The validity is only materialised from the first null on, so a result without nulls costs one
    /// bitmap. ``finish()`` gives a nullable array when a null or rows of a nullable array were
    /// appended, and a non-nullable one otherwise; the typed registrations
    /// (``PluginRegistrar/compare(on:name:_:)``) adjust that to the parent's nullability.
    ///
    /// ```swift
    /// var result = BoolArray.Builder(capacity: array.count)
    /// try result.append(true, count: 100)
    /// try result.append(nil, count: 3)
    /// let bools = result.finish()  // 103 rows, 3 of them null
    /// ```
    public struct Builder {
        var bits: BitWriter
        /// Empty until the first null (`hasNulls`): every row so far is valid.
        var valid: BitWriter
        /// Whether `valid` holds the validity. A flag rather than an optional writer: mutating through
        /// an optional copies the writer out and back, a retain and a release per run.
        var hasNulls = false

        /// An empty builder with room reserved for `capacity` rows.
        public init(capacity: Int = 0) {
            bits = BitWriter(capacity: Swift.max(capacity, 0))
            valid = BitWriter(capacity: 0)
        }

        /// The number of rows appended so far.
        public var count: Int { bits.count }

        /// Appends `count` rows of `value` (nil appends nulls).
        ///
        /// - Throws: ``EddyError/Code/invalidArgument`` for a negative `count`.
        public mutating func append(_ value: Bool?, count n: Int = 1) throws {
            guard n >= 0 else { throw EddyError(.invalidArgument, "append(_:count:) with a negative count \(n)") }
            guard let value else {
                if n == 0 { return }
                startValidity()
                valid.append(false, count: n)
                bits.append(false, count: n)
                return
            }
            bits.append(value, count: n)
            if hasNulls { valid.append(true, count: n) }
        }

        /// Appends the low `count` bits of `word` as `count` valid rows, least significant bit first.
        ///
        /// - Throws: ``EddyError/Code/invalidArgument`` when `count` is not within `0...64`.
        public mutating func append(word: UInt64, count n: Int = 64) throws {
            guard n >= 0 && n <= 64 else {
                throw EddyError(.invalidArgument, "append(word:count:) takes 0...64 bits, not \(n)")
            }
            bits.append(word: word, count: n)
            if hasNulls { valid.append(true, count: n) }
        }

        /// Appends rows `range` of `array`, values and nulls, a word at a time.
        ///
        /// - Throws: ``EddyError/Code/outOfBounds`` when `range` is not within `array`.
        public mutating func append(_ array: BoolArray, rows range: Range<Int>) throws {
            let part = try array.slice(range.lowerBound, range.count)
            if part.count == 0 { return }
            switch part.validity {
            case .allValid:
                bits.append(contentsOf: part.bits)
                if hasNulls { valid.append(true, count: range.count) }
            case .allInvalid:
                try append(nil, count: range.count)
            case .bitmap(let v):
                startValidity()
                bits.append(contentsOf: part.bits)
                valid.append(contentsOf: v)
            }
        }

        /// Keeps the validity from here on (the rows so far are all valid).
        mutating func startValidity() {
            if hasNulls { return }
            valid = BitWriter(capacity: bits.bitCapacity)
            valid.append(true, count: bits.count)
            hasNulls = true
        }

        /// The rows appended so far as a bool array; the builder is left empty.
        public mutating func finish() -> BoolArray {
            let values = bits.finish()
            let validity = hasNulls ? valid.finish() : nil
            self = Builder()
            guard let validity else { return BoolArray(uncheckedBits: values) }
            return BoolArray(uncheckedBits: values, validity: .bitmap(validity), nullability: .nullable)
        }
    }
}
