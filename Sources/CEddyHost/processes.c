#define _GNU_SOURCE 1
#include "eddy_processes.h"

#include <sys/prctl.h>

int eddy_become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/// read(2) until `n` bytes or EOF/error; the count read.
static size_t read_exactly(int fd, void *buffer, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buffer + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        done += (size_t)r;
    }
    return done;
}

static int write_all(int fd, const void *buffer, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, (const char *)buffer + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        done += (size_t)w;
    }
    return 0;
}

int eddy_spawn_committer(const char *temporary, const char *final, int *pid) {
    int ends[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) return -1;
    pid_t child = fork();
    if (child < 0) {
        int saved = errno;
        close(ends[0]);
        close(ends[1]);
        errno = saved;
        return -1;
    }
    if (child == 0) {
        // Async-signal-safe calls only (the parent may have threads). Ctrl-C and the like end the
        // parent; this one sees the socket close and cleans up.
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        // A process group of its own: a kill of the conversion's group (timeout -s KILL, a shell's
        // job control) ends the conversion, not the process that removes its temporary.
        setpgid(0, 0);
        // The socket becomes descriptor 0 and every other one is closed: nothing else of the parent's
        // (its output, the file being written) stays open here.
        if (dup2(ends[1], 0) != 0) _exit(1);
        if (syscall(SYS_close_range, 1u, ~0u, 0u) != 0) {
            for (int fd = 1; fd < 65536; fd++) close(fd);
        }
        int renamed = 0;
        char request;
        while (read_exactly(0, &request, 1) == 1) {
            int answer = 0;
            if (request == 'R' && !renamed) {
                answer = rename(temporary, final) == 0 ? 0 : errno;
                renamed = answer == 0;
            } else if (request == 'U' && !renamed) {
                answer = unlink(temporary) == 0 || errno == ENOENT ? 0 : errno;
            } else {
                answer = EINVAL;
            }
            if (write_all(0, &answer, sizeof answer) != 0) break;
        }
        if (!renamed) unlink(temporary);
        _exit(0);
    }
    close(ends[1]);
    *pid = child;
    return ends[0];
}

int eddy_committer_request(int socket, char request) {
    if (write_all(socket, &request, 1) != 0) return -1;
    int answer = 0;
    if (read_exactly(socket, &answer, sizeof answer) != sizeof answer) return -1;
    return answer;
}
