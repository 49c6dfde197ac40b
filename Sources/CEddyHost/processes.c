#define _GNU_SOURCE 1
#include "eddy_processes.h"

#include <sys/prctl.h>

int eddy_become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}
