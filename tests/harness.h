/* Minimal test harness: CHECK(cond) counts, main ends with KL_DONE(). */
#ifndef KL_HARNESS_H
#define KL_HARNESS_H
#include <stdio.h>
static int kl_t_pass, kl_t_fail;
#define CHECK(cond) do { if (cond) kl_t_pass++; else { kl_t_fail++; \
  fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (cond) kl_t_pass++; else { kl_t_fail++; \
  fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define KL_DONE() (printf("%d passed, %d failed\n", kl_t_pass, kl_t_fail), kl_t_fail != 0)

/* Death tests: run fn in a forked child and return its wait status, with
 * what the child wrote into out (at most cap - 1 bytes, NUL-terminated).
 * The child writes through a pipe: its stderr if report_fd is NULL, else
 * the fd the child finds in *report_fd. (Not on wasm32: no fork.) */
#ifndef __wasm__
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static inline int kl_t_fork(void (*fn)(void), int *report_fd, char *out, size_t cap) {
  int pfd[2];
  if (pipe(pfd) != 0) abort();
  fflush(NULL);   /* no buffered output written twice */
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    if (report_fd != NULL) *report_fd = pfd[1]; else dup2(pfd[1], 2);
    fn();
    _exit(0);
  }
  close(pfd[1]);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(pfd[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
  out[n] = '\0';
  close(pfd[0]);
  int st;
  waitpid(pid, &st, 0);
  return st;
}

/* Resident memory in KiB (/proc/self/statm), -1 if unknown. Plain system
 * calls, no stdio: it allocates nothing, so a test can watch memory while
 * it makes no allocator call (tests/core/idle.c). */
#include <fcntl.h>
#include <string.h>
static inline long kl_t_rss_kib(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char *sp = strchr(buf, ' ');
  return sp ? atol(sp + 1) * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}
#endif
#endif
