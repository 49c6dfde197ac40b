#ifndef CEDDY_IO_H
#define CEDDY_IO_H

#include <stddef.h>
#include <stdint.h>

/// Marks the bytes of `p[0..<n]` equal to `a`, `b` or `c`: bit k of `out[w]` is set when byte
/// `64 * w + k` is one of them. `out` has room for (n + 63) / 64 words; bits past `n` are clear.
/// Uses AVX2 when the CPU has it, else SSE2 (x86-64) or a portable loop. Readers call it to find
/// CSV delimiters, quotes and newlines a block at a time instead of testing each byte in Swift.
void eddy_byte_masks(const uint8_t *p, size_t n, uint8_t a, uint8_t b, uint8_t c, uint64_t *out);

/// The number of bytes of `p[0..<n]` equal to `c` (line numbers for messages).
size_t eddy_count_byte(const uint8_t *p, size_t n, uint8_t c);

/// Counts the records of CSV text `p[0..<n]` that holds no quote (lines; a blank line, or one holding
/// only a CR, is not a record; the last line may lack its newline) and checks that each has `columns`
/// fields, 64 bytes at a time. Returns the count; -1 for the first record with another field count
/// (its first byte is `*bad_offset`, its field count `*bad_fields`); -2 when the text has a quote
/// (the caller's full scan handles quoted fields).
long eddy_csv_count_records(const uint8_t *p, size_t n, size_t columns, size_t *bad_offset, size_t *bad_fields);

/// CRC-32C (Castagnoli) of `n` bytes continuing `crc` (0 to start): SSE4.2 when the CPU has it.
uint32_t eddy_crc32c(uint32_t crc, const uint8_t *p, size_t n);
/// The same without the CPU instruction (for tests that compare the two).
uint32_t eddy_crc32c_portable(uint32_t crc, const uint8_t *p, size_t n);

/// Counts the CSV records that start in bytes `from..<to` of the file open on `fd`, reading with
/// `pread` through `buf` (`cap` bytes) up to `eof` at most, as ``eddy_csv_count_records`` checks them
/// (each has `columns` fields; a blank line is not a record). When `aligned` is 0, `from` may fall
/// inside a record: the first counted one starts after the first newline at or after `from - 1`. The
/// record that starts last may run past `to`. Returns the count; -1 for a record with another field
/// count (its offset in `*bad_offset`, its field count in `*bad_fields`); -2 when a quote is seen (the
/// caller scans quoted text itself); -3 for a record longer than `max_record` bytes (its offset in
/// `*bad_offset`); -4 when reading fails (`errno` tells why).
long eddy_csv_count_file_range(int fd, uint64_t from, uint64_t to, uint64_t eof, int aligned, size_t columns,
                               size_t max_record, uint8_t *buf, size_t cap, uint64_t *bad_offset,
                               size_t *bad_fields);

/// Splits CSV text `p[0..<n]` that holds no quote into records of `columns` fields, keeping the
/// fields of the wanted columns: `slot_of_column[k]` is column k's slot (or -1 when it is not wanted),
/// and field k of row r goes to `starts[slot][r]`, `ends[slot][r]`, `nulls[slot][r]` (its byte range, a
/// CR before the newline not included; null when empty); each of those arrays has `capacity` rows. `row_starts[r]` is the record's first byte. A
/// blank line, or one holding only a CR, is not a record. Returns the rows; -1 for the first record
/// with another field count (its first byte `*bad_offset`, its field count `*bad_fields`); -2 when
/// the text has a quote (the caller's scanner handles quoted fields); -5 past `capacity` rows.
long eddy_csv_split_plain(const uint8_t *p, size_t n, size_t columns, const int32_t *slot_of_column,
                          size_t capacity, int64_t *const *starts, int64_t *const *ends, uint8_t *const *nulls,
                          int64_t *row_starts, size_t *bad_offset, size_t *bad_fields);

/// Records that `size` bytes at `base` map the file `path` (copied, cut at 255 bytes), so that a
/// crash report for a fault there (SIGBUS: the file was cut short) can name it. Returns the slot to
/// release, or -1 when all 64 slots are taken (the mapping is then just not named).
int eddy_mapping_register(const void *base, size_t size, const char *path);
void eddy_mapping_unregister(int slot);
/// The path of the registered mapping holding `address`, or NULL. Async-signal-safe.
const char *eddy_mapping_path_at(const void *address);

/// Marks this thread as doing the engine's own work (a request, a batch) until the matching leave;
/// calls nest. A crash on a thread with no such mark and no plugin mark is on a thread plugin code
/// started (or one of the runtime's own), which is how a supervisor tells a plugin's stray thread
/// from the engine running out of memory.
void eddy_engine_work_enter(void);
void eddy_engine_work_leave(void);
/// Whether this thread is inside engine work; async-signal-safe.
int eddy_engine_work_active(void);

#endif

// Runs work(context, i) for every i below iterations, on the calling thread and libdispatch's pool;
// returns when all have run.
void eddy_parallel_for(size_t iterations, void *context, void (*work)(void *, size_t));
// Starts work(context) on libdispatch's pool; the handle is for eddy_background_wait (null: not
// started, the caller runs it itself).
void *eddy_background_start(void *context, void (*work)(void *));
// Waits for a started work and frees its handle.
void eddy_background_wait(void *group);
// CLOCK_MONOTONIC in nanoseconds (0 if it cannot be read).
uint64_t eddy_monotonic_nanoseconds(void);

// A lock and a condition over it, for threads that share one evaluation's state (null if it cannot be
// made: the caller then works on one thread). wait is called with the lock held and returns with it.
typedef struct eddy_monitor eddy_monitor;
eddy_monitor *eddy_monitor_create(void);
void eddy_monitor_lock(eddy_monitor *m);
void eddy_monitor_unlock(eddy_monitor *m);
void eddy_monitor_wait(eddy_monitor *m);
void eddy_monitor_broadcast(eddy_monitor *m);
void eddy_monitor_destroy(eddy_monitor *m);
