/* keel — run a program on keel.
 *
 *   keel [--stats] [--secure | --debug] [--report FILE] [--] PROGRAM [ARGS...]
 *
 * Preloads libkeel.so (or libkeel-secure.so / libkeel-debug.so), found next
 * to this command, in ../lib or ../lib64 (installed), or in the build tree,
 * then execs PROGRAM: its output, exit status and signals pass through
 * unchanged because it replaces this process. Options become KEEL_*
 * environment variables, so child processes inherit them. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: keel [options] [--] PROGRAM [ARGS...]\n"
    "Run PROGRAM with the keel allocator preloaded.\n\n"
    "  --stats          print keel's statistics table at exit (KEEL_SHOW_STATS=1)\n"
    "  --secure         use the hardened build (libkeel-secure.so)\n"
    "  --debug          use the debug build (libkeel-debug.so: canaries, fill patterns)\n"
    "  --report FILE    write an HTML report of memory over time to FILE\n"
    "                   (other processes the program starts write FILE with .PID added)\n"
    "  --version        print keel's version\n"
    "  --help           this text\n\n"
    "Other KEEL_* environment variables (see the README) pass through.\n");
}

static int find_lib(const char *name, char *out, size_t n) {
  char self[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return -1;
  self[len] = '\0';
  const char *dir = dirname(self);
  const char *fmts[] = { "%s/%s", "%s/../lib/%s", "%s/../lib64/%s", "%s/../build/%s" };
  for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
    snprintf(out, n, fmts[i], dir, name);
    if (access(out, R_OK) == 0) {
      char *r = realpath(out, NULL);
      if (r) { snprintf(out, n, "%s", r); free(r); }
      return 0;
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  const char *lib = "libkeel.so", *report = NULL;
  int stats = 0, i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { i++; break; }
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 0; }
    else if (strcmp(a, "--version") == 0) { printf("keel %s\n", KEEL_VERSION_STRING); return 0; }
    else if (strcmp(a, "--stats") == 0) stats = 1;
    else if (strcmp(a, "--secure") == 0 || strcmp(a, "--debug") == 0) {
      const char *want = a[2] == 's' ? "libkeel-secure.so" : "libkeel-debug.so";
      if (strcmp(lib, "libkeel.so") != 0 && strcmp(lib, want) != 0) {
        fprintf(stderr, "keel: --secure and --debug exclude each other\n"); return 2;
      }
      lib = want;
    } else if (strcmp(a, "--report") == 0) {
      if (i + 1 >= argc) { fprintf(stderr, "keel: --report needs a FILE\n"); return 2; }
      report = argv[++i];
    } else if (strncmp(a, "--report=", 9) == 0) report = a + 9;
    else { fprintf(stderr, "keel: unknown option '%s'\n", a); usage(stderr); return 2; }
  }
  if (i >= argc) { fprintf(stderr, "keel: no program given\n"); usage(stderr); return 2; }
  char path[PATH_MAX];
  if (find_lib(lib, path, sizeof path) != 0) {
    fprintf(stderr, "keel: cannot find %s next to this command or in ../lib\n", lib);
    return 127;
  }
  const char *old = getenv("LD_PRELOAD");
  char pre[2 * PATH_MAX + 2];
  if (old && *old) snprintf(pre, sizeof pre, "%s:%s", path, old); else snprintf(pre, sizeof pre, "%s", path);
  setenv("LD_PRELOAD", pre, 1);
  if (stats) setenv("KEEL_SHOW_STATS", "1", 1);
  if (report) {
    char abs[PATH_MAX], pid[32];
    if (report[0] != '/' && getcwd(abs, sizeof abs)) {
      size_t l = strlen(abs);
      snprintf(abs + l, sizeof abs - l, "/%s", report);
      report = abs;
    }
    setenv("KEEL_REPORT", report, 1);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());  /* exec keeps our pid */
    setenv("KEEL_REPORT_PID", pid, 1);
  }
  execvp(argv[i], argv + i);
  fprintf(stderr, "keel: cannot run '%s': %s\n", argv[i], strerror(errno));
  return 127;
}
