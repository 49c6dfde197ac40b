// Decompressors for Parquet pages. zlib is linked (its headers are on every machine of this image);
// zstd, lz4 and brotli are opened at run time by their sonames, so that a machine with only the
// runtime libraries (no -dev packages) builds and reads them, and one without them refuses the
// codec by name instead of failing to start. Every call is bounded by the caller's capacity.
#include "CEddyCodecs.h"
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <zlib.h>

int eddy_gzip_decompress(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap, size_t *out_len) {
    *out_len = 0;
    size_t in_done = 0, out_done = 0;
    if (src_len == 0) return EDDY_CODEC_CORRUPT;
    while (in_done < src_len) {
        z_stream z = {0};
        // 15 + 32: a gzip or zlib header, detected.
        if (inflateInit2(&z, 15 + 32) != Z_OK) return EDDY_CODEC_CORRUPT;
        int status = Z_OK;
        while (status == Z_OK) {
            size_t in_left = src_len - in_done, out_left = dst_cap - out_done;
            z.next_in = (Bytef *)(src + in_done);
            z.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
            z.next_out = dst + out_done;
            z.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
            uInt in_before = z.avail_in, out_before = z.avail_out;
            status = inflate(&z, Z_NO_FLUSH);
            in_done += in_before - z.avail_in;
            out_done += out_before - z.avail_out;
            if (status == Z_BUF_ERROR || (status == Z_OK && in_before == z.avail_in && out_before == z.avail_out)) {
                inflateEnd(&z);
                return out_done == dst_cap ? EDDY_CODEC_TOO_LARGE : EDDY_CODEC_CORRUPT;
            }
        }
        inflateEnd(&z);
        if (status != Z_STREAM_END) return EDDY_CODEC_CORRUPT;
    }
    *out_len = out_done;
    return EDDY_CODEC_OK;
}

static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;
static size_t (*zstd_decompress)(void *, size_t, const void *, size_t);
static unsigned (*zstd_is_error)(size_t);
static int (*zstd_error_code)(size_t);

// One decompression context per thread, kept: ZSTD_decompress makes and frees one per call, and a
// query decompresses a few hundred pages.
static void *(*zstd_create_dctx)(void);
static size_t (*zstd_free_dctx)(void *);
static size_t (*zstd_decompress_dctx)(void *, void *, size_t, const void *, size_t);
static pthread_key_t zstd_dctx_key;
static int zstd_dctx_key_made;

static void zstd_dctx_free(void *ctx) {
    if (ctx && zstd_free_dctx) zstd_free_dctx(ctx);
}

static void zstd_open(void) {
    void *h = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    zstd_is_error = (unsigned (*)(size_t))dlsym(h, "ZSTD_isError");
    zstd_error_code = (int (*)(size_t))dlsym(h, "ZSTD_getErrorCode");
    zstd_decompress = (size_t (*)(void *, size_t, const void *, size_t))dlsym(h, "ZSTD_decompress");
    zstd_create_dctx = (void *(*)(void))dlsym(h, "ZSTD_createDCtx");
    zstd_free_dctx = (size_t (*)(void *))dlsym(h, "ZSTD_freeDCtx");
    zstd_decompress_dctx =
        (size_t (*)(void *, void *, size_t, const void *, size_t))dlsym(h, "ZSTD_decompressDCtx");
    if (zstd_create_dctx && zstd_free_dctx && zstd_decompress_dctx)
        zstd_dctx_key_made = pthread_key_create(&zstd_dctx_key, zstd_dctx_free) == 0;
}

int eddy_zstd_decompress(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap, size_t *out_len) {
    *out_len = 0;
    pthread_once(&zstd_once, zstd_open);
    if (!zstd_decompress || !zstd_is_error) return EDDY_CODEC_UNAVAILABLE;
    void *ctx = NULL;
    if (zstd_dctx_key_made) {
        ctx = pthread_getspecific(zstd_dctx_key);
        if (!ctx && (ctx = zstd_create_dctx()) != NULL && pthread_setspecific(zstd_dctx_key, ctx) != 0) {
            zstd_free_dctx(ctx);
            ctx = NULL;
        }
    }
    // A context starts every frame afresh: one left by a corrupt page decompresses the next correctly.
    size_t n = ctx ? zstd_decompress_dctx(ctx, dst, dst_cap, src, src_len) : zstd_decompress(dst, dst_cap, src, src_len);
    if (zstd_is_error(n)) {
        // ZSTD_error_dstSize_tooSmall is 70 in every release of the stable error enum.
        return zstd_error_code && zstd_error_code(n) == 70 ? EDDY_CODEC_TOO_LARGE : EDDY_CODEC_CORRUPT;
    }
    *out_len = n;
    return EDDY_CODEC_OK;
}

static pthread_once_t lz4_once = PTHREAD_ONCE_INIT;
static int (*lz4_decompress_safe)(const char *, char *, int, int);

static void lz4_open(void) {
    void *h = dlopen("liblz4.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    lz4_decompress_safe = (int (*)(const char *, char *, int, int))dlsym(h, "LZ4_decompress_safe");
}

int eddy_lz4_raw_decompress(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap, size_t *out_len) {
    *out_len = 0;
    pthread_once(&lz4_once, lz4_open);
    if (!lz4_decompress_safe) return EDDY_CODEC_UNAVAILABLE;
    if (src_len > INT_MAX || dst_cap > INT_MAX) return EDDY_CODEC_TOO_LARGE;
    int n = lz4_decompress_safe((const char *)src, (char *)dst, (int)src_len, (int)dst_cap);
    if (n < 0) return EDDY_CODEC_CORRUPT;
    *out_len = (size_t)n;
    return EDDY_CODEC_OK;
}

static pthread_once_t brotli_once = PTHREAD_ONCE_INIT;
static int (*brotli_decompress)(size_t, const uint8_t *, size_t *, uint8_t *);

static void brotli_open(void) {
    void *h = dlopen("libbrotlidec.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    brotli_decompress = (int (*)(size_t, const uint8_t *, size_t *, uint8_t *))dlsym(h, "BrotliDecoderDecompress");
}

int eddy_brotli_decompress(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_cap, size_t *out_len) {
    *out_len = 0;
    pthread_once(&brotli_once, brotli_open);
    if (!brotli_decompress) return EDDY_CODEC_UNAVAILABLE;
    size_t n = dst_cap;
    // BROTLI_DECODER_RESULT_SUCCESS is 1; a stream longer than the capacity is an error too.
    if (brotli_decompress(src_len, src, &n, dst) != 1) return EDDY_CODEC_CORRUPT;
    *out_len = n;
    return EDDY_CODEC_OK;
}
