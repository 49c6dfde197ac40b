#ifndef EDDY_CONFINEMENT_H
#define EDDY_CONFINEMENT_H

#include <stddef.h>
#include <sys/types.h>

/// The Landlock ABI version this kernel offers (0: none, or Landlock is disabled).
int eddy_landlock_abi(void);

/// Whether seccomp filters can be installed here (the kernel was built with them): 1 or 0.
int eddy_seccomp_available(void);

/// How many threads this process has now (entries of /proc/self/task); -1 when it cannot be told.
int eddy_thread_count(void);

/// What ``eddy_confine`` applied (a bit set).
enum {
    EDDY_CONFINED_NO_NEW_PRIVS = 1,
    /// Landlock filesystem rules: read-only beneath the listed paths, nothing else.
    EDDY_CONFINED_LANDLOCK_FS = 2,
    /// Landlock network rules (ABI 4): no TCP bind or connect.
    EDDY_CONFINED_LANDLOCK_NET = 4,
    /// Landlock scopes (ABI 6): no signal to, and no abstract Unix socket of, a process outside.
    EDDY_CONFINED_LANDLOCK_SCOPE = 8,
    /// The seccomp filter (see ``eddy_confine``), on every thread of the process.
    EDDY_CONFINED_SECCOMP = 16,
};

/// A Landlock ruleset (its descriptor, close-on-exec) that allows reading, listing and mapping executable
/// files beneath each path of `read_paths` (separated by '\n'; missing ones are skipped) and nothing
/// else on the filesystem — no write, create, remove, rename, truncate or device ioctl anywhere — no
/// TCP bind or connect (ABI 4), and no signal or abstract Unix socket reaching outside the domain
/// (ABI 6). Made before the process changes user: the paths are opened with its rights now. -1 when
/// Landlock is not offered; what failed is described in `problem` (`cap` bytes).
int eddy_landlock_ruleset(const char *read_paths, char *problem, size_t cap);

/// Confines this process for good, before plugin code runs in it: `PR_SET_NO_NEW_PRIVS`; unless
/// `ruleset` is -1, the Landlock domain of ``eddy_landlock_ruleset`` on the calling thread (threads it
/// starts later inherit it; those already running do not, hence ``eddy_thread_count``; descriptors
/// already open keep working); unless `seccomp` is 0, a seccomp filter on every thread that
/// answers EPERM to execve/execveat, fork/vfork, clone without CLONE_THREAD (ENOSYS to clone3, so the C
/// library falls back to clone), ptrace, process_vm_readv/writev, setsid, setpgid, socket (socketpair
/// only for AF_UNIX), signals to another process (kill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo to
/// a process id other than this one's; tkill and pidfd calls), mount and namespace calls, keyctl,
/// bpf, perf_event_open, kexec, modules, io_uring, userfaultfd, TIOCSTI, and any change of a resource
/// limit. Closes `ruleset`. Returns the EDDY_CONFINED_* bits applied; what failed is described in
/// `problem` (`cap` bytes, '; '-separated, empty when nothing did).
int eddy_confine(int ruleset, int seccomp, char *problem, size_t cap);

/// The files of every object loaded in this process (the program, libEddy.so, the Swift runtime, the C
/// library …), separated by '\n', into `out`: what a confined process must still read to load a plugin
/// that links them. -1 when `cap` is too small.
int eddy_loaded_objects(char *out, size_t cap);

/// Makes this process not dumpable (prctl PR_SET_DUMPABLE 0): its /proc entries (environment, memory
/// map, descriptors) belong to root, and a process of the same user without CAP_SYS_PTRACE — plugin
/// code in a worker — cannot read them; no core file either. Reset for a program it executes. 0 or -1.
int eddy_make_undumpable(void);

#endif
