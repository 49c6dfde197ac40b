#include "EddyKernelsC.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define EDDY_HAVE_X86 1
/* The CPU features the kernels pick paths by, asked once: bit 0 AVX2, bit 1 BMI2 (PEXT). */
static int eddy_cpu_features(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = (__builtin_cpu_supports("avx2") ? 1 : 0) | (__builtin_cpu_supports("bmi2") ? 2 : 0);
    }
    return cached;
}
static int eddy_has_avx2(void) { return eddy_cpu_features() & 1; }
static int eddy_has_bmi2(void) { return (eddy_cpu_features() >> 1) & 1; }
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

/// One output word per 64 codes, each code's bit its answer: equality with the needle in `k`, or
/// (`lookup`) the sign bit of entry `code & 15` of the 16-byte table in both lanes of `k` (a code of
/// 16 or more reads a wrong entry, or none, and is also the largest code returned, which callers
/// check). Returns the largest code; the tail goes through the portable loop. Inlined into each
/// caller, so `lookup` is a constant there.
__attribute__((target("avx2"), always_inline)) static inline uint8_t u8_bits_avx2(
    const uint8_t *codes, size_t n, __m256i k, int lookup, uint8_t needle, const uint8_t *lut, size_t lut_len,
    uint64_t *out) {
    __m256i vmax = _mm256_setzero_si256();
    size_t full = n / 64;
    for (size_t w = 0; w < full; w++) {
        const __m256i *p = (const __m256i *)(codes + w * 64);
        __m256i a = _mm256_loadu_si256(p), b = _mm256_loadu_si256(p + 1);
        vmax = _mm256_max_epu8(vmax, _mm256_max_epu8(a, b));
        __m256i ra = lookup ? _mm256_shuffle_epi8(k, a) : _mm256_cmpeq_epi8(a, k);
        __m256i rb = lookup ? _mm256_shuffle_epi8(k, b) : _mm256_cmpeq_epi8(b, k);
        uint64_t lo = (uint32_t)_mm256_movemask_epi8(ra), hi = (uint32_t)_mm256_movemask_epi8(rb);
        out[w] = lo | (hi << 32);
    }
    uint8_t lanes[32];
    _mm256_storeu_si256((__m256i *)lanes, vmax);
    uint8_t maxc = 0;
    for (int i = 0; i < 32; i++) maxc = lanes[i] > maxc ? lanes[i] : maxc;
    if (full * 64 < n) {
        const uint8_t *rest = codes + full * 64;
        uint8_t tail = lookup ? lut_u8_portable(rest, n - full * 64, 0, lut, lut_len, out + full)
                              : eq_u8_portable(rest, n - full * 64, needle, 0, 0, out + full);
        maxc = tail > maxc ? tail : maxc;
    }
    return maxc;
}

__attribute__((target("avx2"))) static uint8_t eq_u8_avx2(const uint8_t *codes, size_t n, uint8_t needle,
                                                          uint64_t *out) {
    return u8_bits_avx2(codes, n, _mm256_set1_epi8((char)needle), 0, needle, NULL, 0, out);
}

/// A table of at most 16 answers looked up 32 codes at a time by a byte shuffle.
__attribute__((target("avx2"))) static uint8_t lut16_u8_avx2(const uint8_t *codes, size_t n, const uint8_t *lut,
                                                            size_t lut_len, uint64_t *out) {
    uint8_t table[16] = {0};
    for (size_t i = 0; i < lut_len && i < 16; i++) table[i] = lut[i] ? 0x80 : 0;
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)table));
    return u8_bits_avx2(codes, n, t, 1, 0, lut, lut_len, out);
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
#if EDDY_HAVE_X86
    if (lut_len <= 16 && eddy_has_avx2()) return lut16_u8_avx2(codes, n, lut, lut_len, out);
#endif
    return lut_u8_portable(codes, n, 0, lut, lut_len, out);
}

uint16_t eddy_lut_u16(const uint16_t *codes, size_t n, const uint8_t *lut, size_t lut_len, uint64_t *out) {
    return lut_u16_portable(codes, n, 0, lut, lut_len, out);
}

uint32_t eddy_lut_u32(const uint32_t *codes, size_t n, const uint8_t *lut, size_t lut_len, uint64_t *out) {
    return lut_u32_portable(codes, n, 0, lut, lut_len, out);
}

/// Whether value `i` (of the right length) equals the needle: the first 8 bytes as one word reject
/// most values without a call.
static inline int varbin_same(const uint8_t *bytes, int32_t s, const uint8_t *needle, size_t needle_len) {
    if (needle_len >= 8) {
        uint64_t x, y;
        memcpy(&x, bytes + s, 8);
        memcpy(&y, needle, 8);
        if (x != y) return 0;
    }
    return needle_len == 0 || memcmp(bytes + s, needle, needle_len) == 0;
}

#if EDDY_HAVE_X86
/// Lengths compared eight at a time (offsets[i + 1] - offsets[i] == needle_len), then the bytes of
/// the candidates only.
__attribute__((target("avx2"))) static void varbin_eq_avx2(const int32_t *offsets, const uint8_t *bytes, size_t n,
                                                           const uint8_t *needle, size_t needle_len, uint64_t *out) {
    const __m256i vl = _mm256_set1_epi32((int32_t)needle_len);
    size_t words = (n + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        size_t base = w * 64, end = n - base < 64 ? n - base : 64;
        uint64_t candidates = 0;
        size_t b = 0;
        for (; b + 8 <= end; b += 8) {
            __m256i lo = _mm256_loadu_si256((const __m256i *)(offsets + base + b));
            __m256i hi = _mm256_loadu_si256((const __m256i *)(offsets + base + b + 1));
            __m256i eq = _mm256_cmpeq_epi32(_mm256_sub_epi32(hi, lo), vl);
            candidates |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(eq)) << b;
        }
        for (; b < end; b++) {
            int64_t len = (int64_t)offsets[base + b + 1] - offsets[base + b];
            candidates |= (uint64_t)(len == (int64_t)needle_len) << b;
        }
        uint64_t word = 0;
        while (candidates) {
            int k = __builtin_ctzll(candidates);
            candidates &= candidates - 1;
            if (varbin_same(bytes, offsets[base + k], needle, needle_len)) word |= (uint64_t)1 << k;
        }
        out[w] = word;
    }
}
#endif

void eddy_varbin_eq(const int32_t *offsets, const uint8_t *bytes, size_t n, const uint8_t *needle,
                    size_t needle_len, uint64_t *out) {
    size_t words = (n + 63) / 64;
    if (needle_len > 0x7fffffff) {
        // No value of a 32-bit-offset array is that long.
        for (size_t w = 0; w < words; w++) out[w] = 0;
        return;
    }
#if EDDY_HAVE_X86
    if (eddy_has_avx2()) {
        varbin_eq_avx2(offsets, bytes, n, needle, needle_len, out);
        return;
    }
#endif
    for (size_t w = 0; w < words; w++) {
        uint64_t word = 0;
        size_t base = w * 64, end = n - base < 64 ? n - base : 64;
        for (size_t b = 0; b < end; b++) {
            int32_t s = offsets[base + b], e = offsets[base + b + 1];
            if ((int64_t)e - s == (int64_t)needle_len && varbin_same(bytes, s, needle, needle_len))
                word |= (uint64_t)1 << b;
        }
        out[w] = word;
    }
}

#if EDDY_HAVE_X86
__attribute__((target("avx2"))) static int runend_sum_avx2(const int64_t *values, const uint32_t *ends, size_t first,
                                                           size_t last, int64_t *sum) {
    const __m256i offset = _mm256_set1_epi64x((int64_t)1 << 31);
    __m256i acc = _mm256_setzero_si256(), vbits = _mm256_setzero_si256(), wbits = _mm256_setzero_si256();
    size_t j = first;
    for (; j + 4 <= last; j += 4) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(values + j));
        __m256i hi = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(ends + j)));
        __m256i lo = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(ends + j - 1)));
        __m256i w = _mm256_sub_epi64(hi, lo);
        // mul_epi32 multiplies the low 32 bits of each lane as signed: exact when checked below.
        acc = _mm256_add_epi64(acc, _mm256_mul_epi32(v, w));
        vbits = _mm256_or_si256(vbits, _mm256_add_epi64(v, offset));
        wbits = _mm256_or_si256(wbits, w);
    }
    int64_t lanes[4], vb[4], wb[4];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    _mm256_storeu_si256((__m256i *)vb, vbits);
    _mm256_storeu_si256((__m256i *)wb, wbits);
    uint64_t total = (uint64_t)lanes[0] + (uint64_t)lanes[1] + (uint64_t)lanes[2] + (uint64_t)lanes[3];
    uint64_t vor = (uint64_t)vb[0] | (uint64_t)vb[1] | (uint64_t)vb[2] | (uint64_t)vb[3];
    uint64_t wor = (uint64_t)wb[0] | (uint64_t)wb[1] | (uint64_t)wb[2] | (uint64_t)wb[3];
    for (; j < last; j++) {
        uint64_t w = (uint64_t)ends[j] - (uint64_t)ends[j - 1];
        total += (uint64_t)values[j] * w;
        vor |= (uint64_t)values[j] + ((uint64_t)1 << 31);
        wor |= w;
    }
    *sum = (int64_t)total;
    return vor < ((uint64_t)1 << 32) && wor < ((uint64_t)1 << 31);
}
#endif

int eddy_runend_weighted_sum_i64(const int64_t *values, const uint32_t *ends, size_t first, size_t last,
                                 int64_t *sum) {
    if (first == 0 || last < first) return 0;
#if EDDY_HAVE_X86
    if (eddy_has_avx2()) return runend_sum_avx2(values, ends, first, last, sum);
#endif
    uint64_t total = 0, vor = 0, wor = 0;
    for (size_t j = first; j < last; j++) {
        uint64_t w = (uint64_t)ends[j] - (uint64_t)ends[j - 1];
        total += (uint64_t)values[j] * w;
        vor |= (uint64_t)values[j] + ((uint64_t)1 << 31);
        wor |= w;
    }
    *sum = (int64_t)total;
    return vor < ((uint64_t)1 << 32) && wor < ((uint64_t)1 << 31);
}

// ---- Bit unpacking: one fully unrolled 64-value loop per width (constant shifts, no branches).
// (An AVX2 build of the same loops timed the same.)

#define EDDY_UNPACK(W)                                                                   \
    static void unpack_##W(const uint64_t *in, uint64_t add, uint64_t *out) {            \
        const uint64_t mask = (W) == 64 ? ~(uint64_t)0 : (((uint64_t)1 << ((W) & 63)) - 1); \
        _Pragma("clang loop unroll(full)")                                               \
        for (int j = 0; j < 64; j++) {                                                   \
            const int bit = j * (W), w = bit >> 6, s = bit & 63;                         \
            uint64_t v = in[w] >> s;                                                     \
            if (s + (W) > 64) v |= in[w + 1] << ((64 - s) & 63);                         \
            out[j] = (v & mask) + add;                                                   \
        }                                                                                \
    }

EDDY_UNPACK(1) EDDY_UNPACK(2) EDDY_UNPACK(3) EDDY_UNPACK(4) EDDY_UNPACK(5) EDDY_UNPACK(6) EDDY_UNPACK(7) EDDY_UNPACK(8)
EDDY_UNPACK(9) EDDY_UNPACK(10) EDDY_UNPACK(11) EDDY_UNPACK(12) EDDY_UNPACK(13) EDDY_UNPACK(14) EDDY_UNPACK(15) EDDY_UNPACK(16)
EDDY_UNPACK(17) EDDY_UNPACK(18) EDDY_UNPACK(19) EDDY_UNPACK(20) EDDY_UNPACK(21) EDDY_UNPACK(22) EDDY_UNPACK(23) EDDY_UNPACK(24)
EDDY_UNPACK(25) EDDY_UNPACK(26) EDDY_UNPACK(27) EDDY_UNPACK(28) EDDY_UNPACK(29) EDDY_UNPACK(30) EDDY_UNPACK(31) EDDY_UNPACK(32)
EDDY_UNPACK(33) EDDY_UNPACK(34) EDDY_UNPACK(35) EDDY_UNPACK(36) EDDY_UNPACK(37) EDDY_UNPACK(38) EDDY_UNPACK(39) EDDY_UNPACK(40)
EDDY_UNPACK(41) EDDY_UNPACK(42) EDDY_UNPACK(43) EDDY_UNPACK(44) EDDY_UNPACK(45) EDDY_UNPACK(46) EDDY_UNPACK(47) EDDY_UNPACK(48)
EDDY_UNPACK(49) EDDY_UNPACK(50) EDDY_UNPACK(51) EDDY_UNPACK(52) EDDY_UNPACK(53) EDDY_UNPACK(54) EDDY_UNPACK(55) EDDY_UNPACK(56)
EDDY_UNPACK(57) EDDY_UNPACK(58) EDDY_UNPACK(59) EDDY_UNPACK(60) EDDY_UNPACK(61) EDDY_UNPACK(62) EDDY_UNPACK(63) EDDY_UNPACK(64)

typedef void (*eddy_unpack_fn)(const uint64_t *, uint64_t, uint64_t *);
static const eddy_unpack_fn eddy_unpackers[65] = {
    0,
    unpack_1, unpack_2, unpack_3, unpack_4, unpack_5, unpack_6, unpack_7, unpack_8,
    unpack_9, unpack_10, unpack_11, unpack_12, unpack_13, unpack_14, unpack_15, unpack_16,
    unpack_17, unpack_18, unpack_19, unpack_20, unpack_21, unpack_22, unpack_23, unpack_24,
    unpack_25, unpack_26, unpack_27, unpack_28, unpack_29, unpack_30, unpack_31, unpack_32,
    unpack_33, unpack_34, unpack_35, unpack_36, unpack_37, unpack_38, unpack_39, unpack_40,
    unpack_41, unpack_42, unpack_43, unpack_44, unpack_45, unpack_46, unpack_47, unpack_48,
    unpack_49, unpack_50, unpack_51, unpack_52, unpack_53, unpack_54, unpack_55, unpack_56,
    unpack_57, unpack_58, unpack_59, unpack_60, unpack_61, unpack_62, unpack_63, unpack_64,
};

void eddy_unpack_blocks(const uint64_t *words, int width, size_t blocks, uint64_t add, uint64_t *out) {
    if (width < 1 || width > 64) return;
    const eddy_unpack_fn f = eddy_unpackers[width];
    for (size_t b = 0; b < blocks; b++) f(words + b * (size_t)width, add, out + b * 64);
}

// The same loops writing 8-, 16- or 32-bit values straight into their own type (a width that fits
// it): no 64-bit scratch block to write, read back and narrow.
#define EDDY_UNPACK_NARROW(W, T, NAME)                                                   \
    static void NAME##_##W(const uint64_t *in, uint64_t add, T *out) {                   \
        const uint64_t mask = ((uint64_t)1 << (W)) - 1;                                  \
        _Pragma("clang loop unroll(full)")                                               \
        for (int j = 0; j < 64; j++) {                                                   \
            const int bit = j * (W), w = bit >> 6, s = bit & 63;                         \
            uint64_t v = in[w] >> s;                                                     \
            if (s + (W) > 64) v |= in[w + 1] << ((64 - s) & 63);                         \
            out[j] = (T)((v & mask) + add);                                              \
        }                                                                                \
    }

#define EDDY_NARROW8(W) EDDY_UNPACK_NARROW(W, uint8_t, unpack8)
#define EDDY_NARROW16(W) EDDY_UNPACK_NARROW(W, uint16_t, unpack16)
#define EDDY_NARROW32(W) EDDY_UNPACK_NARROW(W, uint32_t, unpack32)
EDDY_NARROW8(1) EDDY_NARROW8(2) EDDY_NARROW8(3) EDDY_NARROW8(4) EDDY_NARROW8(5) EDDY_NARROW8(6) EDDY_NARROW8(7)
EDDY_NARROW8(8)
EDDY_NARROW16(1) EDDY_NARROW16(2) EDDY_NARROW16(3) EDDY_NARROW16(4) EDDY_NARROW16(5) EDDY_NARROW16(6)
EDDY_NARROW16(7) EDDY_NARROW16(8) EDDY_NARROW16(9) EDDY_NARROW16(10) EDDY_NARROW16(11) EDDY_NARROW16(12)
EDDY_NARROW16(13) EDDY_NARROW16(14) EDDY_NARROW16(15) EDDY_NARROW16(16)
EDDY_NARROW32(1) EDDY_NARROW32(2) EDDY_NARROW32(3) EDDY_NARROW32(4) EDDY_NARROW32(5) EDDY_NARROW32(6)
EDDY_NARROW32(7) EDDY_NARROW32(8) EDDY_NARROW32(9) EDDY_NARROW32(10) EDDY_NARROW32(11) EDDY_NARROW32(12)
EDDY_NARROW32(13) EDDY_NARROW32(14) EDDY_NARROW32(15) EDDY_NARROW32(16) EDDY_NARROW32(17) EDDY_NARROW32(18)
EDDY_NARROW32(19) EDDY_NARROW32(20) EDDY_NARROW32(21) EDDY_NARROW32(22) EDDY_NARROW32(23) EDDY_NARROW32(24)
EDDY_NARROW32(25) EDDY_NARROW32(26) EDDY_NARROW32(27) EDDY_NARROW32(28) EDDY_NARROW32(29) EDDY_NARROW32(30)
EDDY_NARROW32(31) EDDY_NARROW32(32)

typedef void (*eddy_unpack8_fn)(const uint64_t *, uint64_t, uint8_t *);
typedef void (*eddy_unpack16_fn)(const uint64_t *, uint64_t, uint16_t *);
typedef void (*eddy_unpack32_fn)(const uint64_t *, uint64_t, uint32_t *);
static const eddy_unpack8_fn eddy_unpackers8[9] = {
    0, unpack8_1, unpack8_2, unpack8_3, unpack8_4, unpack8_5, unpack8_6, unpack8_7, unpack8_8,
};
static const eddy_unpack16_fn eddy_unpackers16[17] = {
    0,           unpack16_1,  unpack16_2,  unpack16_3,  unpack16_4,  unpack16_5,  unpack16_6,
    unpack16_7,  unpack16_8,  unpack16_9,  unpack16_10, unpack16_11, unpack16_12, unpack16_13,
    unpack16_14, unpack16_15, unpack16_16,
};
static const eddy_unpack32_fn eddy_unpackers32[33] = {
    0,           unpack32_1,  unpack32_2,  unpack32_3,  unpack32_4,  unpack32_5,  unpack32_6,
    unpack32_7,  unpack32_8,  unpack32_9,  unpack32_10, unpack32_11, unpack32_12, unpack32_13,
    unpack32_14, unpack32_15, unpack32_16, unpack32_17, unpack32_18, unpack32_19, unpack32_20,
    unpack32_21, unpack32_22, unpack32_23, unpack32_24, unpack32_25, unpack32_26, unpack32_27,
    unpack32_28, unpack32_29, unpack32_30, unpack32_31, unpack32_32,
};

int eddy_unpack_blocks_narrow(const uint64_t *words, int width, size_t blocks, uint64_t add, void *out,
                              int out_bytes) {
    switch (out_bytes) {
    case 1: {
        if (width < 1 || width > 8) return 0;
        const eddy_unpack8_fn f = eddy_unpackers8[width];
        for (size_t b = 0; b < blocks; b++) f(words + b * (size_t)width, add, (uint8_t *)out + b * 64);
        return 1;
    }
    case 2: {
        if (width < 1 || width > 16) return 0;
        const eddy_unpack16_fn f = eddy_unpackers16[width];
        for (size_t b = 0; b < blocks; b++) f(words + b * (size_t)width, add, (uint16_t *)out + b * 64);
        return 1;
    }
    case 4: {
        if (width < 1 || width > 32) return 0;
        const eddy_unpack32_fn f = eddy_unpackers32[width];
        for (size_t b = 0; b < blocks; b++) f(words + b * (size_t)width, add, (uint32_t *)out + b * 64);
        return 1;
    }
    default: return 0;
    }
}

// ---- Comparing unpacked 64-bit values with a constant, 64 answers to an output word.

#define EDDY_CMP_PORTABLE_TEST(op, v, needle)                                                         \
    ((op) == 0 ? (v) == (needle) : (op) == 1 ? (v) != (needle) : (op) == 2 ? (v) < (needle)           \
     : (op) == 3 ? (v) <= (needle) : (op) == 4 ? (v) > (needle) : (v) >= (needle))

static uint64_t compare_u64_portable(const uint64_t *values, size_t n, int op, uint64_t needle, int want_max,
                                     uint64_t *out) {
    uint64_t maxv = 0;
    for (size_t w = 0; w * 64 < n; w++) {
        uint64_t word = 0;
        size_t end = n - w * 64 < 64 ? n - w * 64 : 64;
        for (size_t b = 0; b < end; b++) {
            uint64_t v = values[w * 64 + b];
            if (want_max && v > maxv) maxv = v;
            word |= (uint64_t)(EDDY_CMP_PORTABLE_TEST(op, v, needle) ? 1 : 0) << b;
        }
        out[w] = word;
    }
    return maxv;
}

#if EDDY_HAVE_X86
// Unsigned 64-bit lanes compared as signed ones with the sign bit flipped; ne, le and ge are the
// complements of eq, gt and lt, taken a word at a time. Each op its own loop (the op a constant).
#define EDDY_CMP_AVX2(NAME, TEST, NEGATE)                                                              \
    __attribute__((target("avx2"))) static uint64_t NAME(const uint64_t *values, size_t full,         \
                                                         uint64_t needle, int want_max, uint64_t *out) { \
        const __m256i sign = _mm256_set1_epi64x((long long)0x8000000000000000ull);                    \
        const __m256i k = _mm256_xor_si256(_mm256_set1_epi64x((long long)needle), sign);              \
        __m256i vmax = sign;                                                                           \
        for (size_t w = 0; w < full; w++) {                                                            \
            uint64_t word = 0;                                                                         \
            for (int g = 0; g < 16; g++) {                                                             \
                __m256i v = _mm256_xor_si256(                                                          \
                    _mm256_loadu_si256((const __m256i *)(values + w * 64 + (size_t)g * 4)), sign);     \
                if (want_max) vmax = _mm256_blendv_epi8(vmax, v, _mm256_cmpgt_epi64(v, vmax));         \
                __m256i r = TEST;                                                                      \
                word |= (uint64_t)(unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(r)) << (g * 4);    \
            }                                                                                          \
            out[w] = NEGATE ? ~word : word;                                                            \
        }                                                                                              \
        uint64_t lanes[4];                                                                             \
        _mm256_storeu_si256((__m256i *)lanes, _mm256_xor_si256(vmax, sign));                          \
        uint64_t m = 0;                                                                                \
        for (int i = 0; i < 4; i++) m = lanes[i] > m ? lanes[i] : m;                                   \
        return m;                                                                                      \
    }

EDDY_CMP_AVX2(cmp_eq_avx2, _mm256_cmpeq_epi64(v, k), 0)
EDDY_CMP_AVX2(cmp_ne_avx2, _mm256_cmpeq_epi64(v, k), 1)
EDDY_CMP_AVX2(cmp_lt_avx2, _mm256_cmpgt_epi64(k, v), 0)
EDDY_CMP_AVX2(cmp_le_avx2, _mm256_cmpgt_epi64(v, k), 1)
EDDY_CMP_AVX2(cmp_gt_avx2, _mm256_cmpgt_epi64(v, k), 0)
EDDY_CMP_AVX2(cmp_ge_avx2, _mm256_cmpgt_epi64(k, v), 1)
#endif

uint64_t eddy_compare_u64(const uint64_t *values, size_t n, int op, uint64_t needle, int want_max, uint64_t *out) {
    if (op < 0 || op > 5) return 0;
#if EDDY_HAVE_X86
    if (eddy_has_avx2()) {
        size_t full = n / 64;
        uint64_t m = 0;
        switch (op) {
        case 0: m = cmp_eq_avx2(values, full, needle, want_max, out); break;
        case 1: m = cmp_ne_avx2(values, full, needle, want_max, out); break;
        case 2: m = cmp_lt_avx2(values, full, needle, want_max, out); break;
        case 3: m = cmp_le_avx2(values, full, needle, want_max, out); break;
        case 4: m = cmp_gt_avx2(values, full, needle, want_max, out); break;
        default: m = cmp_ge_avx2(values, full, needle, want_max, out); break;
        }
        if (full * 64 < n) {
            uint64_t t = compare_u64_portable(values + full * 64, n - full * 64, op, needle, want_max, out + full);
            m = t > m ? t : m;
        }
        return want_max ? m : 0;
    }
#endif
    return compare_u64_portable(values, n, op, needle, want_max, out);
}

// ---- Sum of bit-packed values under a mask, without materialising them.

static inline uint64_t eddy_unpack_one(const uint64_t *words, int width, size_t position) {
    if (width == 0) return 0;
    const size_t bit = position * (size_t)width;
    const unsigned shift = (unsigned)(bit & 63);
    uint64_t v = words[bit >> 6] >> shift;
    if (shift + (unsigned)width > 64) v |= words[(bit >> 6) + 1] << (64 - shift);
    return width == 64 ? v : v & (((uint64_t)1 << width) - 1);
}

uint64_t eddy_packed_masked_sum(const uint64_t *words, int width, size_t offset, size_t n, const uint8_t *mask,
                                size_t mask_offset, size_t *counted) {
    uint64_t sum = 0;
    size_t count = 0;
    if (width < 0 || width > 32) {
        *counted = 0;
        return 0;
    }
#define EDDY_MASK_BIT(k) (mask ? (uint64_t)((mask[(mask_offset + (k)) >> 3] >> ((mask_offset + (k)) & 7)) & 1) : 1)
    size_t i = 0;
    while (i < n && ((offset + i) & 63) != 0) {
        if (EDDY_MASK_BIT(i)) {
            sum += eddy_unpack_one(words, width, offset + i);
            count++;
        }
        i++;
    }
    uint64_t block[64];
    for (; i + 64 <= n; i += 64) {
        uint64_t m = ~(uint64_t)0;
        if (mask) {
            // The 64 mask bits of this block: 8 bytes from its first byte, and a ninth when it does not
            // start on a byte (all of them inside the mask: every bit is a position of the window).
            const size_t bit = mask_offset + i;
            const unsigned s = (unsigned)(bit & 7);
            memcpy(&m, mask + (bit >> 3), 8);
            if (s != 0) m = (m >> s) | ((uint64_t)mask[(bit >> 3) + 8] << (64 - s));
        }
        if (m == 0) continue;
        count += (size_t)__builtin_popcountll(m);
        if (width == 0) continue;
        eddy_unpackers[width](words + ((offset + i) >> 6) * (size_t)width, 0, block);
        // Mostly kept: sum the block, take back the few left out; mostly not: add the kept ones.
        if (__builtin_popcountll(m) >= 32) {
            uint64_t total = 0;
            for (int b = 0; b < 64; b++) total += block[b];
            for (uint64_t z = ~m; z != 0; z &= z - 1) total -= block[__builtin_ctzll(z)];
            sum += total;
        } else {
            for (uint64_t k = m; k != 0; k &= k - 1) sum += block[__builtin_ctzll(k)];
        }
    }
    for (; i < n; i++) {
        if (EDDY_MASK_BIT(i)) {
            sum += eddy_unpack_one(words, width, offset + i);
            count++;
        }
    }
#undef EDDY_MASK_BIT
    *counted = count;
    return sum;
}

// ---- Masked sums walk a window of a validity bitmap as bit by bit up to a 64-bit boundary of the
// bitmap, then whole words (their 8 bytes lie inside the bitmap: all 64 bits are rows of the window),
// then bit by bit again.

/// Row `i`'s validity bit (0 or 1) in a window from bit `offset` of `validity`.
static inline __attribute__((always_inline)) uint64_t eddy_valid_bit(const uint8_t *validity, size_t offset,
                                                                     size_t i) {
    return (validity[(offset + i) >> 3] >> ((offset + i) & 7)) & 1;
}

/// The rows of the window before its first 64-bit boundary of the bitmap (all of them when it has none).
static inline __attribute__((always_inline)) size_t eddy_unaligned_head(size_t offset, size_t n) {
    size_t head = (64 - (offset & 63)) & 63;
    return head < n ? head : n;
}

// ---- Masked integer sum: each value ANDed with its validity bit spread to a mask, summed as
// 32-bit halves (neither half can overflow for n < 2^32). One body, compiled twice: for AVX2 (the
// vectoriser then works 4 lanes at a time) and portable.

/// Rows `from..<to` one bit at a time (the window's unaligned edges).
static inline __attribute__((always_inline)) void masked_sum_rows(const int64_t *values, const uint8_t *validity,
                                                                  size_t offset, size_t from, size_t to,
                                                                  uint64_t *lo, int64_t *hi, size_t *valid) {
    for (size_t i = from; i < to; i++) {
        uint64_t m = 0 - eddy_valid_bit(validity, offset, i);
        *lo += (uint64_t)values[i] & 0xFFFFFFFFu & m;
        *hi += (values[i] >> 32) & (int64_t)m;
        *valid += m & 1;
    }
}

#define EDDY_MASKED_SUM_BODY                                                                   \
    uint64_t lo = 0;                                                                           \
    int64_t hi = 0;                                                                            \
    size_t valid = 0;                                                                          \
    size_t i = eddy_unaligned_head(offset, n);                                                 \
    masked_sum_rows(values, validity, offset, 0, i, &lo, &hi, &valid);                         \
    for (; i + 64 <= n; i += 64) {                                                             \
        uint64_t word;                                                                         \
        memcpy(&word, validity + ((offset + i) >> 3), 8);                                      \
        valid += (size_t)__builtin_popcountll(word);                                           \
        const int64_t *v = values + i;                                                         \
        if (word == ~(uint64_t)0) {                                                            \
            for (int k = 0; k < 64; k++) {                                                     \
                lo += (uint64_t)v[k] & 0xFFFFFFFFu;                                            \
                hi += v[k] >> 32;                                                              \
            }                                                                                  \
        } else if (word != 0) {                                                                \
            for (int k = 0; k < 64; k++) {                                                     \
                uint64_t m = 0 - ((word >> k) & 1);                                            \
                lo += (uint64_t)v[k] & 0xFFFFFFFFu & m;                                        \
                hi += (v[k] >> 32) & (int64_t)m;                                               \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    masked_sum_rows(values, validity, offset, i, n, &lo, &hi, &valid);                         \
    *low = lo;                                                                                 \
    *high = hi;                                                                                \
    return valid;

static size_t masked_sum_portable(const int64_t *values, const uint8_t *validity, size_t offset, size_t n,
                                  uint64_t *low, int64_t *high) {
    EDDY_MASKED_SUM_BODY
}

#if EDDY_HAVE_X86
__attribute__((target("avx2"))) static size_t masked_sum_avx2(const int64_t *values, const uint8_t *validity,
                                                              size_t offset, size_t n, uint64_t *low,
                                                              int64_t *high) {
    EDDY_MASKED_SUM_BODY
}
#endif

size_t eddy_masked_sum_i64(const int64_t *values, const uint8_t *validity, size_t offset, size_t n,
                           uint64_t *low, int64_t *high) {
    if (!validity) {
        uint64_t lo = 0;
        int64_t hi = 0;
        for (size_t i = 0; i < n; i++) {
            lo += (uint64_t)values[i] & 0xFFFFFFFFu;
            hi += values[i] >> 32;
        }
        *low = lo;
        *high = hi;
        return n;
    }
#if EDDY_HAVE_X86
    if (eddy_has_avx2()) return masked_sum_avx2(values, validity, offset, n, low, high);
#endif
    return masked_sum_portable(values, validity, offset, n, low, high);
}

// ---- Float sums under a validity bitmap, in row order (what a row-by-row loop gives, to the bit: a null
// row adds -0.0, which leaves every sum as it was, -0.0 and NaN included). The compiler may not
// reorder the additions (no -ffast-math), so one add follows the other; the gain is the loop without
// a branch or a bit test per row. `NAME##_rows` adds rows `from..<to` one bit at a time (the edges).

#define EDDY_MASKED_FSUM(NAME, T)                                                                    \
    static inline __attribute__((always_inline)) double NAME##_rows(                                 \
        const T *values, const uint8_t *validity, size_t offset, size_t from, size_t to, double s,    \
        size_t *valid) {                                                                             \
        for (size_t i = from; i < to; i++) {                                                         \
            uint64_t bit = eddy_valid_bit(validity, offset, i);                                      \
            s += bit ? (double)values[i] : -0.0;                                                     \
            *valid += (size_t)bit;                                                                   \
        }                                                                                            \
        return s;                                                                                    \
    }                                                                                                \
    size_t NAME(const T *values, const uint8_t *validity, size_t offset, size_t n, double *sum) {    \
        double s = *sum;                                                                             \
        size_t valid = 0;                                                                            \
        size_t i = 0;                                                                                \
        if (!validity) {                                                                             \
            for (; i < n; i++) s += (double)values[i];                                               \
            *sum = s;                                                                                \
            return n;                                                                                \
        }                                                                                            \
        i = eddy_unaligned_head(offset, n);                                                          \
        s = NAME##_rows(values, validity, offset, 0, i, s, &valid);                                  \
        for (; i + 64 <= n; i += 64) {                                                               \
            uint64_t word;                                                                           \
            memcpy(&word, validity + ((offset + i) >> 3), 8);                                        \
            valid += (size_t)__builtin_popcountll(word);                                             \
            const T *v = values + i;                                                                 \
            if (word == ~(uint64_t)0) {                                                              \
                for (int k = 0; k < 64; k++) s += (double)v[k];                                      \
            } else if (word != 0) {                                                                  \
                for (int k = 0; k < 64; k++) s += ((word >> k) & 1) ? (double)v[k] : -0.0;           \
            }                                                                                        \
        }                                                                                            \
        s = NAME##_rows(values, validity, offset, i, n, s, &valid);                                  \
        *sum = s;                                                                                    \
        return valid;                                                                                \
    }

EDDY_MASKED_FSUM(eddy_masked_sum_f64, double)
EDDY_MASKED_FSUM(eddy_masked_sum_f32, float)

// ---- Add and subtract with wrapping, overflow flags ORed (no branch in the loop). (An AVX2 build
// timed the same: the loop is bound by memory.)

#define EDDY_ADDSUB_LOOP(XV, YV)                                                         \
    if (op == 0) {                                                                       \
        for (size_t i = 0; i < n; i++) {                                                 \
            int64_t a = (XV), b = (YV);                                                  \
            int64_t r = (int64_t)((uint64_t)a + (uint64_t)b);                            \
            flag |= (uint64_t)((a ^ r) & (b ^ r));                                       \
            out[i] = r;                                                                  \
        }                                                                                \
    } else {                                                                             \
        for (size_t i = 0; i < n; i++) {                                                 \
            int64_t a = (XV), b = (YV);                                                  \
            int64_t r = (int64_t)((uint64_t)a - (uint64_t)b);                            \
            flag |= (uint64_t)((a ^ b) & (a ^ r));                                       \
            out[i] = r;                                                                  \
        }                                                                                \
    }

int eddy_add_sub_i64(int op, const int64_t *x, int64_t xs, const int64_t *y, int64_t ys, size_t n, int64_t *out) {
    uint64_t flag = 0;
    if (x && y) {
        EDDY_ADDSUB_LOOP(x[i], y[i])
    } else if (x) {
        EDDY_ADDSUB_LOOP(x[i], ys)
    } else if (y) {
        EDDY_ADDSUB_LOOP(xs, y[i])
    } else {
        EDDY_ADDSUB_LOOP(xs, ys)
    }
    return (flag >> 63) != 0;
}
#undef EDDY_ADDSUB_LOOP

// ---- Keeping the rows a mask selects: validity bits and fixed-width values.

/* The 64 bits of `p` (`bytes` long) from bit `bit` on; bits past the end are 0. */
static inline uint64_t eddy_bits_at(const uint8_t *p, size_t bytes, size_t bit) {
    size_t byte = bit >> 3;
    unsigned shift = (unsigned)(bit & 7);
    if (byte >= bytes) return 0;
    size_t avail = bytes - byte;
    uint64_t raw = 0;
    if (avail >= 9) {
        memcpy(&raw, p + byte, 8);
        if (shift) raw = (raw >> shift) | ((uint64_t)p[byte + 8] << (64 - shift));
        return raw;
    }
    for (size_t k = 0; k < avail && k < 8; k++) raw |= (uint64_t)p[byte + k] << (8 * k);
    raw >>= shift;
    return raw;
}

static uint64_t eddy_pext_portable(uint64_t src, uint64_t mask) {
    uint64_t out = 0;
    unsigned k = 0;
    while (mask) {
        out |= ((src >> __builtin_ctzll(mask)) & 1) << k++;
        mask &= mask - 1;
    }
    return out;
}

#if EDDY_HAVE_X86
__attribute__((target("bmi2"))) static uint64_t eddy_pext_bmi2(uint64_t src, uint64_t mask) {
    return _pext_u64(src, mask);
}

#endif

size_t eddy_bits_compress(const uint8_t *bits, size_t bits_bytes, size_t bits_offset, const uint8_t *mask,
                          size_t mask_bytes, size_t mask_offset, size_t n, uint64_t *out, size_t limit) {
#if EDDY_HAVE_X86
    int bmi2 = eddy_has_bmi2();
#endif
    size_t o = 0;
    for (size_t i = 0; i < n && o < limit; i += 64) {
        uint64_t m = eddy_bits_at(mask, mask_bytes, mask_offset + i);
        if (n - i < 64) m &= (1ull << (n - i)) - 1;
        if (!m) continue;
        uint64_t v = eddy_bits_at(bits, bits_bytes, bits_offset + i);
        uint64_t taken;
#if EDDY_HAVE_X86
        taken = m == ~0ull ? v : bmi2 ? eddy_pext_bmi2(v, m) : eddy_pext_portable(v, m);
#else
        taken = m == ~0ull ? v : eddy_pext_portable(v, m);
#endif
        size_t k = (size_t)__builtin_popcountll(m);
        if (k > limit - o) {
            k = limit - o;
            taken &= k == 64 ? ~0ull : (1ull << k) - 1;
        }
        /* Append k bits at bit o of out (whose words from o / 64 on are zero). */
        size_t w = o >> 6;
        unsigned s = (unsigned)(o & 63);
        out[w] |= taken << s;
        if (s && s + k > 64) out[w + 1] |= taken >> (64 - s);
        o += k;
    }
    return o;
}

#define EDDY_COMPRESS_SCALAR(T)                                                                      \
    {                                                                                                \
        const T *v = (const T *)values;                                                              \
        T *dst = (T *)out;                                                                           \
        for (size_t i = 0; i < n && o < limit; i += 64) {                                            \
            uint64_t m = eddy_bits_at(mask, mask_bytes, mask_offset + i);                            \
            if (n - i < 64) m &= (1ull << (n - i)) - 1;                                              \
            if (m == ~0ull && limit - o >= 64) {                                                     \
                memcpy(dst + o, v + i, 64 * sizeof(T));                                              \
                o += 64;                                                                             \
                continue;                                                                            \
            }                                                                                        \
            while (m && o < limit) {                                                                 \
                dst[o++] = v[i + (size_t)__builtin_ctzll(m)];                                        \
                m &= m - 1;                                                                          \
            }                                                                                        \
        }                                                                                            \
    }

size_t eddy_compress_values(const void *values, int bytes, size_t n, const uint8_t *mask, size_t mask_bytes,
                            size_t mask_offset, void *out, size_t limit) {
    size_t o = 0;
    switch (bytes) {
    case 1: EDDY_COMPRESS_SCALAR(uint8_t) break;
    case 2: EDDY_COMPRESS_SCALAR(uint16_t) break;
    case 4: EDDY_COMPRESS_SCALAR(uint32_t) break;
    case 8: EDDY_COMPRESS_SCALAR(uint64_t) break;
    default: return 0;
    }
    return o;
}
