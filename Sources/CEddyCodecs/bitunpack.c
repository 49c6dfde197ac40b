// Bit-unpacking for Parquet's RLE / bit-packing hybrid: dictionary codes straight into the narrow
// integers the engine keeps them in. One loop per (width, output type), so that the shifts of the 8
// values of a group are constants; the Swift loop it replaces computed them per value (3 ns a code).
#include "CEddyCodecs.h"
#include <string.h>

#define EDDY_UNPACK_FAST(T, W)                                                                          \
    static uint32_t unpack_##T##_##W(const uint8_t *in, size_t groups, T *out) {                     \
        const uint64_t mask = (W) == 32 ? 0xFFFFFFFFull : ((1ull << (W)) - 1);                          \
        uint32_t high = 0;                                                                             \
        for (size_t g = 0; g < groups; g++) {                                                          \
            const uint8_t *p = in + g * (W);                                                           \
            for (int k = 0; k < 8; k++) {                                                              \
                uint64_t word;                                                                         \
                memcpy(&word, p + (k * (W)) / 8, 8);                                                   \
                uint32_t v = (uint32_t)((word >> ((k * (W)) & 7)) & mask);                             \
                out[g * 8 + k] = (T)v;                                                                 \
                high = v > high ? v : high;                                                            \
            }                                                                                          \
        }                                                                                              \
        return high;                                                                                   \
    }

#define EDDY_UNPACK_ALL(T)                                                                              \
    EDDY_UNPACK_FAST(T, 1) EDDY_UNPACK_FAST(T, 2) EDDY_UNPACK_FAST(T, 3) EDDY_UNPACK_FAST(T, 4)         \
    EDDY_UNPACK_FAST(T, 5) EDDY_UNPACK_FAST(T, 6) EDDY_UNPACK_FAST(T, 7) EDDY_UNPACK_FAST(T, 8)         \
    EDDY_UNPACK_FAST(T, 9) EDDY_UNPACK_FAST(T, 10) EDDY_UNPACK_FAST(T, 11) EDDY_UNPACK_FAST(T, 12)      \
    EDDY_UNPACK_FAST(T, 13) EDDY_UNPACK_FAST(T, 14) EDDY_UNPACK_FAST(T, 15) EDDY_UNPACK_FAST(T, 16)     \
    EDDY_UNPACK_FAST(T, 17) EDDY_UNPACK_FAST(T, 18) EDDY_UNPACK_FAST(T, 19) EDDY_UNPACK_FAST(T, 20)     \
    EDDY_UNPACK_FAST(T, 21) EDDY_UNPACK_FAST(T, 22) EDDY_UNPACK_FAST(T, 23) EDDY_UNPACK_FAST(T, 24)     \
    EDDY_UNPACK_FAST(T, 25) EDDY_UNPACK_FAST(T, 26) EDDY_UNPACK_FAST(T, 27) EDDY_UNPACK_FAST(T, 28)     \
    EDDY_UNPACK_FAST(T, 29) EDDY_UNPACK_FAST(T, 30) EDDY_UNPACK_FAST(T, 31) EDDY_UNPACK_FAST(T, 32)     \
    static uint32_t unpack_groups_##T(const uint8_t *in, size_t groups, unsigned width, T *out) {      \
        switch (width) {                                                                               \
        case 1: return unpack_##T##_1(in, groups, out);                                                \
        case 2: return unpack_##T##_2(in, groups, out);                                                \
        case 3: return unpack_##T##_3(in, groups, out);                                                \
        case 4: return unpack_##T##_4(in, groups, out);                                                \
        case 5: return unpack_##T##_5(in, groups, out);                                                \
        case 6: return unpack_##T##_6(in, groups, out);                                                \
        case 7: return unpack_##T##_7(in, groups, out);                                                \
        case 8: return unpack_##T##_8(in, groups, out);                                                \
        case 9: return unpack_##T##_9(in, groups, out);                                                \
        case 10: return unpack_##T##_10(in, groups, out);                                              \
        case 11: return unpack_##T##_11(in, groups, out);                                              \
        case 12: return unpack_##T##_12(in, groups, out);                                              \
        case 13: return unpack_##T##_13(in, groups, out);                                              \
        case 14: return unpack_##T##_14(in, groups, out);                                              \
        case 15: return unpack_##T##_15(in, groups, out);                                              \
        case 16: return unpack_##T##_16(in, groups, out);                                              \
        case 17: return unpack_##T##_17(in, groups, out);                                              \
        case 18: return unpack_##T##_18(in, groups, out);                                              \
        case 19: return unpack_##T##_19(in, groups, out);                                              \
        case 20: return unpack_##T##_20(in, groups, out);                                              \
        case 21: return unpack_##T##_21(in, groups, out);                                              \
        case 22: return unpack_##T##_22(in, groups, out);                                              \
        case 23: return unpack_##T##_23(in, groups, out);                                              \
        case 24: return unpack_##T##_24(in, groups, out);                                              \
        case 25: return unpack_##T##_25(in, groups, out);                                              \
        case 26: return unpack_##T##_26(in, groups, out);                                              \
        case 27: return unpack_##T##_27(in, groups, out);                                              \
        case 28: return unpack_##T##_28(in, groups, out);                                              \
        case 29: return unpack_##T##_29(in, groups, out);                                              \
        case 30: return unpack_##T##_30(in, groups, out);                                              \
        case 31: return unpack_##T##_31(in, groups, out);                                              \
        default: return unpack_##T##_32(in, groups, out);                                              \
        }                                                                                              \
    }

EDDY_UNPACK_ALL(uint8_t)
EDDY_UNPACK_ALL(uint16_t)
EDDY_UNPACK_ALL(uint32_t)

/// Value `k` of `width` bits, read byte by byte within `in_len` bytes (the caller has checked that its
/// bits lie there).
static uint32_t unpack_one(const uint8_t *in, size_t in_len, unsigned width, size_t k) {
    size_t bit = k * width;
    uint64_t word = 0;
    size_t b = bit / 8;
    unsigned shift = 0;
    while (b < in_len && shift < 64 && shift < (bit & 7) + width) {
        word |= (uint64_t)in[b] << shift;
        b++;
        shift += 8;
    }
    const uint64_t mask = width == 32 ? 0xFFFFFFFFull : ((1ull << width) - 1);
    return (uint32_t)((word >> (bit & 7)) & mask);
}

uint32_t eddy_unpack_bits(const uint8_t *in, size_t in_len, unsigned width, size_t count, void *out,
                          unsigned out_size) {
    if (width == 0 || width > 32 || count == 0) return 0;
    if (count > (in_len * 8) / width) return UINT32_MAX;
    // Whole groups of 8 whose last 8-byte load stays within the input; the rest value by value.
    size_t groups = count / 8;
    while (groups > 0 && groups * width + 8 > in_len) groups--;
    uint32_t high = 0;
    switch (out_size) {
    case 1: high = unpack_groups_uint8_t(in, groups, width, (uint8_t *)out); break;
    case 2: high = unpack_groups_uint16_t(in, groups, width, (uint16_t *)out); break;
    default: high = unpack_groups_uint32_t(in, groups, width, (uint32_t *)out); break;
    }
    for (size_t k = groups * 8; k < count; k++) {
        uint32_t v = unpack_one(in, in_len, width, k);
        high = v > high ? v : high;
        switch (out_size) {
        case 1: ((uint8_t *)out)[k] = (uint8_t)v; break;
        case 2: ((uint16_t *)out)[k] = (uint16_t)v; break;
        default: ((uint32_t *)out)[k] = v; break;
        }
    }
    return high;
}

static uint64_t pext_portable(uint64_t src, uint64_t mask) {
    uint64_t out = 0;
    unsigned k = 0;
    while (mask != 0) {
        unsigned b = (unsigned)__builtin_ctzll(mask);
        out |= ((src >> b) & 1) << k;
        k++;
        mask &= mask - 1;
    }
    return out;
}

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("bmi2"))) static uint64_t pext_bmi2(uint64_t src, uint64_t mask) {
    return _pext_u64(src, mask);
}
#endif

uint64_t eddy_pext64(uint64_t src, uint64_t mask) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("bmi2")) return pext_bmi2(src, mask);
#endif
    return pext_portable(src, mask);
}
