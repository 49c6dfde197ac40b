// Hostile plugin fixtures, compiled by the tests with
//   cc -shared -fPIC -DMODE=<n> hostile.c -L<build dir> -Wl,--no-as-needed -lEddy -o libhostile.so
// The file NEEDS libEddy.so and exports the entry point, so it passes every check made before
// its code runs; what it does while registering is the test.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODE_EXIT 1        // calls exit(0) while registering
#define MODE_LOOP 2        // never returns from registration
#define MODE_CRASH 3       // dereferences a bad pointer while registering
#define MODE_OUTSIDE_PROBE 4  // crashes only when not loaded by `eddy probe-plugin`
#define MODE_GOOD 5        // registers nothing and returns: a plugin that passes every check
#define MODE_PLANT 6       // code an attacker plants: its constructor writes $EDDY_TEST_MARKER
#define MODE_DTOR 7        // registers fine, then crashes in a destructor when the process exits
#define MODE_FORGE 8       // outside the probe: writes a forged reply to every socket it has, then waits
#define MODE_SHRINK 9      // outside the probe: shrinks every memfd it can reach to 0 bytes, then crashes
#define MODE_RAISE 10      // raise(SIGSEGV) while registering (a sent signal, not a fault)

#ifndef MODE
#error "define MODE"
#endif

static const char manifest[] = "EDDY-PLUGIN\nname=hostile-" MODE_NAME "\nversion=1.0.0\nabi=2\ncompiler=6.3\n";

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

static void forge_replies(void) {
    // A reply frame: length 10, request id 0, status 200, empty body.
    const unsigned char frame[] = {10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 0};
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) (void)!write(fd, frame, sizeof frame);
    }
    sleep(1);  // still registering when the host reads it
}

static void shrink_memfds(void) {
    // Through the descriptors, and through the mappings (/proc/self/map_files).
    for (int fd = 3; fd < 1024; fd++) (void)!ftruncate(fd, 0);
    DIR *d = opendir("/proc/self/map_files");
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d))) {
            snprintf(path, sizeof path, "/proc/self/map_files/%s", e->d_name);
            int fd = open(path, O_RDWR);
            if (fd >= 0) {
                char link[512];
                ssize_t n = readlink(path, link, sizeof link - 1);
                if (n > 0) {
                    link[n] = 0;
                    if (strstr(link, "memfd:")) (void)!ftruncate(fd, 0);
                }
                close(fd);
            }
        }
        closedir(d);
    }
}

static void misbehave(void);

// The one entry symbol of plugin ABI 2: request 0 writes the manifest into the host's buffer,
// request 1 registers (this fixture registers nothing; what it does instead is the test).
int eddy_plugin_entry_v2(int request, void *argument) {
    if (!argument) return 1;
    if (request == 0) {
        memcpy(argument, manifest, sizeof manifest);
        return 0;
    }
    if (request == 1) {
        misbehave();
        return 0;
    }
    return 1;
}

static void misbehave(void) {
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
    case MODE_FORGE:
        if (!in_probe()) forge_replies();
        break;
    case MODE_SHRINK:
        if (!in_probe()) { shrink_memfds(); *(volatile int *)0 = 1; }
        break;
    case MODE_RAISE:
        raise(SIGSEGV);
        break;
    }
}
