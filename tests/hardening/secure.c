/* secure.c — what the secure build promises beyond the default build's
 * checks (docs/DESIGN.md, "Other builds"): a guard page right after every
 * huge block, at the end of every page and after the segment header; fresh
 * blocks handed out in a random order; a random address for every segment.
 *
 * Run with the library under test preloaded and its name as the argument:
 *   secure    every promise must hold;
 *   default   the same probes as a control, which must show the opposite
 *             (no fault, address order, the same address twice without
 *             ASLR), so a probe that cannot tell the builds apart fails.
 * A fault probe runs in a forked child that reports, through a pipe, how
 * far it got before the one access that must fault (death test). The order
 * and address probes run this program again (modes "order" and "base") so
 * that each sample comes from a fresh process. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../harness.h"

#define SEGMENT ((uintptr_t)4 << 20)   /* keel's segments: 4 MiB, 4 MiB-aligned */
#define NORDER  64

static int report_fd = -1;
static void reached(const char *what) { if (write(report_fd, what, strlen(what)) < 0) _exit(5); }

/* Run fn(arg) in a child; returns the wait status and what it reported. */
static void (*probe_fn)(size_t);
static size_t probe_arg;
static void probe_child(void) { probe_fn(probe_arg); }
static int probe(void (*fn)(size_t), size_t arg, char *said, size_t cap) {
  probe_fn = fn;
  probe_arg = arg;
  return kl_t_fork(probe_child, &report_fd, said, cap);
}
static bool segv(int st) { return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV; }

/* A read past a block that the secure build's guard pages stop (the child
 * says "start;" and dies of SIGSEGV) and the default build, the control,
 * lets through (the child exits 0). */
static void expect_guard(bool secure, void (*fn)(size_t), size_t n, const char *what) {
  char said[256];
  int st = probe(fn, n, said, sizeof said);
  if (secure)
    CHECKF(segv(st) && strcmp(said, "start;") == 0, "%zu-byte %s: status %#x, child said '%s'", n, what, st, said);
  else
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "control, %zu-byte %s: status %#x, '%s'", n, what, st, said);
}

/* ---- guard pages -------------------------------------------------------- */

/* A huge block of arg bytes, made by each entry point that can make one:
 * all of its usable size is writable, one byte further faults. */
static void *huge_block(size_t kind, size_t size) {
  void *p = NULL;
  switch (kind) {
    case 0: p = malloc(size); break;
    case 1: p = calloc(1, size); break;
    case 2: if (posix_memalign(&p, 64 << 10, size) != 0) p = NULL; break;
    case 3: p = aligned_alloc(SEGMENT, size); break;                 /* a block one segment in */
    case 4: p = realloc(malloc(200000), size); break;                /* grown (secure: copied) */
    case 5: { char *q = malloc(size * 2); p = realloc(q, size); break; }   /* shrunk */
  }
  return p;
}
static const char *kind_name[] = { "malloc", "calloc", "posix_memalign 64 KiB", "aligned_alloc 4 MiB",
                                   "realloc grown", "realloc shrunk" };
static size_t probe_kind;
static void past_huge_end(size_t size) {
  char *volatile p = huge_block(probe_kind, size);
  if (p == NULL) { reached("NULL"); _exit(3); }
  size_t n = malloc_usable_size(p);
  if (n < size) { reached("usable size too small"); _exit(4); }
  memset(p, 0x5a, n);               /* every usable byte is writable */
  reached("usable written;");
  ((volatile char *)p)[n] = 'x';    /* the first byte past it: the guard */
  reached("wrote past the end");
}

/* Read from a block of arg bytes to the end of its page (64 KiB for small
 * classes, 256 KiB for medium ones): the page's last OS page is a guard. */
static void to_page_end(size_t size) {
  volatile char *p = malloc(size);
  uintptr_t span = size <= 8192 ? (uintptr_t)64 << 10 : (uintptr_t)256 << 10;
  volatile char *end = (volatile char *)(((uintptr_t)p | (span - 1)) + 1);
  reached("start;");
  char sum = 0;
  for (volatile char *q = p; q < end; q += 256) sum ^= *q;
  (void)sum;
  reached("read to the page end");
}

/* Read down from the end of a segment's first page to the segment's start:
 * a guard page lies between the header and the first page's blocks. */
static void down_to_header(size_t size) {
  uintptr_t base = (uintptr_t)malloc(size) & ~(SEGMENT - 1);
  reached("start;");
  char sum = 0;
  for (volatile char *q = (volatile char *)(base + (64 << 10) - 1); q >= (volatile char *)base; q -= 256) sum ^= *q;
  (void)sum;
  reached("read the header");
}

/* ---- the order and address probes ------------------------------------- */

static int order_mode(void) {
  static char *p[NORDER];
  for (int i = 0; i < NORDER; i++) p[i] = malloc(64);
  for (int i = 1; i < NORDER; i++) printf("%td\n", p[i] - p[i - 1]);
  return 0;
}
static int base_mode(void) {
  printf("%#lx\n", (unsigned long)((uintptr_t)malloc(32) & ~(SEGMENT - 1)));
  return 0;
}

static char self[4096];
static bool no_aslr;   /* setarch -R works here: addresses repeat unless keel randomizes */

/* This program in a mode, in a fresh process (the preload is inherited). */
static bool run_self(const char *mode, char *out, size_t cap) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "%s'%s' %s", no_aslr ? "setarch -R " : "", self, mode);
  FILE *f = popen(cmd, "r");
  if (f == NULL) return false;
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = '\0';
  return pclose(f) == 0 && n > 0;
}

int main(int argc, char **argv) {
  const char *build = argc > 1 ? argv[1] : "secure";
  if (strcmp(build, "order") == 0) return order_mode();
  if (strcmp(build, "base") == 0) return base_mode();
  bool secure = strcmp(build, "secure") == 0;
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) abort();
  self[len] = '\0';
  no_aslr = system("setarch -R true >/dev/null 2>&1") == 0;

  Dl_info info;
  CHECKF(dladdr((void *)&malloc, &info) && info.dli_fname &&
         strstr(info.dli_fname, secure ? "libkeel-secure.so" : "libkeel.so"),
         "malloc comes from %s, expected the %s build", info.dli_fname ? info.dli_fname : "?", build);

  char said[256];
  int st;
  /* (a) guard pages; the control only for the probes whose result in the
   * default build is certain (reads within a mapped segment never fault). */
  if (secure) {
    static const size_t sizes[] = { (128 << 10) + 1, 200000, (1 << 20) + 3, (3 << 20) + 5, (4 << 20) - 100, 9 << 20 };
    for (probe_kind = 0; probe_kind < sizeof kind_name / sizeof *kind_name; probe_kind++)
      for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        st = probe(past_huge_end, sizes[i], said, sizeof said);
        CHECKF(segv(st) && strcmp(said, "usable written;") == 0,
               "%s(%zu): one byte past the usable size: status %#x, child said '%s'", kind_name[probe_kind], sizes[i], st, said);
      }
  }
  static const size_t in_pages[] = { 16, 48, 1000, 8192, 8193, 16384, 100000, 128 << 10 };
  for (size_t i = 0; i < sizeof in_pages / sizeof *in_pages; i++)
    expect_guard(secure, to_page_end, in_pages[i], "block: reading to its page's end");
  static const size_t seg_of[] = { 32, 20000 };   /* a small and a medium segment */
  for (size_t i = 0; i < 2; i++)
    expect_guard(secure, down_to_header, seg_of[i], "block's segment: reading down to its header");

  /* (b) order within a page: deltas of 64 fresh same-size blocks, two runs. */
  static char run1[8192], run2[8192];
  bool ok1 = run_self("order", run1, sizeof run1), ok2 = run_self("order", run2, sizeof run2);
  CHECKF(ok1 && ok2, "order runs: '%.60s' '%.60s'", run1, run2);
  if (ok1 && ok2) {
    int up = 0, down = 0, lines = 0;
    for (char *s = run1; *s; s = strchr(s, '\n') + 1) {
      long d = strtol(s, NULL, 10);
      up += d > 0; down += d < 0; lines++;
      if (!strchr(s, '\n')) break;
    }
    CHECKF(lines == NORDER - 1, "order: %d deltas", lines);
    if (secure) {
      CHECKF(up > 0 && down > 0, "64 blocks in address order (%d up, %d down): deltas %.200s", up, down, run1);
      CHECKF(strcmp(run1, run2) != 0, "two processes gave the same order: %.200s", run1);
    } else {
      CHECKF(up == NORDER - 1, "control: fresh blocks come in address order (%d up, %d down)", up, down);
      CHECKF(strcmp(run1, run2) == 0, "control: two processes gave different orders");
    }
  }

  /* (c) segment addresses: the 4 MiB unit of a small block in three runs;
   * two equal by chance are possible, three are not (odds about 2^-46). */
  char b[3][64];
  bool got = true;
  for (int i = 0; i < 3; i++) got &= run_self("base", b[i], sizeof b[i]);
  CHECKF(got, "base runs");
  bool all_equal = strcmp(b[0], b[1]) == 0 && strcmp(b[1], b[2]) == 0;
  if (secure)
    CHECKF(got && !all_equal, "the first segment is at %.20s in three runs%s", b[0], no_aslr ? " (ASLR off)" : "");
  else if (no_aslr)
    CHECKF(got && all_equal, "control, ASLR off: segment addresses differ: %.20s %.20s %.20s", b[0], b[1], b[2]);
  if (!no_aslr) printf("note: setarch -R does not work here; segment addresses compared with ASLR on\n");
  return KL_DONE();
}
