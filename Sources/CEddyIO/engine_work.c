#include "CEddyIO.h"

// How deep this thread is in the engine's own work (a request, a batch). Initial-exec TLS, so that a
// crash handler can read it without allocating: the eddy executable links this file statically.
static __thread int engine_depth __attribute__((tls_model("initial-exec")));

void eddy_engine_work_enter(void) { engine_depth++; }

void eddy_engine_work_leave(void) {
    if (engine_depth > 0) engine_depth--;
}

int eddy_engine_work_active(void) { return engine_depth > 0; }
