// Equality of bit-packed dictionary codes with one code, straight from the packed words.
#ifndef PACKED_DICT_COMPARE_C_H
#define PACKED_DICT_COMPARE_C_H

#include <stddef.h>
#include <stdint.h>

/// Whether this CPU runs the fast path (AVX2 and BMI2).
int packed_eq_supported(void);

/// Sets bit i of `out` when code `first + i` (of `width` bits, 1...7, packed LSB-first in `packed`,
/// `packed_bytes` long) equals `needle`; `n` codes. Returns the largest code seen.
/// Only call when packed_eq_supported() is true.
uint32_t packed_eq(const uint8_t *packed, size_t packed_bytes, size_t first, size_t n, int width, uint32_t needle,
                   uint64_t *out);

#endif
