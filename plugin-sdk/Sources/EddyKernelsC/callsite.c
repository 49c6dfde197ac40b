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
