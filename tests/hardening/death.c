/* death.c — misuse is caught, in every build where the hardening issue says
 * it must be. Each case runs in a forked child; the parent asserts the
 * child died of SIGABRT and that stderr says "keel:", names the error and
 * the pointer. Run with the library under test preloaded (default, secure,
 * debug): the cases use the standard names. Argument: the build's name,
 * which selects the build-specific cases. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../harness.h"

static char out[4096];
static char ptrtext[64];
static int  static_data[16];


/* Run fn in a child with stderr captured and env (NAME=value) set, if
 * any; returns the wait status. */
static void (*child_fn)(void);
static const char *child_env;
static void child(void) { if (child_env) putenv((char *)child_env); child_fn(); }
static int run(void (*fn)(void), const char *env) {
  child_fn = fn;
  child_env = env;
  return kl_t_fork(child, NULL, out, sizeof out);
}

static void *volatile sink;   /* a volatile pointer: the compiler keeps every malloc */
static void *victim;
#define SET_PTR(p) do { victim = (p); snprintf(ptrtext, sizeof ptrtext, "%p", victim); } while (0)

static void double_free_now(void) { char *p = malloc(40); SET_PTR(p); free(p); free(p); }
static void double_free_later(void) {
  char *p = malloc(40); SET_PTR(p); free(p);
  for (int i = 0; i < 50; i++) sink = malloc(24 + i);
  free(p);
}
static void double_free_huge(void) { char *p = malloc(8 << 20); SET_PTR(p); free(p); free(p); }
static void interior(void) { char *p = malloc(64); SET_PTR(p + 16); free(p + 16); }
static void interior_big(void) { char *p = malloc(1 << 20); SET_PTR(p + 8); free(p + 8); }
static void stack_ptr(void) { int x; SET_PTR(&x); free(&x); }
static void static_ptr(void) { SET_PTR(&static_data[2]); free(&static_data[2]); }
static void mmap_ptr(void) {
  void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  SET_PTR(m); free(m);
}
static void other_allocator(void) {
  /* glibc's own malloc, looked up in libc itself: a block keel never saw. */
  void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  void *(*libc_malloc)(size_t) = libc ? (void *(*)(size_t))dlsym(libc, "malloc") : NULL;
  void *p = libc_malloc ? libc_malloc(32) : mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  SET_PTR(p); free(p);
}
static void realloc_stack(void) { int x; SET_PTR(&x); sink = realloc(&x, 100); }
static void realloc_freed(void) { char *p = malloc(40); SET_PTR(p); free(p); sink = realloc(p, 100); }
static void usable_foreign(void) { int x; SET_PTR(&x); sink = (void *)malloc_usable_size(&x); }
static void warn_goes_on(void) {
  /* The option was read when the parent started; set it through the API. */
  int (*set)(int, long) = (int (*)(int, long))dlsym(RTLD_DEFAULT, "keel_option_set");
  if (set) set(0 /* KEEL_OPTION_ON_ERROR */, 1 /* warn */);
  int x; char *p = malloc(40); free(p); free(p); free(&x);
  char *q = malloc(100); memset(q, 1, 100); free(q);
  fprintf(stderr, "still running\n");
}
/* Every size class, powers of two among them, and pointers just off a
 * block: inside it, just before it (in the previous block or the segment
 * header), and the next block of a page that has not carved it yet (blocks
 * of 4 KiB or more are carved one at a time). Each must be refused, not
 * taken for a block. KEEL_ON_ERROR=warn: malloc_usable_size reports (to
 * /dev/null here: hundreds of reports) and gives 0. The child exits with
 * 42 if every one was refused, and says on stderr which were not. */
static void off_block_sweep(void) {
  int (*set)(int, long) = (int (*)(int, long))dlsym(RTLD_DEFAULT, "keel_option_set");
  if (set) set(0 /* KEEL_OPTION_ON_ERROR */, 1 /* warn */);
  FILE *err = fdopen(dup(2), "w");
  int null = open("/dev/null", O_WRONLY);
  if (err == NULL || null < 0 || dup2(null, 2) < 0) exit(2);
  int bad = 0;
  for (size_t size = 16; size <= (size_t)128 << 10; size += size / 8 > 16 ? size / 8 : 16) {
    for (size_t s = size; s <= size + 1; s++) {     /* a power of two and the class after it */
      char *p = malloc(s);
      size_t u = malloc_usable_size(p);
      if (u < s) { fprintf(err, "usable %zu for %zu\n", u, s); bad++; }
      char *offs[] = { p + 8, p + u - 8, p - 8, u >= 4096 ? p + u : p + (u / 2 | 8) };
      for (unsigned i = 0; i < sizeof offs / sizeof offs[0]; i++)
        if (malloc_usable_size(offs[i]) != 0) { fprintf(err, "%p (block %p of %zu) taken\n", (void *)offs[i], (void *)p, u); bad++; }
      memset(p, 7, u);
      free(p);
    }
  }
  fflush(err);
  exit(bad == 0 ? 42 : 1);
}

/* debug build */
/* volatile: the compiler may drop stores it can prove are out of bounds or
 * to freed memory, and these tests are about exactly such stores. */
static void overflow_one(void) { char *volatile p = malloc(40); SET_PTR(p); p[40] = 'x'; free(p); }
static void overflow_realloc(void) { char *volatile p = malloc(24); SET_PTR(p); p[24] = 'x'; sink = realloc(p, 4000); }
static void write_after_free(void) {
  char *volatile p = malloc(200); SET_PTR(p); free(p);
  p[100] = 'x';
  /* Allocate the same size until the block comes back (LIFO per page). */
  for (int i = 0; i < 100000; i++) { void *q = malloc(200); if (q == victim) break; }
}
static void fresh_pattern(void) {
  unsigned char *p = malloc(100);
  for (int i = 0; i < 100; i++) if (p[i] != 0xA5) _exit(3);
  unsigned char *z = calloc(1, 100);
  for (int i = 0; i < 100; i++) if (z[i] != 0) _exit(4);
}

/* secure build: a forged free-list link is refused, not followed */
static void forged_link(void) {
  void *a = malloc(48);
  void *volatile b = malloc(48);
  SET_PTR(b);
  free(a); free(b);
  /* b is the head of the local free list; its first word is the link. */
  ((void *volatile *)b)[0] = (void *)&static_data[0];
  for (int i = 0; i < 100000; i++) sink = malloc(48);
}
/* The same with a link that would be valid if links were stored plainly:
 * the address of another block of the same page. Only an encoded link
 * (XOR the page's secret key) tells it from a real one. */
static void forged_link_in_page(void) {
  void *a = malloc(48);
  void *volatile b = malloc(48);
  void *c = malloc(48);
  SET_PTR(b);
  free(a); free(b);
  ((void *volatile *)b)[0] = c;
  for (int i = 0; i < 100000; i++) sink = malloc(48);
}

static void expect_abort(const char *name, void (*fn)(void), const char *what) {
  int st = run(fn, NULL);
  bool died = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
  CHECKF(died, "%s: child status %#x, stderr: %s", name, st, out);
  CHECKF(strstr(out, "keel:") != NULL, "%s: no 'keel:' in: %s", name, out);
  CHECKF(strstr(out, what) != NULL, "%s: '%s' missing in: %s", name, what, out);
  if (victim) CHECKF(strstr(out, ptrtext) != NULL, "%s: pointer %s missing in: %s", name, ptrtext, out);
  victim = NULL;
}

int main(int argc, char **argv) {
  const char *build = argc > 1 ? argv[1] : "default";
  bool debug = strcmp(build, "debug") == 0, secure = strcmp(build, "secure") == 0;
  /* Which error text each build gives for a second free of a small block:
   * the debug build's entry check reports it as already freed. */
  expect_abort("double free, at once", double_free_now, debug ? "already freed" : "double free");
  expect_abort("double free, later", double_free_later, debug ? "already freed" : "double free");
  expect_abort("double free, huge", double_free_huge, "already freed");
  expect_abort("interior pointer", interior, "not the start of a keel block");
  expect_abort("interior pointer, 1 MiB block", interior_big, "invalid pointer");
  expect_abort("stack pointer", stack_ptr, "not allocated by keel");
  expect_abort("static data", static_ptr, "not allocated by keel");
  expect_abort("mmap page", mmap_ptr, "not allocated by keel");
  expect_abort("block of another allocator", other_allocator, "not allocated by keel");
  expect_abort("realloc of a stack pointer", realloc_stack, "realloc");
  expect_abort("realloc of a freed block", realloc_freed, "already freed");
  expect_abort("malloc_usable_size of a foreign pointer", usable_foreign, "malloc_usable_size");
  int st = run(warn_goes_on, "KEEL_ON_ERROR=warn");
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "still running") && strstr(out, "ignored"),
         "KEEL_ON_ERROR=warn: status %#x, stderr: %s", st, out);
  st = run(off_block_sweep, NULL);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 42,
         "pointers off a block, every class: status %#x, stderr: %.600s", st, out);
  if (debug) {
    expect_abort("one byte past the end", overflow_one, "written past its end");
    expect_abort("overflow found by realloc", overflow_realloc, "written past its end");
    expect_abort("write after free", write_after_free, "write after free");
    st = run(fresh_pattern, NULL);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fresh memory is 0xA5, calloc is zero: status %#x", st);
  }
  if (secure) {
    expect_abort("forged free-list link", forged_link, "heap corruption");
    expect_abort("forged free-list link into the same page", forged_link_in_page, "heap corruption");
  }
  return KL_DONE();
}
