// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI, ext4 and many file formats use it.
// The SSE4.2 `crc32` instruction when the CPU has it, else a byte-at-a-time table (both give the same
// value; the tests check both against the published check value of "123456789", 0xE3069283).
#include "CEddyIO.h"
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
}

uint32_t eddy_crc32c_portable(uint32_t crc, const uint8_t *p, size_t n) {
    pthread_once(&table_once, build_table);
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}
#endif

uint32_t eddy_crc32c(uint32_t crc, const uint8_t *p, size_t n) {
#if defined(__x86_64__)
    static int has = -1;
    if (has < 0) has = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    if (has) return crc32c_sse42(crc, p, n);
#endif
    return eddy_crc32c_portable(crc, p, n);
}
