internal import CEddyCodecs

/// The compression codecs of Parquet pages that this reader decompresses.
enum ParquetCodec {
    /// Largest uncompressed page this reader allocates for (a page header's claim is checked first).
    static let maxPageBytes = 1 << 30

    /// Whether codec `c` is read (LZO and Hadoop-framed LZ4 are not).
    static func isSupported(_ c: Int32) -> Bool { [0, 1, 2, 4, 6, 7].contains(c) }

    /// Decompresses one page body into exactly `size` bytes.
    /// - Throws: ``ParquetProblem`` naming the codec and what failed.
    static func decompress(_ codec: Int32, _ input: UnsafeRawBufferPointer, size: Int, limit: Int = maxPageBytes)
        throws -> [UInt8]
    {
        guard size >= 0, size <= limit else {
            throw ParquetProblem("a page claims \(size) bytes uncompressed, more than the \(limit) allowed")
        }
        if codec == 0 {
            guard input.count == size else {
                throw ParquetProblem("an uncompressed page of \(input.count) bytes claims \(size)")
            }
            return Array(input)
        }
        let name = ParquetNames.codec(codec)
        // Not zeroed first: a page that claims a large size but holds little touches only what it writes.
        var written = 0
        let out = try [UInt8](unsafeUninitializedCapacity: Swift.max(size, 1)) { dst, count in
            count = 0
            let full = UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(dst)[0..<size])
            if codec == 1 {
                written = try Snappy.decompress(input, into: full)
            } else {
                guard let src = input.baseAddress?.assumingMemoryBound(to: UInt8.self), let d = dst.baseAddress else {
                    throw ParquetProblem("\(name): empty page body")
                }
                var n = 0
                let status: Int32 =
                    switch codec {
                    case 2: eddy_gzip_decompress(src, input.count, d, size, &n)
                    case 4: eddy_brotli_decompress(src, input.count, d, size, &n)
                    case 6: eddy_zstd_decompress(src, input.count, d, size, &n)
                    case 7: eddy_lz4_raw_decompress(src, input.count, d, size, &n)
                    default: throw ParquetProblem("\(name) is not supported")
                    }
                // The outcomes of CEddyCodecs.h: 0 OK, 1 library unavailable, 2 corrupt, 3 too large.
                switch status {
                case 0: written = n
                case 1:
                    let lib = codec == 4 ? "libbrotlidec.so.1" : codec == 6 ? "libzstd.so.1" : "liblz4.so.1"
                    throw ParquetProblem("\(name) needs \(lib), which cannot be opened on this machine")
                case 3:
                    throw ParquetProblem(
                        "\(name): the page decompresses to more than the \(size) bytes its header says")
                default: throw ParquetProblem("\(name): the page does not decompress (corrupt data)")
                }
            }
            guard written == size else {
                throw ParquetProblem("\(name): the page decompresses to \(written) bytes, its header says \(size)")
            }
            count = size
        }
        return out
    }
}
