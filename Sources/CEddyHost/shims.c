#define _GNU_SOURCE 1
#include "CEddyHost.h"

#include <signal.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <unistd.h>

int eddy_die_with_parent(pid_t expected_parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return -1;
    return getppid() == expected_parent ? 0 : -1;
}

int eddy_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int eddy_dup_above(int fd, int minimum) {
    return fcntl(fd, F_DUPFD_CLOEXEC, minimum);
}
