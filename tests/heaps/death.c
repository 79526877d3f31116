/* death.c — a heap belongs to the thread that created it (keel.h): another
 * thread that allocates from it, destroys or deletes it gets an error report,
 * and in the default build (KEEL_ON_ERROR=abort) the process aborts before
 * anything is touched. So does the creating thread using a handle whose heap
 * died with another thread. Each case runs in a forked child; the parent
 * asserts SIGABRT and the message: "keel: <function>(): invalid pointer
 * <heap>: not a live heap of this thread ...". The last cases switch to
 * warn in the child and check that the foreign calls are refused (NULL and
 * EINVAL, or nothing done) while the heap stays whole for its owner.
 * Links libkeel (keel.h only). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "keel.h"
#include "../harness.h"

/* Shared with the child: the heap's address as %p prints it. */
static char *heaptext;
static char out[4096];

static int run(void (*fn)(void)) {
  heaptext[0] = '\0';
  return kl_t_fork(fn, NULL, out, sizeof out);
}

static keel_heap_t *heap;
static void *block;
static void *volatile sink;
static void make_heap(void) {
  heap = keel_heap_new();
  snprintf(heaptext, 64, "%p", (void *)heap);
  block = keel_heap_malloc(heap, 100);
  memset(block, 5, 100);
}
/* Run fn on another thread and wait for it (the abort ends the child there). */
static void on_other_thread(void *(*fn)(void *)) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, NULL) != 0) abort();
  pthread_join(t, NULL);
}

static void *t_malloc(void *a) { sink = keel_heap_malloc(heap, 32); return a; }
static void *t_calloc(void *a) { sink = keel_heap_calloc(heap, 4, 8); return a; }
static void *t_realloc(void *a) { sink = keel_heap_realloc(heap, block, 1000); return a; }
static void *t_aligned(void *a) { sink = keel_heap_aligned_alloc(heap, 256, 32); return a; }
static void *t_destroy(void *a) { keel_heap_destroy(heap); return a; }
static void *t_delete(void *a) { keel_heap_delete(heap); return a; }
static void foreign_malloc(void) { make_heap(); on_other_thread(t_malloc); }
static void foreign_calloc(void) { make_heap(); on_other_thread(t_calloc); }
static void foreign_realloc(void) { make_heap(); on_other_thread(t_realloc); }
static void foreign_aligned(void) { make_heap(); on_other_thread(t_aligned); }
static void foreign_destroy(void) { make_heap(); on_other_thread(t_destroy); }
static void foreign_delete(void) { make_heap(); on_other_thread(t_delete); }

/* The heap's thread exits: its handle is dead, for every thread. */
static void *t_make_and_exit(void *a) { make_heap(); return a; }
static void dead_malloc(void) { on_other_thread(t_make_and_exit); sink = keel_heap_malloc(heap, 32); }
static void dead_destroy(void) { on_other_thread(t_make_and_exit); keel_heap_destroy(heap); }

/* KEEL_ON_ERROR=warn: the foreign calls are reported and refused; the owner
 * still has every block and can go on using the heap. Exit status 0 when
 * all of that held. */
static int foreign_results;
static void *t_all(void *a) {
  errno = 0; if (keel_heap_malloc(heap, 32) == NULL && errno == EINVAL) foreign_results++;
  errno = 0; if (keel_heap_calloc(heap, 4, 8) == NULL && errno == EINVAL) foreign_results++;
  errno = 0; if (keel_heap_realloc(heap, block, 1000) == NULL && errno == EINVAL) foreign_results++;
  errno = 0; if (keel_heap_aligned_alloc(heap, 256, 32) == NULL && errno == EINVAL) foreign_results++;
  keel_heap_destroy(heap);
  keel_heap_delete(heap);
  return a;
}
static bool count_visit(void *b, size_t size, void *arg) { (void)b; (void)size; (*(size_t *)arg)++; return true; }
static void warn_refused(void) {
  keel_option_set(KEEL_OPTION_ON_ERROR, 1);
  make_heap();
  void *more = keel_heap_malloc(heap, 5000);
  on_other_thread(t_all);
  bool ok = foreign_results == 4;
  for (int i = 0; i < 100; i++) ok = ok && ((unsigned char *)block)[i] == 5;
  ok = ok && keel_heap_contains(heap, block) && keel_heap_contains(heap, more);
  size_t n = 0;
  ok = ok && keel_heap_visit(heap, count_visit, &n) && n == 2;
  void *again = keel_heap_malloc(heap, 64);
  ok = ok && again != NULL && keel_heap_contains(heap, again);
  keel_heap_destroy(heap);   /* the owner's destroy still works */
  _exit(ok ? 0 : 3);
}

static void expect_abort(const char *name, void (*fn)(void), const char *who) {
  int st = run(fn);
  char want[160];
  snprintf(want, sizeof want, "keel: %s(): invalid pointer %s: not a live heap of this thread", who, heaptext);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "%s: child %s %d, stderr: %s", name,
         WIFSIGNALED(st) ? "died of signal" : "exited with", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);
  CHECKF(heaptext[0] != '\0' && strstr(out, want) != NULL, "%s: wanted \"%s\", stderr: %s", name, want, out);
}

int main(void) {
  heaptext = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (heaptext == MAP_FAILED) return 2;
  CHECKF(keel_option_get(KEEL_OPTION_ON_ERROR) == 0, "run without KEEL_ON_ERROR=warn");
  expect_abort("another thread allocates", foreign_malloc, "keel_heap_malloc");
  expect_abort("another thread callocs", foreign_calloc, "keel_heap_calloc");
  expect_abort("another thread reallocs", foreign_realloc, "keel_heap_realloc");
  expect_abort("another thread aligned-allocs", foreign_aligned, "keel_heap_aligned_alloc");
  expect_abort("another thread destroys", foreign_destroy, "keel_heap_destroy");
  expect_abort("another thread deletes", foreign_delete, "keel_heap_delete");
  expect_abort("allocation from a heap whose thread exited", dead_malloc, "keel_heap_malloc");
  expect_abort("destroy of a heap whose thread exited", dead_destroy, "keel_heap_destroy");

  int st = run(warn_refused);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "warn: foreign calls refused, heap whole: status %d, stderr: %s", st, out);
  const char *fns[] = { "keel_heap_malloc", "keel_heap_calloc", "keel_heap_realloc", "keel_heap_aligned_alloc",
                        "keel_heap_destroy", "keel_heap_delete" };
  for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
    char want[200];
    snprintf(want, sizeof want, "keel: %s(): invalid pointer %s: not a live heap of this thread", fns[i], heaptext);
    const char *at = strstr(out, want), *eol = at ? strchr(at, '\n') : NULL;
    const char *ign = at ? strstr(at, "(ignored: KEEL_ON_ERROR=warn)") : NULL;
    CHECKF(ign != NULL && (eol == NULL || ign < eol),
           "warn: wanted \"%s ... (ignored: KEEL_ON_ERROR=warn)\" on one line, stderr: %s", want, out);
  }
  return KL_DONE();
}
