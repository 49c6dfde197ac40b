#ifndef EDDY_PROCESSES_H
#define EDDY_PROCESSES_H

/// Makes this process the child subreaper of its descendants (prctl PR_SET_CHILD_SUBREAPER): a process
/// whose parent dies — one a worker's plugin started in a session of its own, say — becomes this
/// process's child instead of init's, so that it can be found, ended and reaped. 0, or -1.
int eddy_become_subreaper(void);

/// Starts the committer of a file a process is about to write confined (`eddy convert` once a plugin
/// is loaded): a child forked now, before confinement, holding the only rights the confined process
/// gives up — to rename `temporary` to `final` in their directory, and to remove `temporary`. It
/// answers one request at a time on the returned socket: 'R' renames (the answer is 0 or the errno,
/// 4 bytes), 'U' removes the temporary; when the socket closes (the process finished, failed or died,
/// killed included) it removes the temporary unless it was renamed, and exits. It runs nothing but
/// those calls and needs no other descriptor. The socket, or -1 with errno; `*pid` is the child.
int eddy_spawn_committer(const char *temporary, const char *final, int *pid);

/// Sends `request` ('R' or 'U') to a committer and waits for its answer: 0, the errno of the rename
/// (positive), or -1 when the committer is gone.
int eddy_committer_request(int socket, char request);

#endif
