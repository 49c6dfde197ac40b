// Hostile plugin fixtures, compiled by the tests with
//   cc -shared -fPIC -DMODE=<n> hostile.c -L<build dir> -Wl,--no-as-needed -lEddy -o libhostile.so
// The file NEEDS libEddy.so and exports both entry points, so it passes every check made before
// its code runs; what it does while registering is the test.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODE_EXIT 1        // calls exit(0) while registering
#define MODE_LOOP 2        // never returns from registration
#define MODE_CRASH 3       // dereferences a bad pointer while registering
#define MODE_OUTSIDE_PROBE 4  // crashes only when not loaded by `eddy probe-plugin`
#define MODE_GOOD 5        // registers nothing and returns: a plugin that passes every check
#define MODE_PLANT 6       // code an attacker plants: its constructor writes $EDDY_TEST_MARKER
#define MODE_DTOR 7        // registers fine, then crashes in a destructor when the process exits

#ifndef MODE
#error "define MODE"
#endif

const char *eddy_plugin_manifest_v1(void) {
    return "EDDY-PLUGIN\nname=hostile-" MODE_NAME "\nversion=1.0.0\nabi=1\ncompiler=6.3\n";
}

#if MODE == MODE_PLANT
__attribute__((constructor)) static void planted(void) {
    const char *marker = getenv("EDDY_TEST_MARKER");
    if (marker) {
        FILE *f = fopen(marker, "w");
        if (f) { fputs("planted code ran\n", f); fclose(f); }
    }
}
#endif

#if MODE == MODE_DTOR
__attribute__((destructor)) static void crash_at_exit(void) { raise(SIGSEGV); }
#endif

static int in_probe(void) {
    char buf[4096];
    FILE *f = fopen("/proc/self/cmdline", "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (size_t i = 0; i + 12 <= n; i++) {
        if (memcmp(buf + i, "probe-plugin", 12) == 0) return 1;
    }
    return 0;
}

char *eddy_plugin_register_v1(const void *host) {
    (void)host;
    switch (MODE) {
    case MODE_EXIT:
        exit(0);
    case MODE_LOOP:
        for (;;) { }
    case MODE_CRASH:
        raise(SIGSEGV);
        break;
    case MODE_OUTSIDE_PROBE:
        if (!in_probe()) raise(SIGSEGV);
        break;
    }
    return NULL;
}
