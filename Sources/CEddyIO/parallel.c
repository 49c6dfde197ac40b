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

#include <pthread.h>
#include <stdlib.h>

struct eddy_monitor {
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

eddy_monitor *eddy_monitor_create(void) {
    eddy_monitor *m = malloc(sizeof *m);
    if (!m) { return (eddy_monitor *)0; }
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return (eddy_monitor *)0;
    }
    if (pthread_cond_init(&m->cond, NULL) != 0) {
        pthread_mutex_destroy(&m->lock);
        free(m);
        return (eddy_monitor *)0;
    }
    return m;
}

void eddy_monitor_lock(eddy_monitor *m) { pthread_mutex_lock(&m->lock); }
void eddy_monitor_unlock(eddy_monitor *m) { pthread_mutex_unlock(&m->lock); }
void eddy_monitor_wait(eddy_monitor *m) { pthread_cond_wait(&m->cond, &m->lock); }
void eddy_monitor_broadcast(eddy_monitor *m) { pthread_cond_broadcast(&m->cond); }

void eddy_monitor_destroy(eddy_monitor *m) {
    if (!m) { return; }
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
