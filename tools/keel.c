/* keel — run a program on keel: `keel [--] PROGRAM [ARGS...]` preloads
 * libkeel.so (found next to this command, in ../lib, or in the build tree)
 * and execs the program, so its output and exit status pass through. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>

static void usage(FILE *f) {
  fprintf(f, "usage: keel [--help] [--version] [--] PROGRAM [ARGS...]\n"
             "Runs PROGRAM with libkeel.so preloaded (KEEL_* options pass through).\n");
}

static int find_lib(char *out, size_t n) {
  char self[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return -1;
  self[len] = '\0';
  const char *dir = dirname(self);
  const char *cands[] = { "%s/libkeel.so", "%s/../lib/libkeel.so", "%s/../lib64/libkeel.so", "%s/../build/libkeel.so" };
  for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
    snprintf(out, n, cands[i], dir);
    if (access(out, R_OK) == 0) { char *r = realpath(out, NULL); if (r) { snprintf(out, n, "%s", r); free(r); } return 0; }
  }
  return -1;
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
    if (strcmp(argv[i], "--version") == 0) { printf("keel %s\n", KEEL_VERSION_STRING); return 0; }
    fprintf(stderr, "keel: unknown option '%s'\n", argv[i]); usage(stderr); return 2;
  }
  if (i >= argc) { fprintf(stderr, "keel: no program given\n"); usage(stderr); return 2; }
  char lib[PATH_MAX];
  if (find_lib(lib, sizeof lib) != 0) { fprintf(stderr, "keel: cannot find libkeel.so next to this command\n"); return 127; }
  const char *old = getenv("LD_PRELOAD");
  char pre[2 * PATH_MAX];
  if (old && *old) snprintf(pre, sizeof pre, "%s:%s", lib, old); else snprintf(pre, sizeof pre, "%s", lib);
  setenv("LD_PRELOAD", pre, 1);
  execvp(argv[i], argv + i);
  fprintf(stderr, "keel: cannot run '%s'\n", argv[i]);
  return 127;
}
