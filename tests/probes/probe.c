/* Attacks on the container boundary that busybox cannot make. Compiled statically by
 * the boundary tests and run ONLY inside silo containers, never on the host.
 *
 *   probe open-setuid PATH   create PATH with mode 04755 in one open(2)
 *   probe setcap PATH        give PATH the file capability CAP_SETUID (v2 xattr)
 *   probe clone-userns       clone(2) a child in a new user namespace
 *
 * Prints "blocked: <errno text>" or "allowed", and exits 0 either way (1 on misuse).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static int report(int failed) {
  if (failed)
    printf("blocked: %s\n", strerror(errno));
  else
    printf("allowed\n");
  return 0;
}

static int child(void *arg) {
  (void)arg;
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "open-setuid") == 0) {
    int fd = open(argv[2], O_CREAT | O_WRONLY | O_EXCL, 04755);
    if (fd >= 0)
      close(fd);
    return report(fd < 0);
  }
  if (argc >= 3 && strcmp(argv[1], "setcap") == 0) {
    /* struct vfs_cap_data, revision 2, effective, permitted CAP_SETUID (7). */
    uint32_t cap[5] = {0x02000001, 1u << 7, 0, 0, 0};
    return report(setxattr(argv[2], "security.capability", cap, sizeof cap, 0) != 0);
  }
  if (argc >= 2 && strcmp(argv[1], "clone-userns") == 0) {
    static char stack[64 * 1024];
    pid_t pid = clone(child, stack + sizeof stack, CLONE_NEWUSER | SIGCHLD, NULL);
    if (pid > 0)
      waitpid(pid, NULL, 0);
    return report(pid < 0);
  }
  fprintf(stderr, "usage: probe open-setuid PATH | setcap PATH | clone-userns\n");
  return 1;
}
