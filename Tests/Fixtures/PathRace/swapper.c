// The attacker of the path race test: as another user (uid/gid given), exchanges a directory with
// each of the symbolic links named after it, in turn, as fast as it can, until `seconds` have passed.
// Usage: swapper DIR UID SECONDS NAME LINK...   (renameat2 RENAME_EXCHANGE is atomic).
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 6) return 2;
    uid_t uid = (uid_t)atoi(argv[2]);
    if (setgroups(0, NULL) != 0 || setgid(uid) != 0 || setuid(uid) != 0) { perror("setuid"); return 3; }
    if (chdir(argv[1]) != 0) { perror("chdir"); return 4; }
    double seconds = atof(argv[3]);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long swaps = 0;
    for (;;) {
        for (int k = 5; k < argc; k++) {
            for (int i = 0; i < 2000; i++) {
                if (renameat2(AT_FDCWD, argv[4], AT_FDCWD, argv[k], RENAME_EXCHANGE) != 0) { perror("renameat2"); return 5; }
                swaps++;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 > seconds) break;
    }
    printf("%ld\n", swaps);
    return 0;
}
