#define _GNU_SOURCE 1
#include "CEddyHost.h"
#include "CEddyIO.h"

#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
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

// ---- Crash reports that name the plugin code that was running ----

#include <stdlib.h>
#include <string.h>

// Defined in libEddy.so (the SDK marks the thread while plugin code runs). Weak, so that this file
// links where the SDK is absent; the handler then names nothing.
extern const char *eddy_plugin_call_current(void) __attribute__((weak));
extern void eddy_plugin_call_leave(const char *previous) __attribute__((weak));

// In threads.c: which plugin code started the crashing thread, if any.
extern const char *eddy_thread_origin(void);

// In CEddyIO: whether the crashing thread was doing the engine's own work (weak, as above).
extern int eddy_engine_work_active(void) __attribute__((weak));

// A byte of a worker's shared page: set to 'E' when the crash is on a thread doing engine work
// outside plugin code, so that the supervisor does not charge plugins whose code ran here earlier.
static volatile char *engine_crash_flag;

void eddy_crash_report_engine_flag(char *flag) { engine_crash_flag = flag; }

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP};
#define CRASH_SIGNAL_COUNT (sizeof crash_signals / sizeof crash_signals[0])
static struct sigaction previous_actions[CRASH_SIGNAL_COUNT];
static const char *crash_hint = "";
/// Whether a crash is handed on to the handler installed before ours (Swift's backtracer) or ends the
/// process at once with the signal's default action: handed on only when the user set SWIFT_BACKTRACE.
/// Swift's backtracer, on by default on Linux, once never finished when two threads faulted together
/// (its swift-backtrace child blocked reading from the crashed process for 20 minutes): a crash must end
/// the process, and eddy's own line above already names the plugin, kernel or file.
static int hand_to_previous = 0;

static void write_all(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGTRAP: return "SIGTRAP";
    default: return "a signal";
    }
}

/// Writes at most `limit` bytes of `s`, control characters shown as '?': the text comes from plugin
/// code, and must not forge lines or terminal sequences.
static void write_clean(const char *s, size_t limit) {
    char buffer[256];
    size_t used = 0;
    for (size_t i = 0; i < limit && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned char d = s[i + 1] ? (unsigned char)s[i + 1] : 0;
        unsigned char e = d && s[i + 2] ? (unsigned char)s[i + 2] : 0;
        // C1 controls (U+0080-U+009F) and bidirectional overrides (U+202A-202E, U+2066-2069) are
        // control sequences too: shown as '?'.
        if (c == 0xC2 && d >= 0x80 && d <= 0x9F) { c = '?'; i += 1; }
        else if (c == 0xE2 && ((d == 0x80 && e >= 0xAA && e <= 0xAE) || (d == 0x81 && e >= 0xA6 && e <= 0xA9))) {
            c = '?';
            i += 2;
        }
        buffer[used++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        if (used == sizeof buffer) {
            (void)!write(STDERR_FILENO, buffer, used);
            used = 0;
        }
    }
    if (used > 0) (void)!write(STDERR_FILENO, buffer, used);
}

/// Threads inside `crash_handler` that may still be writing their report. A thread hands the signal on
/// (and Swift's backtracer then stops every thread) only once this is zero, so that two threads
/// faulting together (every thread reading a file cut short does) do not cut each other's line short.
static volatile int crash_writers = 0;

static void wait_for_crash_writers(void) {
    // Bounded: a writer stuck on a full stderr pipe must not keep the process from ending (~2 s).
    for (int i = 0; i < 2000 && __atomic_load_n(&crash_writers, __ATOMIC_SEQ_CST) > 0; i++) {
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
}

static void crash_handler(int sig, siginfo_t *info, void *context) {
    (void)context;
    __atomic_add_fetch(&crash_writers, 1, __ATOMIC_SEQ_CST);
    const char *site = eddy_plugin_call_current ? eddy_plugin_call_current() : NULL;
    // A thread plugin code started runs no marked call when it crashes: name the code that started it.
    if (!site) site = eddy_thread_origin();
    // The shared page a supervisor reads names the last mark of any thread: make it this thread's
    // (none, on a thread plugin code started), so that another plugin's kernel running elsewhere is
    // not blamed for this crash.
    if (eddy_plugin_call_leave) eddy_plugin_call_leave(site);
    // Flags for a supervisor: 'F', the fault is a read of a mapped input file cut short under its
    // mapping (whatever code read it, a kernel included: the file's writer is at fault, not the code);
    // 'E', an abort on a thread doing engine work outside plugin code (an allocation the address-space
    // limit refused ends so). A segfault there is not flagged: plugin-defined encoding methods run on
    // engine threads unmarked, so such a crash stays the responsibility of the plugins that ran.
    if (engine_crash_flag) {
        if (sig == SIGBUS && info && eddy_mapping_path_at(info->si_addr)) {
            *engine_crash_flag = 'F';
        } else if (!site && sig == SIGABRT && eddy_engine_work_active && eddy_engine_work_active()) {
            *engine_crash_flag = 'E';
        }
    }
    if (site) {
        char number[12];
        int k = sizeof number - 1;
        number[k] = 0;
        int v = sig;
        do { number[--k] = (char)('0' + v % 10); v /= 10; } while (v > 0 && k > 0);
        write_all("eddy: crashed with signal ");
        write_all(number + k);
        write_all(" (");
        write_all(signal_name(sig));
        write_all(") in ");
        write_clean(site, 512);
        write_all("; ");
        write_all(crash_hint);
        write_all("\n");
    }
    // A fault reading a mapped file (SIGBUS: it was cut short after it was mapped) names the file.
    // Once, though every thread reading the file faults.
    static volatile sig_atomic_t named_file = 0;
    const char *file = (!site && sig == SIGBUS && info) ? eddy_mapping_path_at(info->si_addr) : NULL;
    if (file && !__atomic_exchange_n(&named_file, 1, __ATOMIC_SEQ_CST)) {
        write_all("eddy: crashed with signal 7 (SIGBUS) reading ");
        write_clean(file, 256);
        write_all(": the file was truncated or replaced in place while it was mapped and read; run again on "
                  "the complete file (under eddy serve, workers keep such a crash from the server)\n");
    }
    __atomic_sub_fetch(&crash_writers, 1, __ATOMIC_SEQ_CST);
    wait_for_crash_writers();
    // Hand the signal to whoever had it before (Swift's backtracer, when SWIFT_BACKTRACE asks for it),
    // or to the default action, so the process still ends with the signal's status.
    for (size_t i = 0; i < CRASH_SIGNAL_COUNT; i++) {
        if (crash_signals[i] != sig) continue;
        if (hand_to_previous) {
            sigaction(sig, &previous_actions[i], NULL);
        } else {
            signal(sig, SIG_DFL);
        }
    }
    // A fault re-executes and is delivered again to the restored handler. A sent signal (raise, kill)
    // would not come back: it ends the process with the default action, and so its status.
    if (info == NULL || info->si_code <= 0) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

int eddy_install_crash_report(const char *hint) {
    static char alternate_stack[64 * 1024];
    stack_t ss;
    ss.ss_sp = alternate_stack;
    ss.ss_size = sizeof alternate_stack;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
    crash_hint = hint ? strdup(hint) : "";
    hand_to_previous = getenv("SWIFT_BACKTRACE") != NULL;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = crash_handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < CRASH_SIGNAL_COUNT; i++) {
        if (sigaction(crash_signals[i], &action, &previous_actions[i]) != 0) return -1;
    }
    return 0;
}

#include <sys/mman.h>
#include <sys/socket.h>

int eddy_memfd(const char *name, size_t size) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    // Sealed at its size: the other process can write the page but never shrink it under our
    // mapping (which would make our reads die with SIGBUS).
    if (ftruncate(fd, (off_t)size) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int eddy_sealed_memfd(const char *name, const void *bytes, size_t length) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < length) {
        ssize_t w = write(fd, (const char *)bytes + done, length - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    // Read-only for good: whoever holds the descriptor (a worker running plugin code, with an O_RDWR
    // descriptor on a memfd) can neither write, shrink nor grow it, nor lift the seals.
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0 ||
        lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int eddy_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

#include <spawn.h>

int eddy_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

#include <sys/wait.h>

int eddy_has_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return -1;
    return info.si_pid == pid ? 1 : 0;
}

void eddy_keep_freed_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    /* One arena for every thread: a batch's buffers are allocated on the reading thread and freed on
       a worker (or the other way round); with an arena per thread each worker's heap grew fresh and
       faulted in its own zeroed pages, and two workers ran slower than one. The allocations are few
       and large, so the shared arena's lock is not contended. */
    mallopt(M_ARENA_MAX, 1);
}

#include <link.h>
#include <elf.h>
#include <stdio.h>
#include <string.h>

struct build_id_search {
    char *out;
    size_t cap;
    size_t used;
    int found;
    int failed;
    int all;
};

/* Appends the GNU build ID of one loaded object (hex) to the search's output, or marks it failed
   (an object without one fails only when it is required: the program or libEddy.so). */
static void append_build_id(struct dl_phdr_info *info, struct build_id_search *s, int required) {
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        size_t left = ph->p_memsz;
        while (left >= sizeof(ElfW(Nhdr))) {
            const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
            size_t name = (n->n_namesz + 3u) & ~(size_t)3u, desc = (n->n_descsz + 3u) & ~(size_t)3u;
            size_t size = sizeof(ElfW(Nhdr)) + name + desc;
            if (name > left || desc > left || size > left) break;
            if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(p + sizeof(ElfW(Nhdr)), "GNU", 4) == 0) {
                const unsigned char *id = p + sizeof(ElfW(Nhdr)) + name;
                if (s->used + 2 * (size_t)n->n_descsz + 2 > s->cap || n->n_descsz == 0) {
                    s->failed = 1;
                    return;
                }
                if (s->used > 0) s->out[s->used++] = '-';
                static const char digits[] = "0123456789abcdef";
                for (ElfW(Word) k = 0; k < n->n_descsz; k++) {
                    s->out[s->used++] = digits[id[k] >> 4];
                    s->out[s->used++] = digits[id[k] & 15];
                }
                s->out[s->used] = 0;
                s->found++;
                return;
            }
            p += size;
            left -= size;
        }
    }
    if (required) s->failed = 1;
}

static int build_id_callback(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct build_id_search *s = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    size_t len = strlen(name);
    int is_main = len == 0 && s->found == 0 && s->used == 0;
    int is_sdk = len >= 10 && strcmp(name + len - 10, "libEddy.so") == 0 && (len == 10 || name[len - 11] == '/');
    if (is_main || is_sdk || s->all) append_build_id(info, s, is_main || is_sdk);
    return 0;
}

int eddy_host_build_ids(char *out, size_t cap, int all) {
    if (cap == 0) return -1;
    out[0] = 0;
    struct build_id_search s = {out, cap, 0, 0, 0, all};
    dl_iterate_phdr(build_id_callback, &s);
    return s.failed || s.found < 2 ? -1 : 0;
}

#include <sys/stat.h>

int eddy_open_for_writing(const char *path) {
    /* Only a regular file is opened (opening a device can have side effects). */
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    int result;
    if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
        fcntl(fd, F_SETLEASE, F_UNLCK);
        result = 0;
    } else {
        result = errno == EAGAIN ? 1 : -1;
    }
    close(fd);
    return result;
}

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <errno.h>

// A one-shot signal between two threads that either may outlive: made with two references, one for
// the waiter and one for the signaller, each given back with eddy_latch_release.
struct eddy_latch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int signalled;
    int references;
};

struct eddy_latch *eddy_latch_create(void) {
    struct eddy_latch *l = calloc(1, sizeof *l);
    if (!l) { return NULL; }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&l->lock, NULL) != 0 || pthread_cond_init(&l->cond, &attr) != 0) {
        pthread_condattr_destroy(&attr);
        free(l);
        return NULL;
    }
    pthread_condattr_destroy(&attr);
    l->references = 2;
    return l;
}

void eddy_latch_signal(struct eddy_latch *l) {
    pthread_mutex_lock(&l->lock);
    l->signalled = 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

int eddy_latch_wait(struct eddy_latch *l, double seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (seconds < 0) { seconds = 0; }
    if (seconds > 86400) { seconds = 86400; }
    long long whole = (long long)seconds;
    long long nanos = deadline.tv_nsec + (long long)((seconds - (double)whole) * 1e9);
    deadline.tv_sec += whole + nanos / 1000000000LL;
    deadline.tv_nsec = nanos % 1000000000LL;
    pthread_mutex_lock(&l->lock);
    int rc = 0;
    while (!l->signalled && rc != ETIMEDOUT) { rc = pthread_cond_timedwait(&l->cond, &l->lock, &deadline); }
    int signalled = l->signalled;
    pthread_mutex_unlock(&l->lock);
    return signalled;
}

void eddy_latch_release(struct eddy_latch *l) {
    pthread_mutex_lock(&l->lock);
    int left = --l->references;
    pthread_mutex_unlock(&l->lock);
    if (left == 0) {
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
        free(l);
    }
}
