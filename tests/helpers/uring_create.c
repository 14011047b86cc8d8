// Test helper: create (or truncate) files through io_uring's IORING_OP_OPENAT only — no
// open/openat/creat syscall touches them — to check that the file sensor sees them.
// Usage: uring_create PATH [PATH...]   (O_CREAT|O_WRONLY|O_TRUNC, mode 0644). Exits non-zero
// on any failure. Built static by the test suite (gcc -static ... -luring).
// SPDX-License-Identifier: MIT OR Apache-2.0
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct io_uring ring;
  int rc = io_uring_queue_init(4, &ring, 0);
  if (rc < 0) {
    fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc));
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_openat(sqe, AT_FDCWD, argv[i], O_CREAT | O_WRONLY | O_TRUNC, 0644);
    io_uring_submit(&ring);
    struct io_uring_cqe *cqe;
    rc = io_uring_wait_cqe(&ring, &cqe);
    if (rc < 0 || cqe->res < 0) {
      fprintf(stderr, "io_uring openat %s: %s\n", argv[i], strerror(rc < 0 ? -rc : -cqe->res));
      return 1;
    }
    int fd = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    // Closing through io_uring too keeps the whole life of the file off the syscalls.
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_close(sqe, fd);
    io_uring_submit(&ring);
    if (io_uring_wait_cqe(&ring, &cqe) == 0)
      io_uring_cqe_seen(&ring, cqe);
  }
  io_uring_queue_exit(&ring);
  // Stay alive a moment, like a real program would: a file record that overtakes this
  // process's exec record is resolved through /proc, which needs the process (README, Known
  // limits).
  usleep(300 * 1000);
  return 0;
}
