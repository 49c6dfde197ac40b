// Work spread over threads with libdispatch's C interface, so that Swift code can run a loop on every
// core without Dispatch's Swift overlay (libswiftDispatch links Swift's concurrency library, which
// cost every `eddy` process start its loading; see Sources/EddyIO/Support/Parallel.swift).
//
// The few functions needed are declared here rather than through <dispatch/dispatch.h>, whose
// directory is not on a C target's include path; the types are opaque pointers either way.
#include "CEddyIO.h"

extern void dispatch_apply_f(size_t iterations, void *queue, void *context, void (*work)(void *, size_t));
extern void *dispatch_get_global_queue(long identifier, unsigned long flags);
extern void *dispatch_group_create(void);
extern void dispatch_group_async_f(void *group, void *queue, void *context, void (*work)(void *));
extern long dispatch_group_wait(void *group, unsigned long long timeout);
extern void dispatch_release(void *object);

void eddy_parallel_for(size_t iterations, void *context, void (*work)(void *, size_t)) {
    // A null queue is DISPATCH_APPLY_AUTO: the calling thread and the default-priority pool.
    dispatch_apply_f(iterations, (void *)0, context, work);
}

void *eddy_background_start(void *context, void (*work)(void *)) {
    void *group = dispatch_group_create();
    if (!group) { return (void *)0; }
    dispatch_group_async_f(group, dispatch_get_global_queue(0, 0), context, work);
    return group;
}

void eddy_background_wait(void *group) {
    if (!group) { return; }
    dispatch_group_wait(group, ~0ULL);
    dispatch_release(group);
}

#include <time.h>

uint64_t eddy_monotonic_nanoseconds(void) {
    struct timespec t;
    if (clock_gettime(CLOCK_MONOTONIC, &t) != 0) { return 0; }
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}
