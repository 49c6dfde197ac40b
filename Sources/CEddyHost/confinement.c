#define _GNU_SOURCE 1
#include "eddy_confinement.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// The image's <linux/landlock.h> predates ABI 4 (network), 5 (device ioctl) and 6 (scopes): the
// structures and bits are defined here as the kernel's UAPI has them. A larger structure than the
// kernel knows is accepted when its extra fields are zero, so one layout serves every ABI.
struct eddy_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct eddy_landlock_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#define EDDY_LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#define EDDY_LANDLOCK_RULE_PATH_BENEATH 1
#define EDDY_LL_FS_EXECUTE (1ULL << 0)
#define EDDY_LL_FS_READ_FILE (1ULL << 2)
#define EDDY_LL_FS_READ_DIR (1ULL << 3)
#define EDDY_LL_NET_BIND_TCP (1ULL << 0)
#define EDDY_LL_NET_CONNECT_TCP (1ULL << 1)
#define EDDY_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define EDDY_LL_SCOPE_SIGNAL (1ULL << 1)

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

int eddy_landlock_abi(void) {
    long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, EDDY_LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

int eddy_seccomp_available(void) {
    // PR_GET_SECCOMP fails with EINVAL on a kernel built without seccomp.
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 ? 1 : 0;
}

int eddy_thread_count(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n;
}

static void note(char *problem, size_t cap, const char *what, int code) {
    if (cap == 0) return;
    size_t used = strnlen(problem, cap);
    if (used + 1 >= cap) return;
    snprintf(problem + used, cap - used, "%s%s%s%s", used ? "; " : "", what, code ? ": " : "",
             code ? strerror(code) : "");
}

/// Every filesystem access right the ABI knows: all of them are handled, so what no rule allows is denied.
static uint64_t handled_fs(int abi) {
    uint64_t all = (1ULL << 13) - 1;  // EXECUTE … MAKE_SYM (ABI 1)
    if (abi >= 2) all |= 1ULL << 13;  // REFER
    if (abi >= 3) all |= 1ULL << 14;  // TRUNCATE
    if (abi >= 5) all |= 1ULL << 15;  // IOCTL_DEV
    return all;
}

int eddy_landlock_ruleset(const char *read_paths, char *problem, size_t cap) {
    if (cap > 0) problem[0] = 0;
    int abi = eddy_landlock_abi();
    if (abi <= 0) {
        note(problem, cap, "landlock: not offered by this kernel", 0);
        return -1;
    }
    struct eddy_landlock_ruleset_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.handled_access_fs = handled_fs(abi);
    if (abi >= 4) attr.handled_access_net = EDDY_LL_NET_BIND_TCP | EDDY_LL_NET_CONNECT_TCP;
    if (abi >= 6) attr.scoped = EDDY_LL_SCOPE_ABSTRACT_UNIX_SOCKET | EDDY_LL_SCOPE_SIGNAL;
    int ruleset = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0) {
        note(problem, cap, "landlock: cannot create a ruleset", errno);
        return -1;
    }
    const char *p = read_paths ? read_paths : "";
    char path[4096];
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && n < sizeof path) {
            memcpy(path, p, n);
            path[n] = 0;
            int fd = open(path, O_PATH | O_CLOEXEC);
            struct stat st;
            if (fd >= 0 && fstat(fd, &st) == 0) {
                struct eddy_landlock_path_beneath_attr rule;
                memset(&rule, 0, sizeof rule);
                // Directory rights on a file rule are refused (EINVAL): a file gets the file rights only.
                rule.allowed_access = EDDY_LL_FS_EXECUTE | EDDY_LL_FS_READ_FILE;
                if (S_ISDIR(st.st_mode)) rule.allowed_access |= EDDY_LL_FS_READ_DIR;
                rule.parent_fd = fd;
                if (syscall(__NR_landlock_add_rule, ruleset, EDDY_LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
                    note(problem, cap, "landlock: cannot add a read rule", errno);
                }
            }
            if (fd >= 0) close(fd);
        }
        p += n;
        if (*p == '\n') p++;
    }
    return ruleset;
}

static int landlock(int ruleset, char *problem, size_t cap) {
    int abi = eddy_landlock_abi();
    int applied = 0;
    if (syscall(__NR_landlock_restrict_self, ruleset, 0) == 0) {
        applied = EDDY_CONFINED_LANDLOCK_FS;
        if (abi >= 4) applied |= EDDY_CONFINED_LANDLOCK_NET;
        if (abi >= 6) applied |= EDDY_CONFINED_LANDLOCK_SCOPE;
    } else {
        note(problem, cap, "landlock: cannot restrict this process", errno);
    }
    close(ruleset);
    return applied;
}

// ---- seccomp ----

#define EDDY_MAX_FILTER 512

struct filter {
    struct sock_filter code[EDDY_MAX_FILTER];
    unsigned short used;
    int overflow;
};

static void emit(struct filter *f, struct sock_filter s) {
    if (f->used >= EDDY_MAX_FILTER) {
        f->overflow = 1;
        return;
    }
    f->code[f->used++] = s;
}

#define RET_ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
#define ARG_LO(i) ((uint32_t)offsetof(struct seccomp_data, args[i]))
#define ARG_HI(i) ((uint32_t)offsetof(struct seccomp_data, args[i]) + 4)

/// `nr` answers `error` whatever its arguments (the accumulator holds the syscall number).
static void deny(struct filter *f, long nr, int error) {
    emit(f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1));
    emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(error)));
}

/// Starts a block run only for syscall `nr`; ``end_block`` patches the jump over it. Every block ends
/// in returns, so the accumulator it clobbers is never read after it.
static unsigned short begin_block(struct filter *f, long nr) {
    emit(f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 0));
    return f->used;
}

static void end_block(struct filter *f, unsigned short start) {
    if (f->overflow || start == 0) return;
    f->code[start - 1].jf = (unsigned char)(f->used - start);
}

/// `nr` is allowed only when its argument `arg` (an int: a process id) is exactly `pid`.
static void only_own_pid(struct filter *f, long nr, int arg, pid_t pid) {
    unsigned short b = begin_block(f, nr);
    emit(f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(arg)));
    emit(f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)pid, 1, 0));
    emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
    emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    end_block(f, b);
}

/// `nr` is allowed only when its argument `which` (an int) is `value` and its argument `who` (an int: a
/// process, group or user id) is 0, this process (or thread): no reaching another process's scheduling.
/// `which` < 0 checks `who` only.
static void only_self(struct filter *f, long nr, int which, uint32_t value, int who) {
    unsigned short b = begin_block(f, nr);
    if (which >= 0) {
        emit(f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(which)));
        emit(f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, value, 0, 2));
    }
    emit(f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(who)));
    emit(f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0));
    emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
    emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    end_block(f, b);
}

/// `nr` is refused when its first argument, a file descriptor (an int: the low word), is 0, 1 or 2:
/// standard error is the server's log, which a worker must not truncate nor rewrite in place.
static void not_on_standard_fds(struct filter *f, long nr) {
    unsigned short b = begin_block(f, nr);
    emit(f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0)));
    emit(f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 3, 1, 0));
    emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
    emit(f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    end_block(f, b);
}

#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef __NR_process_mrelease
#define __NR_process_mrelease 448
#endif

static int seccomp_filter(char *problem, size_t cap) {
#if defined(__x86_64__)
    const uint32_t arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    const uint32_t arch = AUDIT_ARCH_AARCH64;
#else
    note(problem, cap, "seccomp: no filter for this architecture", 0);
    return 0;
#endif
    static struct filter f;
    memset(&f, 0, sizeof f);
    pid_t self = getpid();
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)offsetof(struct seccomp_data, arch)));
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)offsetof(struct seccomp_data, nr)));
#if defined(__x86_64__)
    // The x32 ABI's numbers (bit 30 set) reach the same kernel calls under other numbers.
    emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
#endif

    // New programs and processes. Threads (clone with CLONE_THREAD) stay: Dispatch and plugins use them.
    deny(&f, __NR_execve, EPERM);
    deny(&f, __NR_execveat, EPERM);
#ifdef __NR_fork
    deny(&f, __NR_fork, EPERM);
#endif
#ifdef __NR_vfork
    deny(&f, __NR_vfork, EPERM);
#endif
    // clone3's flags are in memory a filter cannot read: ENOSYS makes the C library fall back to clone.
    deny(&f, __NR_clone3, ENOSYS);
    {
        unsigned short b = begin_block(&f, __NR_clone);
        emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0)));
        emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
        end_block(&f, b);
    }
    deny(&f, __NR_setsid, EPERM);
    deny(&f, __NR_setpgid, EPERM);

    // Other processes: no tracing, no reading or writing their memory, no signal to any.
    deny(&f, __NR_ptrace, EPERM);
    deny(&f, __NR_process_vm_readv, EPERM);
    deny(&f, __NR_process_vm_writev, EPERM);
    deny(&f, __NR_kcmp, EPERM);
#ifdef __NR_process_madvise
    deny(&f, __NR_process_madvise, EPERM);
#endif
#ifdef __NR_pidfd_open
    deny(&f, __NR_pidfd_open, EPERM);
#endif
#ifdef __NR_pidfd_send_signal
    deny(&f, __NR_pidfd_send_signal, EPERM);
#endif
#ifdef __NR_pidfd_getfd
    deny(&f, __NR_pidfd_getfd, EPERM);
#endif
    deny(&f, __NR_tkill, EPERM);
    only_own_pid(&f, __NR_kill, 0, self);
    only_own_pid(&f, __NR_tgkill, 0, self);
    only_own_pid(&f, __NR_rt_sigqueueinfo, 0, self);
    only_own_pid(&f, __NR_rt_tgsigqueueinfo, 0, self);

    // Other processes' scheduling: priorities, CPUs and I/O classes of this process (0) only.
    only_self(&f, __NR_setpriority, 0, 0 /* PRIO_PROCESS */, 1);
    only_self(&f, __NR_ioprio_set, 0, 1 /* IOPRIO_WHO_PROCESS */, 1);
    only_self(&f, __NR_sched_setaffinity, -1, 0, 0);
    only_self(&f, __NR_sched_setscheduler, -1, 0, 0);
    only_self(&f, __NR_sched_setparam, -1, 0, 0);
#ifdef __NR_sched_setattr
    only_self(&f, __NR_sched_setattr, -1, 0, 0);
#endif
    deny(&f, __NR_migrate_pages, EPERM);
    deny(&f, __NR_move_pages, EPERM);
    deny(&f, __NR_process_mrelease, EPERM);

    // The inherited standard descriptors: no truncating, no writing at an offset, no seeking.
    not_on_standard_fds(&f, __NR_ftruncate);
    not_on_standard_fds(&f, __NR_fallocate);
    not_on_standard_fds(&f, __NR_pwrite64);
    not_on_standard_fds(&f, __NR_pwritev);
#ifdef __NR_pwritev2
    not_on_standard_fds(&f, __NR_pwritev2);
#endif
    not_on_standard_fds(&f, __NR_lseek);

    // The network: no new socket. A worker talks to its supervisor over a socket pair it inherited.
    deny(&f, __NR_socket, EPERM);
    {
        unsigned short b = begin_block(&f, __NR_socketpair);
        emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0)));
        emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 1, 0));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
        end_block(&f, b);
    }
    // io_uring runs some operations (socket among them) without passing through this filter.
    deny(&f, __NR_io_uring_setup, EPERM);
    deny(&f, __NR_io_uring_enter, EPERM);
    deny(&f, __NR_io_uring_register, EPERM);

    // Resource limits are set before this filter and stay: no raising (nor lowering) them from here.
    deny(&f, __NR_setrlimit, EPERM);
    {
        unsigned short b = begin_block(&f, __NR_prlimit64);
        emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)));
        emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_HI(2)));
        emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
        end_block(&f, b);
    }

    // Typing into the terminal standard error may be (TIOCSTI), or its console (TIOCLINUX).
    {
        unsigned short b = begin_block(&f, __NR_ioctl);
        emit(&f, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(1)));
        emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0));
        emit(&f, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
        emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)));
        end_block(&f, b);
    }

    // The system: mounts, namespaces, keys, BPF, perf, kexec, modules, clocks, swap, reboot.
    static const long system_calls[] = {
        __NR_mount, __NR_umount2, __NR_pivot_root, __NR_chroot, __NR_unshare, __NR_setns,
        __NR_keyctl, __NR_add_key, __NR_request_key, __NR_bpf, __NR_perf_event_open,
        __NR_kexec_load, __NR_init_module, __NR_finit_module, __NR_delete_module,
        __NR_reboot, __NR_swapon, __NR_swapoff, __NR_acct, __NR_settimeofday, __NR_clock_settime,
        __NR_adjtimex, __NR_clock_adjtime, __NR_userfaultfd, __NR_open_by_handle_at,
        __NR_name_to_handle_at, __NR_fanotify_init, __NR_quotactl, __NR_personality,
        __NR_sethostname, __NR_setdomainname, __NR_syslog,
        // Modes, owners, extended attributes and times of files (Landlock does not cover these).
        __NR_fchmod, __NR_fchmodat, __NR_fchmodat2, __NR_fchown, __NR_fchownat,
        __NR_setxattr, __NR_lsetxattr, __NR_fsetxattr, __NR_removexattr, __NR_lremovexattr, __NR_fremovexattr,
        __NR_utimensat,
#ifdef __NR_chmod
        __NR_chmod, __NR_chown, __NR_lchown, __NR_utime, __NR_utimes, __NR_futimesat,
#endif
#ifdef __NR_setxattrat
        __NR_setxattrat, __NR_removexattrat,
#endif
#ifdef __NR_kexec_file_load
        __NR_kexec_file_load,
#endif
#ifdef __NR_iopl
        __NR_iopl, __NR_ioperm,
#endif
#ifdef __NR_open_tree
        __NR_open_tree, __NR_move_mount, __NR_fsopen, __NR_fsconfig, __NR_fsmount, __NR_fspick,
#endif
#ifdef __NR_mount_setattr
        __NR_mount_setattr,
#endif
    };
    for (size_t i = 0; i < sizeof system_calls / sizeof system_calls[0]; i++) deny(&f, system_calls[i], EPERM);
    emit(&f, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    if (f.overflow) {
        note(problem, cap, "seccomp: the filter is longer than its buffer", 0);
        return 0;
    }
    struct sock_fprog program = {.len = f.used, .filter = f.code};
    // TSYNC: every thread of the process gets the filter, not only this one.
    long r = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program);
    if (r != 0) {
        note(problem, cap, r > 0 ? "seccomp: a thread could not take the filter" : "seccomp: cannot install the filter",
             r > 0 ? 0 : errno);
        return 0;
    }
    return EDDY_CONFINED_SECCOMP;
}

int eddy_confine(int ruleset, int seccomp_wanted, char *problem, size_t cap) {
    if (cap > 0) problem[0] = 0;
    int applied = 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) {
        applied |= EDDY_CONFINED_NO_NEW_PRIVS;
    } else {
        note(problem, cap, "no_new_privs", errno);
        // Without it neither Landlock nor seccomp can be set up by an unprivileged process.
    }
    if (ruleset >= 0) applied |= landlock(ruleset, problem, cap);
    if (seccomp_wanted) applied |= seccomp_filter(problem, cap);
    return applied;
}

#include <link.h>

struct objects {
    char *out;
    size_t cap;
    size_t used;
    int failed;
};

static int object_callback(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct objects *o = data;
    const char *name = info->dlpi_name;
    if (!name || name[0] != '/') return 0;
    size_t n = strlen(name);
    if (o->used + n + 2 > o->cap) {
        o->failed = 1;
        return 0;
    }
    memcpy(o->out + o->used, name, n);
    o->used += n;
    o->out[o->used++] = '\n';
    o->out[o->used] = 0;
    return 0;
}

int eddy_loaded_objects(char *out, size_t cap) {
    if (cap == 0) return -1;
    out[0] = 0;
    struct objects o = {out, cap, 0, 0};
    dl_iterate_phdr(object_callback, &o);
    return o.failed ? -1 : 0;
}

int eddy_make_undumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
