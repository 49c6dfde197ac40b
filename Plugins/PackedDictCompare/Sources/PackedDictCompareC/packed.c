#include "PackedDictCompareC.h"
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

int packed_eq_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
}

// Eight codes of `width` bits starting at bit `bit`, spread one per byte with PDEP.
__attribute__((target("avx2,bmi2"))) static inline uint64_t eight_codes(const uint8_t *packed, size_t packed_bytes,
                                                                          size_t bit, uint64_t spread) {
    size_t byte = bit >> 3;
    uint64_t raw = 0;
    if (byte + 8 <= packed_bytes) {
        memcpy(&raw, packed + byte, 8);
    } else if (byte < packed_bytes) {
        memcpy(&raw, packed + byte, packed_bytes - byte);
    }  // past the end (codes after the last row of the final word): zeros
    return _pdep_u64(raw >> (bit & 7), spread);
}

__attribute__((target("avx2,bmi2"))) uint32_t packed_eq(const uint8_t *packed, size_t packed_bytes, size_t first,
                                                         size_t n, int width, uint32_t needle, uint64_t *out) {
    const uint64_t field = (1ull << width) - 1;
    const uint64_t spread = field * 0x0101010101010101ull;
    const __m256i k = _mm256_set1_epi8((char)needle);
    __m256i vmax = _mm256_setzero_si256();
    size_t words = (n + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        size_t base = (first + w * 64) * (size_t)width;
        uint64_t word = 0;
        for (int half = 0; half < 2; half++) {
            size_t b = base + (size_t)half * 32 * width;
            __m256i codes = _mm256_set_epi64x((long long)eight_codes(packed, packed_bytes, b + 24 * width, spread),
                                              (long long)eight_codes(packed, packed_bytes, b + 16 * width, spread),
                                              (long long)eight_codes(packed, packed_bytes, b + 8 * width, spread),
                                              (long long)eight_codes(packed, packed_bytes, b, spread));
            vmax = _mm256_max_epu8(vmax, codes);
            uint32_t bits = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(codes, k));
            word |= (uint64_t)bits << (32 * half);
        }
        size_t valid = n - w * 64 < 64 ? n - w * 64 : 64;
        if (valid < 64) word &= (1ull << valid) - 1;
        out[w] = word;
    }
    // The tail of the last word read codes past n: the max covers only whole words before it.
    uint8_t lanes[32];
    _mm256_storeu_si256((__m256i *)lanes, vmax);
    uint32_t m = 0;
    for (int i = 0; i < 32; i++) m = lanes[i] > m ? lanes[i] : m;
    return m;
}

#else
int packed_eq_supported(void) { return 0; }
uint32_t packed_eq(const uint8_t *packed, size_t packed_bytes, size_t first, size_t n, int width, uint32_t needle,
                   uint64_t *out) {
    (void)packed; (void)packed_bytes; (void)first; (void)n; (void)width; (void)needle; (void)out;
    return 0;
}
#endif
