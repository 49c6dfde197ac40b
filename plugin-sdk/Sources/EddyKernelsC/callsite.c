#include "EddyKernelsC.h"

// The plugin code this thread is running, as a line a crash report can print. Initial-exec TLS:
// libEddy.so is loaded at startup, so reading it from a signal handler needs no allocation.
static __thread const char *current_site __attribute__((tls_model("initial-exec")));

const char *eddy_plugin_call_enter(const char *site) {
    const char *previous = current_site;
    current_site = site;
    return previous;
}

void eddy_plugin_call_leave(const char *previous) {
    current_site = previous;
}

const char *eddy_plugin_call_current(void) {
    return current_site;
}
