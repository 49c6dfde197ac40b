// Which mapped file an address belongs to, for crash reports: a fault reading a mapping (SIGBUS,
// when the file was truncated after it was mapped) can then name the file. Slots are claimed and
// released with atomics; the signal handler only reads.
#include "CEddyIO.h"
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define EDDY_MAPPING_SLOTS 64

static struct {
    atomic_int used;
    _Atomic(uintptr_t) base;
    _Atomic(size_t) size;
    char path[256];
} mappings[EDDY_MAPPING_SLOTS];

int eddy_mapping_register(const void *base, size_t size, const char *path) {
    for (int i = 0; i < EDDY_MAPPING_SLOTS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&mappings[i].used, &expected, 1)) {
            size_t n = strlen(path);
            if (n > sizeof mappings[i].path - 1) n = sizeof mappings[i].path - 1;
            memcpy(mappings[i].path, path, n);
            mappings[i].path[n] = 0;
            atomic_store(&mappings[i].size, size);
            atomic_store(&mappings[i].base, (uintptr_t)base);
            return i;
        }
    }
    return -1;
}

void eddy_mapping_unregister(int slot) {
    if (slot < 0 || slot >= EDDY_MAPPING_SLOTS) return;
    atomic_store(&mappings[slot].base, (uintptr_t)0);
    atomic_store(&mappings[slot].size, (size_t)0);
    atomic_store(&mappings[slot].used, 0);
}

const char *eddy_mapping_path_at(const void *address) {
    const uintptr_t a = (uintptr_t)address;
    for (int i = 0; i < EDDY_MAPPING_SLOTS; i++) {
        const uintptr_t base = atomic_load(&mappings[i].base);
        const size_t size = atomic_load(&mappings[i].size);
        if (base != 0 && a >= base && a - base < size) return mappings[i].path;
    }
    return NULL;
}
