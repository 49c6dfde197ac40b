#include "CEddyIO.h"
#include <string.h>
#include <errno.h>
#include <unistd.h>

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

/* Newline, comma and quote masks of 64 bytes (bit k = byte k). */
struct csv_masks {
    uint64_t newline, comma, quote;
};

#if defined(__x86_64__)
__attribute__((target("avx2"))) static inline struct csv_masks csv_masks_avx2(const uint8_t *q) {
    const __m256i nl = _mm256_set1_epi8('\n'), cm = _mm256_set1_epi8(','), qt = _mm256_set1_epi8('"');
    __m256i x0 = _mm256_loadu_si256((const __m256i *)q);
    __m256i x1 = _mm256_loadu_si256((const __m256i *)(q + 32));
    struct csv_masks m;
    m.newline = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x0, nl)) |
                (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x1, nl)) << 32;
    m.comma = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x0, cm)) |
              (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x1, cm)) << 32;
    m.quote = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x0, qt)) |
              (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x1, qt)) << 32;
    return m;
}
#endif

static struct csv_masks csv_masks_portable(const uint8_t *q, size_t len) {
    struct csv_masks m = {0, 0, 0};
    for (size_t k = 0; k < len; k++) {
        m.newline |= (uint64_t)(q[k] == '\n') << k;
        m.comma |= (uint64_t)(q[k] == ',') << k;
        m.quote |= (uint64_t)(q[k] == '"') << k;
    }
    return m;
}

/* The masks of the `len` (at most 64) bytes at `q`: AVX2 for a whole block when `wide`. */
static inline struct csv_masks csv_block_masks(const uint8_t *q, size_t len, int wide) {
#if defined(__x86_64__)
    if (wide && len == 64) return csv_masks_avx2(q);
#else
    (void)wide;
#endif
    return csv_masks_portable(q, len);
}


/* The state of a count that streams through a file: the current line's start (absolute), the commas
   seen in it, its first byte (when known) and the byte before the current chunk. */
struct count_state {
    uint64_t line_start;
    size_t commas;
    int first;  /* the line's first byte, -1 while unknown */
    int prev;   /* the byte before the chunk, -1 at the start */
    long records;
};

/* Checks the line that ends at `end` (exclusive of its newline; `before` is the byte at end - 1, or
   -1 when the line is empty). 0 when it is fine (counted, or blank), else the error code. */
static long finish_line(struct count_state *st, uint64_t end, int before, size_t columns, size_t max_record,
                        uint64_t *bad_offset, size_t *bad_fields) {
    uint64_t length = end - st->line_start;
    if (length == 0 || (length == 1 && st->first == '\r')) return 0;
    uint64_t content = length - (before == '\r' ? 1 : 0);
    if (content > max_record) {
        *bad_offset = st->line_start;
        return -3;
    }
    if (st->commas + 1 != columns) {
        *bad_offset = st->line_start;
        *bad_fields = st->commas + 1;
        return -1;
    }
    st->records++;
    return 0;
}

/* Counts the records of `buf[0..<n]`, the file's bytes from `pos`, into `st`: 1 once the record
   that starts last before `to` has ended, 0 when the chunk is used up, or an error code of
   eddy_csv_count_file_range. */
static inline __attribute__((always_inline)) long count_chunk_body(struct count_state *stp, const uint8_t *buf,
                                                                   size_t n, uint64_t pos, uint64_t to,
                                                                   size_t columns, size_t max_record, int wide,
                                                                   uint64_t *bad_offset, size_t *bad_fields) {
    struct count_state st = *stp;
    for (size_t b = 0; b < n; b += 64) {
        size_t len = n - b < 64 ? n - b : 64;
        struct csv_masks m = csv_block_masks(buf + b, len, wide);
        if (m.quote) {
            *stp = st;
            return -2;
        }
        uint64_t nl = m.newline, cm = m.comma;
        while (nl) {
            unsigned bit = (unsigned)__builtin_ctzll(nl);
            uint64_t upto = bit == 63 ? ~0ull : ((2ull << bit) - 1);
            st.commas += (size_t)__builtin_popcountll(cm & upto);
            cm &= ~upto;
            size_t at = b + bit;
            uint64_t end = pos + at;
            uint64_t length = end - st.line_start;
            if (__builtin_expect(length > 1 && length <= max_record && st.commas + 1 == columns, 1)) {
                st.records++; /* the common record: not blank, within the limit, the right shape */
            } else {
                if (length == 1) st.first = st.line_start >= pos ? buf[st.line_start - pos] : st.prev;
                int before = end == st.line_start ? -1 : (at > 0 ? buf[at - 1] : st.prev);
                long r = finish_line(&st, end, before, columns, max_record, bad_offset, bad_fields);
                if (r < 0) {
                    *stp = st;
                    return r;
                }
            }
            if (end + 1 >= to) { /* the next record starts in the next range */
                *stp = st;
                return 1;
            }
            st.line_start = end + 1;
            st.commas = 0;
            nl &= nl - 1;
        }
        st.commas += (size_t)__builtin_popcountll(cm);
    }
    /* A line longer than the limit is refused as soon as it passes it, not at its end. */
    if (pos + n - st.line_start > (uint64_t)max_record + 1) {
        *bad_offset = st.line_start;
        *stp = st;
        return -3;
    }
    st.prev = buf[n - 1];
    *stp = st;
    return 0;
}

static long count_chunk_plain(struct count_state *stp, const uint8_t *buf, size_t n, uint64_t pos, uint64_t to,
                              size_t columns, size_t max_record, uint64_t *bad_offset, size_t *bad_fields) {
    return count_chunk_body(stp, buf, n, pos, to, columns, max_record, 0, bad_offset, bad_fields);
}

#if defined(__x86_64__)
/* The same, compiled for AVX2 machines (which all have POPCNT and BMI1): the block masks inline and
   the per-record popcount one instruction (baseline x86-64 has no POPCNT: a dozen instructions). */
__attribute__((target("avx2,popcnt,bmi"))) static long count_chunk_avx2(struct count_state *stp,
                                                                      const uint8_t *buf, size_t n,
                                                                      uint64_t pos, uint64_t to, size_t columns,
                                                                      size_t max_record, uint64_t *bad_offset,
                                                                      size_t *bad_fields) {
    return count_chunk_body(stp, buf, n, pos, to, columns, max_record, 1, bad_offset, bad_fields);
}
#endif

static long count_chunk(struct count_state *stp, const uint8_t *buf, size_t n, uint64_t pos, uint64_t to,
                        size_t columns, size_t max_record, int wide, uint64_t *bad_offset, size_t *bad_fields) {
#if defined(__x86_64__)
    if (wide) return count_chunk_avx2(stp, buf, n, pos, to, columns, max_record, bad_offset, bad_fields);
#endif
    return count_chunk_plain(stp, buf, n, pos, to, columns, max_record, bad_offset, bad_fields);
}

long eddy_csv_count_file_range(int fd, uint64_t from, uint64_t to, uint64_t eof, int aligned, size_t columns,
                               size_t max_record, uint8_t *buf, size_t cap, uint64_t *bad_offset,
                               size_t *bad_fields) {
    if (cap < 64 || from > to || to > eof) return -4;
    cap -= cap % 64;
#if defined(__x86_64__)
    int wide = eddy_io_has_avx2();
#else
    int wide = 0;
#endif
    uint64_t pos = from;
    if (!aligned) {
        /* The first record starts after the first newline at or after from - 1. */
        pos = from == 0 ? 0 : from - 1;
        for (;;) {
            if (pos >= eof) return 0;
            size_t want = eof - pos < cap ? (size_t)(eof - pos) : cap;
            ssize_t n = pread(fd, buf, want, (off_t)pos);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return -4;
            if (n == 0) return 0;
            const uint8_t *nl = memchr(buf, '\n', (size_t)n);
            if (nl) {
                pos += (uint64_t)(nl - buf) + 1;
                break;
            }
            pos += (uint64_t)n;
        }
        if (pos >= to) return 0;
    }
    struct count_state st = {pos, 0, -1, -1, 0};
    for (;;) {
        if (pos >= eof) break;
        size_t want = eof - pos < cap ? (size_t)(eof - pos) : cap;
        ssize_t got = pread(fd, buf, want, (off_t)pos);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -4;
        if (got == 0) break; /* the file shrank: what was read is all there is */
        size_t n = (size_t)got;
        long r = count_chunk(&st, buf, n, pos, to, columns, max_record, wide, bad_offset, bad_fields);
        if (r < 0) return r;
        if (r == 1) return st.records;
        pos += n;
    }
    /* The last line, without a newline: a CR ending it counts towards the limit, as the batches
       count it (only a CR before a newline is a line ending). */
    if (st.line_start < pos) {
        if (pos - st.line_start == 1) st.first = st.prev;
        long r = finish_line(&st, pos, -1, columns, max_record, bad_offset, bad_fields);
        if (r < 0) return r;
    }
    return st.records;
}

long eddy_csv_count_records(const uint8_t *p, size_t n, size_t columns, size_t *bad_offset, size_t *bad_fields) {
#if defined(__x86_64__)
    int wide = eddy_io_has_avx2();
#else
    int wide = 0;
#endif
    /* The text as one chunk of a file, without a range end or a length limit. */
    struct count_state st = {0, 0, -1, -1, 0};
    uint64_t bad = 0;
    long r = n == 0 ? 0 : count_chunk(&st, p, n, 0, UINT64_MAX, columns, SIZE_MAX / 2, wide, &bad, bad_fields);
    if (r == 0 && st.line_start < n) {
        if (n - st.line_start == 1) st.first = st.prev;
        r = finish_line(&st, n, -1, columns, SIZE_MAX / 2, &bad, bad_fields);
    }
    *bad_offset = (size_t)bad;
    return r < 0 ? r : st.records;
}

long eddy_csv_split_plain(const uint8_t *p, size_t n, size_t columns, const int32_t *slot_of_column,
                          size_t capacity, int64_t *const *starts, int64_t *const *ends, uint8_t *const *nulls,
                          int64_t *row_starts, size_t *bad_offset, size_t *bad_fields) {
#if defined(__x86_64__)
    int wide = eddy_io_has_avx2();
#else
    int wide = 0;
#endif
    size_t rows = 0;
    size_t record_start = 0, field_start = 0, field = 0;
    /* One record's end (a newline at `end`, or the end of the text): its last field, then the checks. */
#define EDDY_END_RECORD(end)                                                                              \
    do {                                                                                                  \
        size_t stop_ = (end);                                                                             \
        size_t last_ = stop_ > field_start && p[stop_ - 1] == '\r' ? stop_ - 1 : stop_;                   \
        if (field == 0 && last_ == field_start) {                                                         \
            /* a blank line (or one holding only a CR) is not a record */                                 \
        } else {                                                                                          \
            if (field + 1 != columns) {                                                                   \
                *bad_offset = record_start;                                                               \
                *bad_fields = field + 1;                                                                  \
                return -1;                                                                                \
            }                                                                                             \
            int32_t s_ = slot_of_column[field];                                                           \
            if (s_ >= 0) {                                                                                \
                starts[s_][rows] = (int64_t)field_start;                                                  \
                ends[s_][rows] = (int64_t)last_;                                                          \
                nulls[s_][rows] = last_ == field_start;                                                   \
            }                                                                                             \
            row_starts[rows] = (int64_t)record_start;                                                     \
            rows++;                                                                                       \
        }                                                                                                 \
        field = 0;                                                                                        \
        field_start = stop_ + 1;                                                                          \
        record_start = stop_ + 1;                                                                         \
    } while (0)
    for (size_t b = 0; b < n; b += 64) {
        size_t len = n - b < 64 ? n - b : 64;
        struct csv_masks m = csv_block_masks(p + b, len, wide);
        if (m.quote) return -2;
        uint64_t bits = m.newline | m.comma;
        while (bits) {
            unsigned bit = (unsigned)__builtin_ctzll(bits);
            size_t d = b + bit;
            bits &= bits - 1;
            if (p[d] == ',') {
                if (field + 1 >= columns) {
                    /* More fields than the header: count the rest of the record for the message. */
                    size_t extra = field + 1;
                    size_t e = d;
                    for (; e < n && p[e] != '\n'; e++) {
                        if (p[e] == '"') return -2; /* a quoted field may hold commas: the scanner counts */
                        extra += p[e] == ',';
                    }
                    *bad_offset = record_start;
                    *bad_fields = extra;
                    return -1;
                }
                int32_t s = slot_of_column[field];
                if (s >= 0 && rows < capacity) {
                    starts[s][rows] = (int64_t)field_start;
                    ends[s][rows] = (int64_t)d;
                    nulls[s][rows] = d == field_start;
                }
                field++;
                field_start = d + 1;
            } else {
                if (rows >= capacity) return -5;
                EDDY_END_RECORD(d);
            }
        }
    }
    if (record_start < n) {
        if (rows >= capacity) return -5;
        EDDY_END_RECORD(n);
    }
#undef EDDY_END_RECORD
    return (long)rows;
}
