#define _GNU_SOURCE 1
#include "eddy_descriptors.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const int read_flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

// One component at a time, never following a link: a directory swapped for a link between two steps
// is refused (ELOOP), not followed. Stricter than openat2's RESOLVE_BENEATH (no link at all).
static int open_walking(int dirfd, const char *path) {
    size_t n = strlen(path);
    char *copy = malloc(n + 1);
    if (!copy) { errno = ENOMEM; return -1; }
    memcpy(copy, path, n + 1);
    int current = dirfd;
    int result = -1;
    char *save = NULL;
    char *part = strtok_r(copy, "/", &save);
    if (!part) { errno = ENOENT; goto out; }
    for (;;) {
        char *next = strtok_r(NULL, "/", &save);
        if (strcmp(part, "..") == 0) { errno = EXDEV; goto out; }
        if (strcmp(part, ".") != 0 || !next) {
            int flags = next ? (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : (read_flags | O_NOFOLLOW);
            int fd = openat(current, part, flags);
            if (fd < 0) {
                // O_PATH | O_NOFOLLOW on a link gives ENOTDIR (a link is no directory): say it is a link.
                struct stat st;
                int saved = errno;
                errno = (saved == ENOTDIR && fstatat(current, part, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                    ? ELOOP : saved;
                goto out;
            }
            if (current != dirfd) close(current);
            current = fd;
        }
        if (!next) { result = current; current = dirfd; break; }
        part = next;
    }
out:;
    int saved = errno;
    if (current != dirfd) close(current);
    free(copy);
    errno = saved;
    return result;
}

int eddy_open_beneath(int dirfd, const char *path, int *walked) {
    if (walked) *walked = 0;
    if (!path || path[0] == '/' || path[0] == 0) { errno = EXDEV; return -1; }
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = read_flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0; attempt < 16; attempt++) {
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        if (fd >= 0) return (int)fd;
        // EAGAIN: a rename raced a `..` lookup; the kernel asks to try again (it never resolves outside).
        if (errno == EAGAIN || errno == EINTR) continue;
        if (errno == ENOSYS || errno == EPERM) break;
        return -1;
    }
    if (errno == EAGAIN) return -1;
    if (walked) *walked = 1;
    return open_walking(dirfd, path);
}

int eddy_open_directory(const char *path) {
    return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

long eddy_send_with_descriptor(int socket, const void *bytes, size_t length, int fd) {
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = length};
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    if (fd >= 0) {
        message.msg_control = control.buffer;
        message.msg_controllen = sizeof control.buffer;
        struct cmsghdr *c = CMSG_FIRSTHDR(&message);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n;
    do {
        n = sendmsg(socket, &message, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return (long)n;
}

long eddy_receive_with_descriptor(int socket, void *bytes, size_t length, int *fd) {
    *fd = -1;
    struct iovec iov = {.iov_base = bytes, .iov_len = length};
    union {
        char buffer[CMSG_SPACE(sizeof(int) * 8)];
        struct cmsghdr align;
    } control;
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    ssize_t n;
    do {
        n = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int received;
            memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*fd < 0) *fd = received; else close(received);
        }
    }
    return (long)n;
}
