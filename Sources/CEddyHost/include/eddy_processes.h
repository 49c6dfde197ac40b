#ifndef EDDY_PROCESSES_H
#define EDDY_PROCESSES_H

/// Makes this process the child subreaper of its descendants (prctl PR_SET_CHILD_SUBREAPER): a process
/// whose parent dies — one a worker's plugin started in a session of its own, say — becomes this
/// process's child instead of init's, so that it can be found, ended and reaped. 0, or -1.
int eddy_become_subreaper(void);

#endif
