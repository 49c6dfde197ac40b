#include "EddyKernelsC.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define EDDY_HAVE_X86 1
static int eddy_has_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return cached;
}
#else
#define EDDY_HAVE_X86 0
#endif

// Portable loops: one output word per 64 codes.
#define EDDY_PORTABLE(NAME, T, TEST)                                            \
    static T NAME(const T *codes, size_t n, T needle, const uint8_t *lut,       \
                  size_t lut_len, uint64_t *out) {                              \
        (void)needle; (void)lut; (void)lut_len;                                 \
        T maxc = 0;                                                             \
        size_t words = (n + 63) / 64;                                           \
        for (size_t w = 0; w < words; w++) {                                    \
            uint64_t word = 0;                                                  \
            size_t base = w * 64, end = n - base < 64 ? n - base : 64;          \
            for (size_t b = 0; b < end; b++) {                                  \
                T c = codes[base + b];                                          \
                maxc = c > maxc ? c : maxc;                                     \
                word |= (uint64_t)(TEST) << b;                                  \
            }                                                                   \
            out[w] = word;                                                      \
        }                                                                       \
        return maxc;                                                            \
    }

EDDY_PORTABLE(eq_u8_portable, uint8_t, c == needle)
EDDY_PORTABLE(eq_u16_portable, uint16_t, c == needle)
EDDY_PORTABLE(eq_u32_portable, uint32_t, c == needle)
EDDY_PORTABLE(lut_u8_portable, uint8_t, (c < lut_len ? lut[c] != 0 : 0))
EDDY_PORTABLE(lut_u16_portable, uint16_t, (c < lut_len ? lut[c] != 0 : 0))
EDDY_PORTABLE(lut_u32_portable, uint32_t, (c < lut_len ? lut[c] != 0 : 0))

#if EDDY_HAVE_X86
__attribute__((target("avx2"))) static uint16_t eq_u16_avx2(const uint16_t *codes, size_t n, uint16_t needle,
                                                            uint64_t *out) {
    const __m256i k = _mm256_set1_epi16((short)needle);
    __m256i vmax = _mm256_setzero_si256();
    size_t full = n / 64;
    for (size_t w = 0; w < full; w++) {
        const __m256i *p = (const __m256i *)(codes + w * 64);
        __m256i a = _mm256_loadu_si256(p), b = _mm256_loadu_si256(p + 1);
        __m256i c = _mm256_loadu_si256(p + 2), d = _mm256_loadu_si256(p + 3);
        vmax = _mm256_max_epu16(vmax, _mm256_max_epu16(_mm256_max_epu16(a, b), _mm256_max_epu16(c, d)));
        // Compare, narrow 16-bit lanes to bytes, undo the lane interleave of packs, take the sign bits.
        __m256i ab = _mm256_permute4x64_epi64(_mm256_packs_epi16(_mm256_cmpeq_epi16(a, k), _mm256_cmpeq_epi16(b, k)), 0xD8);
        __m256i cd = _mm256_permute4x64_epi64(_mm256_packs_epi16(_mm256_cmpeq_epi16(c, k), _mm256_cmpeq_epi16(d, k)), 0xD8);
        uint64_t lo = (uint32_t)_mm256_movemask_epi8(ab), hi = (uint32_t)_mm256_movemask_epi8(cd);
        out[w] = lo | (hi << 32);
    }
    uint16_t lanes[16];
    _mm256_storeu_si256((__m256i *)lanes, vmax);
    uint16_t maxc = 0;
    for (int i = 0; i < 16; i++) maxc = lanes[i] > maxc ? lanes[i] : maxc;
    if (full * 64 < n) {
        uint16_t tail = eq_u16_portable(codes + full * 64, n - full * 64, needle, 0, 0, out + full);
        maxc = tail > maxc ? tail : maxc;
    }
    return maxc;
}

__attribute__((target("avx2"))) static uint8_t eq_u8_avx2(const uint8_t *codes, size_t n, uint8_t needle,
                                                          uint64_t *out) {
    const __m256i k = _mm256_set1_epi8((char)needle);
    __m256i vmax = _mm256_setzero_si256();
    size_t full = n / 64;
    for (size_t w = 0; w < full; w++) {
        const __m256i *p = (const __m256i *)(codes + w * 64);
        __m256i a = _mm256_loadu_si256(p), b = _mm256_loadu_si256(p + 1);
        vmax = _mm256_max_epu8(vmax, _mm256_max_epu8(a, b));
        uint64_t lo = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, k));
        uint64_t hi = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, k));
        out[w] = lo | (hi << 32);
    }
    uint8_t lanes[32];
    _mm256_storeu_si256((__m256i *)lanes, vmax);
    uint8_t maxc = 0;
    for (int i = 0; i < 32; i++) maxc = lanes[i] > maxc ? lanes[i] : maxc;
    if (full * 64 < n) {
        uint8_t tail = eq_u8_portable(codes + full * 64, n - full * 64, needle, 0, 0, out + full);
        maxc = tail > maxc ? tail : maxc;
    }
    return maxc;
}
#endif

uint8_t eddy_eq_u8(const uint8_t *codes, size_t n, uint8_t needle, uint64_t *out) {
#if EDDY_HAVE_X86
    if (eddy_has_avx2()) return eq_u8_avx2(codes, n, needle, out);
#endif
    return eq_u8_portable(codes, n, needle, 0, 0, out);
}

uint16_t eddy_eq_u16(const uint16_t *codes, size_t n, uint16_t needle, uint64_t *out) {
#if EDDY_HAVE_X86
    if (eddy_has_avx2()) return eq_u16_avx2(codes, n, needle, out);
#endif
    return eq_u16_portable(codes, n, needle, 0, 0, out);
}

uint32_t eddy_eq_u32(const uint32_t *codes, size_t n, uint32_t needle, uint64_t *out) {
    return eq_u32_portable(codes, n, needle, 0, 0, out);
}

uint8_t eddy_lut_u8(const uint8_t *codes, size_t n, const uint8_t *lut, size_t lut_len, uint64_t *out) {
    return lut_u8_portable(codes, n, 0, lut, lut_len, out);
}

uint16_t eddy_lut_u16(const uint16_t *codes, size_t n, const uint8_t *lut, size_t lut_len, uint64_t *out) {
    return lut_u16_portable(codes, n, 0, lut, lut_len, out);
}

uint32_t eddy_lut_u32(const uint32_t *codes, size_t n, const uint8_t *lut, size_t lut_len, uint64_t *out) {
    return lut_u32_portable(codes, n, 0, lut, lut_len, out);
}

void eddy_varbin_eq(const int32_t *offsets, const uint8_t *bytes, size_t n, const uint8_t *needle,
                    size_t needle_len, uint64_t *out) {
    size_t words = (n + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        uint64_t word = 0;
        size_t base = w * 64, end = n - base < 64 ? n - base : 64;
        for (size_t b = 0; b < end; b++) {
            int32_t s = offsets[base + b], e = offsets[base + b + 1];
            if ((size_t)(e - s) == needle_len && (needle_len == 0 || memcmp(bytes + s, needle, needle_len) == 0))
                word |= (uint64_t)1 << b;
        }
        out[w] = word;
    }
}
