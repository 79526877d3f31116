/* runner.c — measures one benchmark child: `kbrun RESULT PRELOAD CMD ARGS...`
 *
 * Forks, sets LD_PRELOAD=PRELOAD in the child only (empty: unset), execs
 * CMD, waits with wait4 and writes "wall_s cpu_s maxrss_kib exit_code" to
 * the file RESULT. Stdio is inherited.
 *
 * Why a separate process: a child's ru_maxrss keeps the high-water mark of
 * the memory image it had before exec, and a child forked (or vforked) by
 * the python driver starts with python's ~17 MiB image, which would hide
 * every workload smaller than that. Forked from this small program, the
 * floor is this program's own ~1 MiB.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: kbrun RESULT PRELOAD CMD [ARGS...]\n"); return 2; }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) { perror("kbrun: fork"); return 2; }
  if (pid == 0) {
    if (argv[2][0]) setenv("LD_PRELOAD", argv[2], 1); else unsetenv("LD_PRELOAD");
    execvp(argv[3], argv + 3);
    perror("kbrun: exec");
    _exit(127);
  }
  int status = 0;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) { perror("kbrun: wait4"); return 2; }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  FILE *f = fopen(argv[1], "w");
  if (!f) { perror("kbrun: result file"); return 2; }
  fprintf(f, "%.6f %.6f %ld %d\n",
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9,
          (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6,
          ru.ru_maxrss, code);
  fclose(f);
  return code;
}
