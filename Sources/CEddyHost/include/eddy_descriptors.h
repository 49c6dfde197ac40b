#ifndef EDDY_DESCRIPTORS_H
#define EDDY_DESCRIPTORS_H

#include <stddef.h>

/// Opens `path` (relative, no leading '/') for reading beneath the directory `dirfd`, in one step that
/// cannot be raced: openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS (a relative link that stays
/// inside is followed; an absolute link, a `..` or a link that leads out is refused with EXDEV, however
/// the tree changes meanwhile). Flags O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK. On a kernel without
/// openat2 (ENOSYS, or EPERM from a seccomp filter) it walks the components with O_NOFOLLOW instead,
/// refusing every symbolic link (ELOOP) and every `..` (EXDEV); `*walked` is then set to 1.
/// Returns the descriptor, or -1 with errno set.
int eddy_open_beneath(int dirfd, const char *path, int *walked);

/// A descriptor of the directory at `path` that only serves as the start of lookups (O_PATH |
/// O_DIRECTORY | O_CLOEXEC: no read permission on the directory is needed); -1 with errno set.
int eddy_open_directory(const char *path);

/// Sends `length` bytes of `bytes` on the stream socket `socket` with MSG_NOSIGNAL and, on the first
/// byte, descriptor `fd` as SCM_RIGHTS (none when `fd` < 0). Returns the bytes sent (perhaps fewer than
/// `length`: send the rest with send(2)), or -1 with errno set.
long eddy_send_with_descriptor(int socket, const void *bytes, size_t length, int fd);

/// Receives up to `length` bytes into `bytes` from `socket` and the descriptor that came with them
/// (SCM_RIGHTS, close-on-exec) into `*fd` (-1 when none came; extra descriptors are closed).
/// Returns the bytes received (0 at end of stream), or -1 with errno set.
long eddy_receive_with_descriptor(int socket, void *bytes, size_t length, int *fd);

#endif
