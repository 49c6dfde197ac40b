#include "EddyKernelsC.h"

// The plugin code this thread is running, as a line a crash report can print. Initial-exec TLS:
// libEddy.so is loaded at startup, so reading it from a signal handler needs no allocation.
static __thread const char *current_site __attribute__((tls_model("initial-exec")));

// A page another process can read (a worker's supervisor): the site is copied there too, so that
// when this process dies, the supervisor still knows what was running. Set once, before any call.
static char *mirror_page;
static size_t mirror_size;

static void mirror(const char *site) {
    if (!mirror_page || mirror_size == 0) return;
    size_t i = 0;
    if (site) {
        for (; i + 1 < mirror_size && site[i]; i++) mirror_page[i] = site[i];
    }
    mirror_page[i] = 0;
}

// A second area of that page lists every site that has run in this process (one line each, in the
// order they first ran): a thread plugin code started can crash long after its call returned, and
// the supervisor then still knows whose code has run here. When the area is full its last byte is 1.
static char *ran_page;
static size_t ran_size;
static size_t ran_used;

void eddy_plugin_call_record_runs(char *page, size_t size) {
    ran_page = page;
    ran_size = size;
}

void eddy_plugin_call_record(const char *site) {
    if (!ran_page || ran_size < 2 || !site) return;
    size_t n = 0;
    while (site[n]) n++;
    size_t at = __atomic_fetch_add(&ran_used, n + 1, __ATOMIC_RELAXED);
    if (at >= ran_size - 1 || n + 1 > ran_size - 1 - at) {
        ran_page[ran_size - 1] = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) ran_page[at + i] = site[i];
    ran_page[at + n] = '\n';
}

const char *eddy_plugin_call_enter(const char *site) {
    const char *previous = current_site;
    current_site = site;
    mirror(site);
    return previous;
}

void eddy_plugin_call_leave(const char *previous) {
    current_site = previous;
    mirror(previous);
}

void eddy_plugin_call_mirror(char *page, size_t size) {
    mirror_page = page;
    mirror_size = size;
}

const char *eddy_plugin_call_current(void) {
    return current_site;
}
