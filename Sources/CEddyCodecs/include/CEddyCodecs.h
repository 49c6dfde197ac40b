#ifndef CEDDY_CODECS_H
#define CEDDY_CODECS_H
#include <stddef.h>
#include <stdint.h>

/// Outcomes of the decompressors below.
enum {
    EDDY_CODEC_OK = 0,
    /// The library is not on this machine (zstd, lz4 and brotli are opened at run time).
    EDDY_CODEC_UNAVAILABLE = 1,
    /// The input is not a valid stream of the format.
    EDDY_CODEC_CORRUPT = 2,
    /// The output would be larger than the capacity given.
    EDDY_CODEC_TOO_LARGE = 3,
};

/// Decompresses a gzip (or zlib) stream of `src_len` bytes into at most `dst_cap` bytes; concatenated
/// gzip members are read one after another. `*out_len` receives the bytes written.
int eddy_gzip_decompress(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap, size_t *out_len);

/// Decompresses zstd frames with libzstd.so.1 (opened on first use).
int eddy_zstd_decompress(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap, size_t *out_len);

/// Decompresses one raw LZ4 block (no frame) with liblz4.so.1 (opened on first use).
int eddy_lz4_raw_decompress(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap, size_t *out_len);

/// Decompresses a brotli stream with libbrotlidec.so.1 (opened on first use).
int eddy_brotli_decompress(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap, size_t *out_len);

/// Unpacks `count` values of `width` bits (1...32, least significant bit first, as Parquet packs them)
/// from the `in_len` bytes at `in` into `out`, an array of `count` integers of `out_size` bytes (1, 2
/// or 4; each value truncated to it). Reads no byte past `in + in_len`. Returns the largest value
/// before truncation (the caller checks it against the dictionary's size, which makes truncation
/// impossible), or UINT32_MAX when the bits of `count` values do not lie in `in_len` bytes (nothing
/// is written then).
uint32_t eddy_unpack_bits(const uint8_t *in, size_t in_len, unsigned width, size_t count, void *out,
                          unsigned out_size);

/// The bits of `src` where `mask` is set, packed into the low bits in order (BMI2's PEXT when the CPU
/// has it, a loop over the mask's bits otherwise).
uint64_t eddy_pext64(uint64_t src, uint64_t mask);

#endif
