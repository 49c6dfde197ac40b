#include "CEddyIO.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
static int eddy_io_has_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return cached;
}

__attribute__((target("avx2"))) static void masks_avx2(const uint8_t *p, size_t whole, uint8_t a, uint8_t b,
                                                       uint8_t c, uint64_t *out) {
    const __m256i va = _mm256_set1_epi8((char)a), vb = _mm256_set1_epi8((char)b), vc = _mm256_set1_epi8((char)c);
    for (size_t w = 0; w < whole; w++) {
        const uint8_t *q = p + 64 * w;
        __m256i x0 = _mm256_loadu_si256((const __m256i *)q);
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(q + 32));
        __m256i m0 = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(x0, va), _mm256_cmpeq_epi8(x0, vb)),
                                     _mm256_cmpeq_epi8(x0, vc));
        __m256i m1 = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(x1, va), _mm256_cmpeq_epi8(x1, vb)),
                                     _mm256_cmpeq_epi8(x1, vc));
        uint64_t lo = (uint32_t)_mm256_movemask_epi8(m0);
        uint64_t hi = (uint32_t)_mm256_movemask_epi8(m1);
        out[w] = lo | (hi << 32);
    }
}

static void masks_sse2(const uint8_t *p, size_t whole, uint8_t a, uint8_t b, uint8_t c, uint64_t *out) {
    const __m128i va = _mm_set1_epi8((char)a), vb = _mm_set1_epi8((char)b), vc = _mm_set1_epi8((char)c);
    for (size_t w = 0; w < whole; w++) {
        uint64_t word = 0;
        for (int k = 0; k < 4; k++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + 64 * w + 16 * k));
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)),
                                     _mm_cmpeq_epi8(x, vc));
            word |= (uint64_t)(uint16_t)_mm_movemask_epi8(m) << (16 * k);
        }
        out[w] = word;
    }
}
#endif

static uint64_t mask_portable(const uint8_t *p, size_t len, uint8_t a, uint8_t b, uint8_t c) {
    uint64_t word = 0;
    for (size_t k = 0; k < len; k++) {
        uint8_t x = p[k];
        word |= (uint64_t)(x == a || x == b || x == c) << k;
    }
    return word;
}

void eddy_byte_masks(const uint8_t *p, size_t n, uint8_t a, uint8_t b, uint8_t c, uint64_t *out) {
    size_t whole = n / 64;
#if defined(__x86_64__)
    if (eddy_io_has_avx2()) masks_avx2(p, whole, a, b, c, out);
    else masks_sse2(p, whole, a, b, c, out);
#else
    for (size_t w = 0; w < whole; w++) out[w] = mask_portable(p + 64 * w, 64, a, b, c);
#endif
    if (n % 64 != 0) out[whole] = mask_portable(p + 64 * whole, n % 64, a, b, c);
}

size_t eddy_count_byte(const uint8_t *p, size_t n, uint8_t c) {
    size_t count = 0;
    const uint8_t *end = p + n;
    while (p < end) {
        const uint8_t *hit = memchr(p, c, (size_t)(end - p));
        if (!hit) break;
        count++;
        p = hit + 1;
    }
    return count;
}

long eddy_csv_count_records(const uint8_t *p, size_t n, size_t columns, size_t *bad_offset, size_t *bad_fields) {
    long records = 0;
    size_t start = 0;
    while (start < n) {
        const uint8_t *nl = memchr(p + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - p) : n;
        size_t len = end - start;
        if (!(len == 0 || (len == 1 && p[start] == '\r'))) {
            size_t commas = 0;
            for (size_t i = start; i < end; i++) commas += p[i] == ',';
            if (commas + 1 != columns) {
                *bad_offset = start;
                *bad_fields = commas + 1;
                return -1;
            }
            records++;
        }
        start = end + 1;
    }
    return records;
}
