// Hot loops that the Swift compiler does not vectorise well (no pmovmskb from Swift SIMD types).
// Each function picks an AVX2 path at run time when the CPU has it, else a portable loop.
#ifndef EDDY_KERNELS_C_H
#define EDDY_KERNELS_C_H

#include <stddef.h>
#include <stdint.h>

/// Sets bit i of `out` (n bits, words fully written) when codes[i] == needle; returns the largest code seen.
uint8_t eddy_eq_u8(const uint8_t *codes, size_t n, uint8_t needle, uint64_t *out);
uint16_t eddy_eq_u16(const uint16_t *codes, size_t n, uint16_t needle, uint64_t *out);
uint32_t eddy_eq_u32(const uint32_t *codes, size_t n, uint32_t needle, uint64_t *out);

/// Sets bit i of `out` when lut[codes[i]] != 0; codes at or past lut_len give 0. Returns the largest code seen.
uint8_t eddy_lut_u8(const uint8_t *codes, size_t n, const uint8_t *lut, size_t lut_len, uint64_t *out);
uint16_t eddy_lut_u16(const uint16_t *codes, size_t n, const uint8_t *lut, size_t lut_len, uint64_t *out);
uint32_t eddy_lut_u32(const uint32_t *codes, size_t n, const uint8_t *lut, size_t lut_len, uint64_t *out);

/// Sets bit i of `out` when value i of a varbin array (Int32 offsets) equals the needle's bytes.
/// Sum over runs `first ..< last` of values[j] * (ends[j] - ends[j - 1]) (first >= 1), into `*sum`.
/// Returns 1 when the result is exact: every value in [-2^31, 2^31) and every run shorter than 2^31
/// rows (so that 32-bit products are exact and the 64-bit sum of a window under 2^32 rows cannot
/// overflow); 0 otherwise, and the caller sums exactly instead. Four runs at a time with AVX2.
int eddy_runend_weighted_sum_i64(const int64_t *values, const uint32_t *ends, size_t first, size_t last,
                                 int64_t *sum);

void eddy_varbin_eq(const int32_t *offsets, const uint8_t *bytes, size_t n, const uint8_t *needle,
                    size_t needle_len, uint64_t *out);

/// Unpacks `blocks` blocks of 64 values of `width` bits (1...64) each, block b at words + b * width
/// (values packed from bit 0 of the first word up), into out[64 * blocks], adding `add` (wrapping)
/// to every value. One unrolled loop per width, so every shift is a constant.
void eddy_unpack_blocks(const uint64_t *words, int width, size_t blocks, uint64_t add, uint64_t *out);

/// ``eddy_unpack_blocks`` into 8-, 16- or 32-bit values (`out_bytes` 1, 2 or 4; the value plus `add`
/// truncated to that width), for a width that fits: 1...8, 1...16 or 1...32 bits. Returns 0, writing
/// nothing, for any other width or size.
int eddy_unpack_blocks_narrow(const uint64_t *words, int width, size_t blocks, uint64_t add, void *out,
                              int out_bytes);

/// Sets bit i of `out` (ceil(n / 64) words, fully written, bits past n 0) when values[i] OP needle,
/// compared unsigned; op 0 eq, 1 ne,
/// 2 lt, 3 le, 4 gt, 5 ge (anything else writes nothing). Returns the largest value when `want_max`,
/// else 0. Four values at a time with AVX2.
uint64_t eddy_compare_u64(const uint64_t *values, size_t n, int op, uint64_t needle, int want_max, uint64_t *out);

/// Sum of the bit-packed values at positions offset ..< offset + n (`width` 0...32 bits each, packed
/// from bit 0 of words[0]) whose bit (mask_offset + i) in `mask` (LSB first) is set; NULL: all. Whole
/// 64-value blocks are unpacked into scratch and summed under their mask word. *counted gets the
/// number of positions summed. Exact for n < 2^32 (each value < 2^32).
uint64_t eddy_packed_masked_sum(const uint64_t *words, int width, size_t offset, size_t n, const uint8_t *mask,
                                size_t mask_offset, size_t *counted);

/// Sum of values[i] over rows i < n whose bit (offset + i) in `validity` (LSB first) is set, exact in
/// 128 bits as two halves: *low gets the sum of the low 32 bits, *high the sum of the (signed) high
/// 32 bits; neither overflows for n < 2^32. Returns the number of valid rows. NULL: all valid.
size_t eddy_masked_sum_i64(const int64_t *values, const uint8_t *validity, size_t offset, size_t n,
                           uint64_t *low, int64_t *high);

/// Adds values[i] (as double), for the rows i < n whose bit (offset + i) in `validity` is set (NULL: all),
/// to *sum, in row order: the same double a row-by-row loop gives. Returns the number of those rows.
size_t eddy_masked_sum_f64(const double *values, const uint8_t *validity, size_t offset, size_t n, double *sum);
/// ``eddy_masked_sum_f64`` over floats, each widened to double before it is added.
size_t eddy_masked_sum_f32(const float *values, const uint8_t *validity, size_t offset, size_t n, double *sum);

/// out[i] = x[i] op y[i] with wrapping (op 0: +, 1: -), x or y given as one repeated value when its
/// pointer is NULL. Returns 1 when some row overflowed (the caller then finds the first valid one).
int eddy_add_sub_i64(int op, const int64_t *x, int64_t xs, const int64_t *y, int64_t ys, size_t n, int64_t *out);

/// Marks this thread as running the plugin code described by `site` (a NUL-terminated line that
/// outlives the call); returns the previous mark, to hand back to eddy_plugin_call_leave.
const char *eddy_plugin_call_enter(const char *site);
void eddy_plugin_call_leave(const char *previous);
/// The plugin code this thread is running, or NULL: async-signal-safe, for crash reports.
const char *eddy_plugin_call_current(void);
/// Also copy every mark into `page` (NUL-terminated, at most `size` bytes): shared memory that a
/// supervising process reads after this one dies.
void eddy_plugin_call_mirror(char *page, size_t size);
/// Also list in `page` (at most `size` bytes) every site that runs, once, when it first runs: one
/// line each; the last byte is set to 1 when the page is full. Set once, before any call.
void eddy_plugin_call_record_runs(char *page, size_t size);
/// Adds `site` to that list (``PluginCallSite`` calls it once per site).
void eddy_plugin_call_record(const char *site);


/// The bits of `bits` (`bits_bytes` readable, from bit `bits_offset`) at the rows 0..<n whose bit of
/// `mask` (`mask_bytes` readable, from bit `mask_offset`) is set, packed from bit 0 of `out` (zeroed,
/// at least ceil(limit / 64) words): at most `limit` of them. Returns how many were written. PEXT
/// where the CPU has BMI2.
size_t eddy_bits_compress(const uint8_t *bits, size_t bits_bytes, size_t bits_offset, const uint8_t *mask,
                          size_t mask_bytes, size_t mask_offset, size_t n, uint64_t *out, size_t limit);

/// The values (`bytes` 1, 2, 4 or 8 wide) of rows 0..<n whose bit of `mask` (`mask_bytes` readable,
/// from bit `mask_offset`) is set, in order, into `out`: at most `limit`. Returns how many were
/// written (0 for another width).
size_t eddy_compress_values(const void *values, int bytes, size_t n, const uint8_t *mask, size_t mask_bytes,
                            size_t mask_offset, void *out, size_t limit);

#endif
