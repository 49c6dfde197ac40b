#ifndef CEDDY_HOST_H
#define CEDDY_HOST_H

#include <sys/types.h>
#include "eddy_descriptors.h"
#include "eddy_processes.h"
#include "eddy_confinement.h"

/// Asks the kernel to send SIGKILL to this process when its parent dies, then checks that the parent
/// is still `expected_parent` (it may have died before the request). Returns 0, or -1 if the parent
/// is already gone. prctl is variadic in C, so Swift cannot call it directly.
int eddy_die_with_parent(pid_t expected_parent);

/// pipe2(fds, O_CLOEXEC): both ends closed on exec, so only the descriptor a child is given leaks.
int eddy_pipe_cloexec(int fds[2]);

/// A close-on-exec duplicate of `fd` numbered `minimum` or above (fcntl is variadic in C).
int eddy_dup_above(int fd, int minimum);

/// Installs handlers for crash signals that print, when plugin code was running on the crashing
/// thread, one line naming it followed by `hint`, then pass the signal on (the process still ends
/// with the signal's status). Returns 0, or -1 if a handler could not be installed.
int eddy_install_crash_report(const char *hint);
/// Where the crash handler records that a crash outside plugin code happened on a thread doing the
/// engine's own work: it sets `*flag` to 'E' (a byte of a worker's shared page). Set once.
void eddy_crash_report_engine_flag(char *flag);

#include <stddef.h>

/// An anonymous shared-memory file of `size` bytes (memfd_create), close-on-exec; -1 on failure.
int eddy_memfd(const char *name, size_t size);
/// An anonymous file (memfd_create, close-on-exec) holding `length` bytes from `bytes`, sealed
/// against writing, shrinking and growing before it is returned; -1 on failure.
int eddy_sealed_memfd(const char *name, const void *bytes, size_t length);

/// A connected pair of Unix stream sockets, close-on-exec.
int eddy_socketpair(int fds[2]);

#include <spawn.h>

/// Closes, in the child, every descriptor from `lowest` up (posix_spawn_file_actions_addclosefrom_np):
/// a helper process gets the descriptors it is handed and nothing else of the host's — not its
/// listening socket, client connections or event-loop descriptors.
int eddy_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

/// 1 if child `pid` has exited, without reaping it (its process and group ids stay reserved until
/// it is reaped, so its group can still be signalled safely); 0 if it runs; -1 on error.
int eddy_has_exited(pid_t pid);

/// Keeps freed memory in the process's heap (up to 512 MiB) and serves blocks up to 256 MiB from it,
/// instead of mapping and unmapping them: a batch's columns are freed and allocated again at the same
/// sizes, and returning them to the kernel made every batch fault in freshly zeroed pages. One arena
/// serves every thread (a batch is allocated on one thread and freed on another).
void eddy_keep_freed_memory(void);

/// The GNU build IDs (hex) of this program and of the libEddy.so it runs with — with `all`, of every
/// loaded object that has one (the Swift runtime, Foundation, libc …) — joined by '-', into `out`: the
/// identity of the host build that a plugin's probe verdict holds for. -1 when the program or
/// libEddy.so has no build ID or `cap` is too small (the caller then keeps no verdicts).
int eddy_host_build_ids(char *out, size_t cap, int all);

/// 1 when some process has the file at `path` open for writing, 0 when none has, -1 when it cannot be
/// told (taking a read lease needs the file to be this user's). A plugin file still being written is
/// not loaded yet.
int eddy_open_for_writing(const char *path);

/// A one-shot signal between two threads either of which may outlive the other (a registration
/// thread abandoned at its deadline): created holding two references, one for the waiter and one for
/// the signaller; each calls eddy_latch_release when done with it. NULL when it cannot be made.
struct eddy_latch;
struct eddy_latch *eddy_latch_create(void);
void eddy_latch_signal(struct eddy_latch *latch);
/// 1 once signalled, 0 when `seconds` (0 to 86400) passed first.
int eddy_latch_wait(struct eddy_latch *latch, double seconds);
void eddy_latch_release(struct eddy_latch *latch);

#endif
