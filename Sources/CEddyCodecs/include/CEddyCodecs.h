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

#endif
