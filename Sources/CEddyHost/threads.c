#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// Which plugin code started this thread: "a thread started in <site>", for the crash handler. A
// thread a kernel or a registration starts can crash long after that code returned, on no marked
// call; this names who started it, and a thread it starts inherits the same origin.
// Initial-exec TLS: read from a signal handler without allocating.
static __thread const char *thread_origin __attribute__((tls_model("initial-exec")));

// Defined in libEddy.so (weak, as in shims.c): the plugin code the calling thread runs now.
extern const char *eddy_plugin_call_current(void) __attribute__((weak));

const char *eddy_thread_origin(void) { return thread_origin; }

struct start {
    void *(*routine)(void *);
    void *argument;
    const char *origin;
};

static void *trampoline(void *raw) {
    struct start s = *(struct start *)raw;
    free(raw);
    thread_origin = s.origin;
    return s.routine(s.argument);
}

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

// Interposes the C library's pthread_create for the whole process (the eddy executable exports it,
// so plugins, Foundation and Dispatch bind to it): a thread created while plugin code runs, or from
// a thread such code started, records its origin. Everything else goes straight through.
int pthread_create(pthread_t *thread, const pthread_attr_t *attributes, void *(*routine)(void *), void *argument) {
    static create_fn real;
    create_fn next = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (!next) {
        next = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
        if (!next) return 11;  // EAGAIN: no way to create a thread
        __atomic_store_n(&real, next, __ATOMIC_RELEASE);
    }
    const char *site = eddy_plugin_call_current ? eddy_plugin_call_current() : NULL;
    const char *origin = thread_origin;
    if (site) {
        // Made once per creating call, kept for the life of the process (threads are few; a site's
        // text lives as long as its plugin stays mapped, and plugins are never unmapped).
        static const char prefix[] = "a thread started in ";
        size_t n = strlen(site);
        char *text = malloc(sizeof prefix + n);
        if (text) {
            memcpy(text, prefix, sizeof prefix - 1);
            memcpy(text + sizeof prefix - 1, site, n + 1);
            origin = text;
        }
    }
    if (!origin) return next(thread, attributes, routine, argument);
    struct start *s = malloc(sizeof *s);
    if (!s) return next(thread, attributes, routine, argument);
    s->routine = routine;
    s->argument = argument;
    s->origin = origin;
    int result = next(thread, attributes, trampoline, s);
    if (result != 0) free(s);
    return result;
}
