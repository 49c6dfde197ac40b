/// Text that is an unsigned decimal integer between a fixed prefix and suffix — ids and codes such as
/// `T00042`, `note 123` or `order-17/A` — stored as the integers (which compress again: frame of
/// reference, bit-packing), the prefix and suffix once.
///
/// `width` 0 means each number is written in its shortest form (no leading zeros); otherwise every
/// number is written with exactly `width` digits, zero-padded. The round trip is exact: the encoder
/// only takes a column whose every value has that one form.
public final class IntStringArray: ArrayNode {
    public static let id = EncodingID("eddy.intstring")
    /// The bytes before the number.
    public let prefix: [UInt8]
    /// The bytes after the number.
    public let suffix: [UInt8]
    /// 0 for the shortest form, else the zero-padded number of digits (1…20).
    public let width: Int
    /// The numbers: `u64`, nullable exactly when the array is (a null number is a null string).
    public let numbers: any ArrayNode
    public let dtype: DType

    /// Text around `numbers`.
    /// - Throws: ``EddyError/Code/invalidArgument`` for a width outside 0…20, a prefix and suffix longer
    ///   than 64 KiB together, or numbers that are not `u64` of the array's nullability.
    public init(prefix: [UInt8], suffix: [UInt8], width: Int, numbers: any ArrayNode, nullability: Nullability)
        throws
    {
        guard (0...20).contains(width) else { throw EddyError(.invalidArgument, "width \(width) not in 0…20") }
        guard prefix.count + suffix.count <= 1 << 16 else {
            throw EddyError(.invalidArgument, "prefix and suffix longer than 64 KiB")
        }
        guard numbers.dtype == .primitive(.uint64, nullability) else {
            throw EddyError(.typeMismatch, "intstring numbers must be u64 (\(nullability)), got \(numbers.dtype)")
        }
        self.prefix = prefix
        self.suffix = suffix
        self.width = width
        self.numbers = numbers
        self.dtype = .utf8(nullability)
    }

    public var count: Int { numbers.count }
    public var children: [any ArrayNode] { [numbers] }
    public var metadataDescription: String {
        let p = String(decoding: prefix, as: UTF8.self)
        let s = String(decoding: suffix, as: UTF8.self)
        return "format='\(p)\(width == 0 ? "#" : String(repeating: "0", count: width))\(s)'"
    }

    public func replacingChildren(_ children: [any ArrayNode]) throws -> any ArrayNode {
        try IntStringArray(
            prefix: prefix, suffix: suffix, width: width, numbers: children[0], nullability: dtype.nullability)
    }

    static func digitCount(_ v: UInt64) -> Int {
        var n = 1
        var x = v
        while x >= 10 {
            x /= 10
            n += 1
        }
        return n
    }

    /// The number's text length, or nil when it has more digits than a fixed width allows.
    func numberLength(_ v: UInt64) -> Int? {
        let d = Self.digitCount(v)
        if width == 0 { return d }
        return d <= width ? width : nil
    }

    public func execute(_ ctx: ExecutionCtx) throws -> ExecuteStep {
        guard let n = numbers as? PrimitiveArray else { return .executeChild(0, .canonical) }
        let rows = n.count
        let values = n.buffer.typed(UInt64.self)
        let fixed = prefix.count + suffix.count
        let validity = n.validity
        let validBits = ValidityBits(validity)
        defer { withExtendedLifetime(validity) {} }
        // Lengths first, with every sum checked: offsets are 32-bit.
        var total = 0
        for i in 0..<rows where validBits.isValid(i) {
            guard let len = numberLength(values[i]) else {
                throw EddyError(
                    .invalidArgument, "intstring value \(values[i]) at row \(i) has more than \(width) digits")
            }
            total += fixed + len
            guard total <= Int(Int32.max) else {
                throw EddyError(.outOfBounds, "intstring text would exceed \(Int32.max) bytes")
            }
        }
        var offsets = [Int32](repeating: 0, count: rows + 1)
        defer { withExtendedLifetime(n) {} }
        let bytes = Buffer.build(count: total, of: UInt8.self) { out in
            var at = 0
            var digits = [UInt8](repeating: 0, count: 20)
            for i in 0..<rows {
                if validBits.isValid(i) {
                    for b in prefix {
                        out[at] = b
                        at += 1
                    }
                    var v = values[i]
                    var k = 0
                    repeat {
                        digits[k] = UInt8(truncatingIfNeeded: v % 10) + 48
                        v /= 10
                        k += 1
                    } while v > 0
                    for _ in k..<Swift.max(k, width) {
                        out[at] = 48
                        at += 1
                    }
                    while k > 0 {
                        k -= 1
                        out[at] = digits[k]
                        at += 1
                    }
                    for b in suffix {
                        out[at] = b
                        at += 1
                    }
                }
                offsets[i + 1] = Int32(at)
            }
        }
        return .done(
            VarBinArray(
                uncheckedDType: dtype, offsets: Buffer(copying: offsets), bytes: bytes, count: rows,
                validity: n.validity))
    }

    public func scalar(at index: Int) throws -> Scalar {
        try checkIndex(index)
        let s = try numbers.scalar(at: index)
        guard case .uint(let v) = s.value else { return .null(dtype) }
        guard let len = numberLength(v) else {
            throw EddyError(.invalidArgument, "intstring value \(v) has more than \(width) digits")
        }
        let digits = String(v)
        let text =
            String(decoding: prefix, as: UTF8.self) + String(repeating: "0", count: len - digits.count) + digits
            + String(decoding: suffix, as: UTF8.self)
        return Scalar(.utf8(text), dtype)
    }

    /// The same format over other numbers.
    func withNumbers(_ numbers: any ArrayNode) throws -> IntStringArray {
        try IntStringArray(
            prefix: prefix, suffix: suffix, width: width, numbers: numbers, nullability: dtype.nullability)
    }

    /// The number `text` stands for in this format, or nil when `text` does not have the format.
    func number(of text: [UInt8]) -> UInt64? {
        guard text.count > prefix.count + suffix.count, text.starts(with: prefix),
            text.reversed().starts(with: suffix.reversed())
        else { return nil }
        let middle = text[prefix.count..<(text.count - suffix.count)]
        return Self.parse(middle, width: width)
    }

    /// The number of a run of ASCII digits written in the format of `width`, or nil.
    static func parse(_ digits: ArraySlice<UInt8>, width: Int) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 19 || (digits.count == 20 && width == 20) else { return nil }
        if width == 0 {
            if digits.count > 1 && digits.first == 48 { return nil }
        } else if digits.count != width {
            return nil
        }
        var v: UInt64 = 0
        for d in digits {
            guard d >= 48 && d <= 57 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d - 48))
            if o1 || o2 { return nil }
            v = a
        }
        return v
    }

    /// Encodes a utf8 column whose every value is one prefix, one unsigned decimal integer (in one
    /// form: shortest, or zero-padded to one width) and one suffix; nil when any value differs.
    public static func encode(_ array: VarBinArray) -> (
        prefix: [UInt8], suffix: [UInt8], width: Int, numbers: PrimitiveArray
    )? {
        guard array.dtype.isUTF8, array.count > 0 else { return nil }
        let offsets = array.offsets.typed(Int32.self)
        let base = array.bytes.baseAddress.assumingMemoryBound(to: UInt8.self)
        func value(_ i: Int) -> UnsafeBufferPointer<UInt8> {
            let s = Int(offsets[i])
            return UnsafeBufferPointer(start: base + s, count: Int(offsets[i + 1]) - s)
        }
        guard let first = (0..<array.count).first(where: { array.validity.isValid($0) }) else { return nil }
        let v0 = value(first)
        // The last run of digits of the first value splits it into prefix, number and suffix.
        guard let end = v0.lastIndex(where: { $0 >= 48 && $0 <= 57 }) else { return nil }
        var start = end
        while start > 0, v0[start - 1] >= 48 && v0[start - 1] <= 57 { start -= 1 }
        let prefix = Array(v0[0..<start])
        let suffix = Array(v0[(end + 1)...])
        var minLength = Int.max
        var maxLength = 0
        var leadingZero = false
        var numbers = [UInt64](repeating: 0, count: array.count)
        for i in 0..<array.count where array.validity.isValid(i) {
            let v = value(i)
            guard v.count > prefix.count + suffix.count, v.starts(with: prefix),
                v.reversed().starts(with: suffix.reversed())
            else { return nil }
            let digits = v[prefix.count..<(v.count - suffix.count)]
            guard digits.count <= 19 else { return nil }
            var n: UInt64 = 0
            for d in digits {
                guard d >= 48 && d <= 57 else { return nil }
                n = n * 10 + UInt64(d - 48)
            }
            if digits.count > 1 && digits.first == 48 { leadingZero = true }
            minLength = Swift.min(minLength, digits.count)
            maxLength = Swift.max(maxLength, digits.count)
            numbers[i] = n
        }
        // Zero-padded numbers need one width; otherwise the shortest form holds them all.
        if leadingZero && minLength != maxLength { return nil }
        let width = leadingZero ? maxLength : 0
        return (
            prefix, suffix, width,
            PrimitiveArray.build(
                UInt64.self, count: numbers.count, validity: array.validity, nullability: array.dtype.nullability
            ) {
                out in
                for i in numbers.indices { out[i] = numbers[i] }
            }
        )
    }
}
