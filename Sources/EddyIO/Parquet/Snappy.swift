/// Snappy's raw block format (what Parquet's SNAPPY codec holds), decompressed with every length and
/// back-reference checked: the output is exactly the length the block declares and the caller expects.
enum Snappy {
    /// Decompresses `input` into `output`, which must be exactly the block's declared length.
    /// - Returns: the bytes written (always `output.count`).
    /// - Throws: ``ParquetProblem`` naming the first check that failed.
    static func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let (length, end) = try preamble(input)
        var ip = end
        let n = input.count
        guard length == UInt64(output.count) else {
            throw ParquetProblem("snappy: the block holds \(length) bytes, the page header says \(output.count)")
        }
        guard let out = output.baseAddress?.assumingMemoryBound(to: UInt8.self), let inBase = input.baseAddress
        else {
            guard ip == n else { throw ParquetProblem("snappy: data after an empty block") }
            return 0
        }
        let cap = output.count
        var op = 0
        while ip < n {
            let tag = input[ip]
            ip += 1
            var len: Int
            var offset: Int
            switch tag & 3 {
            case 0:
                // A literal: its length in the tag, or in the 1...4 bytes after it.
                len = Int(tag >> 2)
                if len >= 60 {
                    let extra = len - 59
                    guard n - ip >= extra else { throw ParquetProblem("snappy: literal length cut short") }
                    len = 0
                    for k in 0..<extra { len |= Int(input[ip + k]) << (8 * k) }
                    ip += extra
                }
                len += 1
                guard len <= n - ip else { throw ParquetProblem("snappy: a literal runs past the input") }
                guard len <= cap - op else { throw ParquetProblem("snappy: a literal runs past the declared length") }
                (out + op).update(from: inBase.assumingMemoryBound(to: UInt8.self) + ip, count: len)
                ip += len
                op += len
                continue
            case 1:
                guard ip < n else { throw ParquetProblem("snappy: copy cut short") }
                len = 4 + Int((tag >> 2) & 7)
                offset = Int(tag >> 5) << 8 | Int(input[ip])
                ip += 1
            case 2:
                guard n - ip >= 2 else { throw ParquetProblem("snappy: copy cut short") }
                len = 1 + Int(tag >> 2)
                offset = Int(input[ip]) | Int(input[ip + 1]) << 8
                ip += 2
            default:
                guard n - ip >= 4 else { throw ParquetProblem("snappy: copy cut short") }
                len = 1 + Int(tag >> 2)
                offset = Int(input[ip]) | Int(input[ip + 1]) << 8 | Int(input[ip + 2]) << 16 | Int(input[ip + 3]) << 24
                ip += 4
            }
            guard offset > 0, offset <= op else {
                throw ParquetProblem("snappy: a copy from \(offset) bytes back at output byte \(op)")
            }
            guard len <= cap - op else { throw ParquetProblem("snappy: a copy runs past the declared length") }
            if offset >= len {
                (out + op).update(from: out + (op - offset), count: len)
                op += len
                continue
            }
            // Byte by byte: the copy overlaps its own output (a run).
            var from = op - offset
            for _ in 0..<len {
                out[op] = out[from]
                op += 1
                from += 1
            }
        }
        guard op == cap else { throw ParquetProblem("snappy: \(op) bytes decompressed, \(cap) declared") }
        return op
    }

    /// The block's preamble: the uncompressed length as a varint of at most 5 bytes (32 bits), and the
    /// bytes it takes.
    private static func preamble(_ input: UnsafeRawBufferPointer) throws -> (length: UInt64, end: Int) {
        var ip = 0
        let n = input.count
        var length: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard ip < n, shift <= 28 else { throw ParquetProblem("snappy: bad length preamble") }
            let b = input[ip]
            ip += 1
            length |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return (length, ip) }
            shift += 7
        }
    }
}
