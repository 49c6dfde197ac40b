// Plugins that try, while registering, one thing confinement must refuse (one build per attempt):
//   cc -shared -fPIC -DATTEMPT=<n> -DATTEMPT_NAME='"<name>"' confined.c -L<build dir> -Wl,--no-as-needed -lEddy
// Registration runs in the probe process, in every worker that loads the plugin, and in `eddy eval`.
// Each attempt prints "hostile-<name>: refused: errno N (…)" on standard error when the kernel
// refused it with EPERM or EACCES and registers (nothing); otherwise it prints "… NOT REFUSED …" and
// fails its registration, so that the host reports the plugin rejected.
// Its targets come from the environment the test gives the host (a worker's is its supervisor's).
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define KILL_PARENT 1   // kill(getppid(), $EDDY_HOSTILE_SIGNAL): the supervisor (or eval's caller)
#define KILL_OTHER 2    // kill($EDDY_HOSTILE_PID, SIGKILL): another process of the same user
#define READ_SECRET 3   // open($EDDY_HOSTILE_SECRET): a file outside every directory the host reads
#define READ_TOKEN 4    // open($EDDY_HOSTILE_TOKEN): the server's token file
#define WRITE_OUTSIDE 5 // create $EDDY_HOSTILE_WRITE
#define UNLINK_RECORDS 6 // unlink quarantine.tsv and probed.tsv in $EDDY_SHADOW_DIR
#define FORK 7          // fork()
#define SETSID 8        // setsid()
#define EXEC 9          // execve("/bin/sh")
#define TCP 10          // connect to 127.0.0.1:$EDDY_HOSTILE_PORT
#define RLIMIT 11       // raise RLIMIT_NOFILE to unlimited
#define CHMOD 12        // chmod, chown, utimes of $EDDY_HOSTILE_TOKEN (Landlock does not cover these)
#define RENICE 13       // setpriority of the parent and of the process group
#define AFFINITY 14     // sched_setaffinity of the parent
#define IOPRIO 15       // ioprio_set of the parent
#define STDERR 16       // ftruncate(2, 0) and pwrite(2, …, 0): rewriting the server's log
#define PROC_MEMORY 17  // open /proc/<parent>/mem: the memory of the server (or eval's caller)
#define PROC_ENVIRON 18 // /proc/<parent>/environ and /fd, /proc/<other>/environ (a worker as another user,
                        // or of an undumpable server)

#ifndef ATTEMPT
#error "define ATTEMPT"
#endif

static const char manifest[] = "EDDY-PLUGIN\nname=hostile-" ATTEMPT_NAME "\nversion=1.0.0\nabi=2\ncompiler=6.3\n";

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

/// 0 when the call failed with EPERM or EACCES (refused), 1 otherwise (it went through, or failed
/// for another reason: not a refusal either).
static int outcome(const char *what, int result, int code) {
    if (result < 0 && (code == EPERM || code == EACCES)) {
        fprintf(stderr, "hostile-%s: refused: %s: errno %d (%s)\n", ATTEMPT_NAME, what, code, strerror(code));
        return 0;
    }
    fprintf(stderr, "hostile-%s: NOT REFUSED: %s: result %d, errno %d (%s)\n", ATTEMPT_NAME, what, result, code,
            strerror(code));
    return 1;
}

static int attempt(void) {
    int r;
    errno = 0;
    switch (ATTEMPT) {
    case KILL_PARENT: {
        int sig = atoi(env("EDDY_HOSTILE_SIGNAL"));
        r = kill(getppid(), sig > 0 ? sig : SIGCONT);
        return outcome("kill(parent)", r, errno);
    }
    case KILL_OTHER:
        r = kill((pid_t)atoi(env("EDDY_HOSTILE_PID")), SIGKILL);
        return outcome("kill(other)", r, errno);
    case READ_SECRET:
        r = open(env("EDDY_HOSTILE_SECRET"), O_RDONLY);
        return outcome("open(secret)", r, errno);
    case READ_TOKEN:
        r = open(env("EDDY_HOSTILE_TOKEN"), O_RDONLY);
        return outcome("open(token)", r, errno);
    case WRITE_OUTSIDE:
        r = open(env("EDDY_HOSTILE_WRITE"), O_WRONLY | O_CREAT, 0644);
        return outcome("open(outside, O_CREAT)", r, errno);
    case UNLINK_RECORDS: {
        char path[4096];
        snprintf(path, sizeof path, "%s/quarantine.tsv", env("EDDY_SHADOW_DIR"));
        r = unlink(path);
        int failed = outcome("unlink(quarantine.tsv)", r, errno);
        snprintf(path, sizeof path, "%s/probed.tsv", env("EDDY_SHADOW_DIR"));
        errno = 0;
        r = unlink(path);
        return failed | outcome("unlink(probed.tsv)", r, errno);
    }
    case FORK: {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, NULL, 0);
        return outcome("fork", pid, errno);
    }
    case SETSID:
        r = setsid();
        return outcome("setsid", r, errno);
    case EXEC: {
        char *argv[] = {"/bin/sh", "-c", "true", NULL};
        char *envp[] = {NULL};
        r = execve("/bin/sh", argv, envp);
        return outcome("execve", r, errno);
    }
    case TCP: {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return outcome("socket(AF_INET)", fd, errno);
        struct sockaddr_in addr;
        memset(&addr, 0, sizeof addr);
        addr.sin_family = AF_INET;
        addr.sin_port = htons((unsigned short)atoi(env("EDDY_HOSTILE_PORT")));
        addr.sin_addr.s_addr = inet_addr("127.0.0.1");
        r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
        int code = errno;
        close(fd);
        return outcome("connect(127.0.0.1)", r, code);
    }
    case RLIMIT: {
        struct rlimit limit = {RLIM_INFINITY, RLIM_INFINITY};
        r = setrlimit(RLIMIT_NOFILE, &limit);
        return outcome("setrlimit(RLIMIT_NOFILE, unlimited)", r, errno);
    }
    case CHMOD: {
        r = chmod(env("EDDY_HOSTILE_TOKEN"), 0666);
        int failed = outcome("chmod(token, 0666)", r, errno);
        errno = 0;
        r = chown(env("EDDY_HOSTILE_TOKEN"), getuid(), getgid());
        failed |= outcome("chown(token)", r, errno);
        errno = 0;
        r = utimes(env("EDDY_HOSTILE_TOKEN"), NULL);
        return failed | outcome("utimes(token)", r, errno);
    }
    case RENICE: {
        r = setpriority(PRIO_PROCESS, (id_t)getppid(), 19);
        int failed = outcome("setpriority(PRIO_PROCESS, parent)", r, errno);
        errno = 0;
        r = setpriority(PRIO_PGRP, 0, 19);
        return failed | outcome("setpriority(PRIO_PGRP, 0)", r, errno);
    }
    case AFFINITY: {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        r = sched_setaffinity(getppid(), sizeof set, &set);
        return outcome("sched_setaffinity(parent)", r, errno);
    }
    case IOPRIO:
        r = (int)syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, (int)getppid(), (3 << 13) /* IDLE */);
        return outcome("ioprio_set(parent)", r, errno);
    case STDERR: {
        // A line that would read as the server's own, with a terminal escape: it must arrive prefixed
        // with the worker and escaped (in eval, standard error is the user's own).
        static const char forged[] = "\nFORGED-LOG-LINE info eddy : plugin promoted \x1b[2J\n";
        if (write(2, forged, sizeof forged - 1) < 0) return 1;
        r = ftruncate(2, 0);
        int failed = outcome("ftruncate(2, 0)", r, errno);
        errno = 0;
        r = (int)pwrite(2, "x", 1, 0);
        return failed | outcome("pwrite(2, 0)", r, errno);
    }
    case PROC_MEMORY: {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/mem", (int)getppid());
        r = open(path, O_RDONLY);
        int code = errno;
        if (r >= 0) close(r);
        return outcome("open(/proc/<parent>/mem)", r, code);
    }
    case PROC_ENVIRON: {
        // The server's environment and descriptors, and another process's environment.
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/environ", (int)getppid());
        r = open(path, O_RDONLY);
        int code = errno;
        if (r >= 0) close(r);
        int failed = outcome("open(/proc/<parent>/environ)", r, code);
        snprintf(path, sizeof path, "/proc/%d/fd", (int)getppid());
        errno = 0;
        r = open(path, O_RDONLY | O_DIRECTORY);
        code = errno;
        if (r >= 0) close(r);
        failed |= outcome("open(/proc/<parent>/fd)", r, code);
        snprintf(path, sizeof path, "/proc/%d/environ", atoi(env("EDDY_HOSTILE_PID")));
        errno = 0;
        r = open(path, O_RDONLY);
        code = errno;
        if (r >= 0) close(r);
        return failed | outcome("open(/proc/<other>/environ)", r, code);
    }
    }
    return 1;
}

// The entry symbol of plugin ABI 2: request 0 writes the manifest, request 1 registers (nothing here,
// after the attempt; a status other than 0 fails the registration).
int eddy_plugin_entry_v2(int request, void *argument) {
    if (!argument) return 1;
    if (request == 0) {
        memcpy(argument, manifest, sizeof manifest);
        return 0;
    }
    if (request == 1) return attempt();
    return 1;
}
