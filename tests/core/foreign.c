/* foreign.c — foreign caches (src/free.c): small blocks a thread frees from
 * other threads' pages, kept for its own next mallocs.
 *  1. a thread that frees another thread's blocks and then allocates that
 *     size gets exactly those blocks back, with their contents writable,
 *     while the owner's other blocks stay intact; once they are used up,
 *     its next blocks of that size are new ones of its own (the cache,
 *     which malloc's fast path pops in place of a page, ran dry and the
 *     page is back);
 *  2. a kept block is still a freed block: freeing it again is reported as
 *     a double free (death test), malloc_usable_size refuses it, and the
 *     owner's keel_heap_visit and keel_heap_contains do not count it;
 *  3. the blocks go back to their owner's pages when the keeping thread
 *     exits, when it calls malloc_trim(0), and when its cache for the size
 *     is full: the owner then allocates them again;
 *  4. blocks of a first-class heap are never kept (keel_heap_destroy frees
 *     its pages whole), so no other thread is handed one after the destroy;
 *  5. a thread whose first call is a free (a consumer that never allocates)
 *     gets a heap and a cache from it: a double free there is still caught,
 *     and its blocks come back at exit and on overflow; so do blocks freed
 *     by a key destructor that runs after keel's own exit hook. When such a
 *     thread then allocates, it is not handed the blocks it freed (they
 *     sit among their owner's: cache-scratch) but they go back to the
 *     owner at once. Such a thread keeps one run of blocks of one page per
 *     size: a block of another page sends the run back, so blocks freed
 *     alternately from two pages are all back but the last one while the
 *     thread lives.
 * NO_FOREIGN=1 (the secure build, which keeps nothing) skips the address
 * checks of 1 and 3 and asserts instead that no block was kept. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"
#include "../harness.h"

#define N 64
#define SIZE 48
static bool no_foreign;

static void fill(uint8_t *p, size_t n, unsigned seed) { for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed * 13 + i); }
static bool same(const uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) if (p[i] != (uint8_t)(seed * 13 + i)) return false;
  return true;
}
static bool in_set(void *const *set, size_t n, const void *p) {
  for (size_t i = 0; i < n; i++) if (set[i] == p) return true;
  return false;
}

/* ---- the keeping thread ------------------------------------------------
 * It frees the owner's blocks, runs its job, then waits at a barrier until
 * the owner has checked what it must check while the keeper still lives. */
typedef enum { JOB_REUSE, JOB_EXIT, JOB_TRIM, JOB_OVERFLOW, JOB_USER, JOB_HOLD, JOB_DRY } job_t;
typedef struct {
  job_t job;
  bool free_only;              /* no malloc before the frees */
  void **blocks;               /* the owner's blocks, to free */
  size_t n;
  void *got[N];                /* what this thread allocated afterwards */
  size_t kept;                 /* how many of got[] were among blocks[] */
  size_t more_kept;            /* JOB_DRY: how many of its next N blocks were among blocks[] or got[] */
  bool more_ok;                /* ...and they kept their contents (it frees them itself) */
  pthread_barrier_t freed, checked;
  pthread_t th;
} task_t;

static void *keeper(void *arg) {
  task_t *t = arg;
  if (!t->free_only) free(malloc(1000));   /* a heap before the frees */
  for (size_t i = 0; i < t->n; i++) free(t->blocks[i]);
  if (t->job == JOB_TRIM) malloc_trim(0);
  if (t->job == JOB_REUSE || t->job == JOB_USER || t->job == JOB_DRY) {
    for (int i = 0; i < N; i++) {
      t->got[i] = malloc(SIZE);
      if (in_set(t->blocks, t->n, t->got[i])) t->kept++;
      fill(t->got[i], SIZE, 100 + (unsigned)i);
    }
  }
  if (t->job == JOB_DRY) {
    /* Freed here, so that no page of the size outlives the thread for
     * the next tests' threads to adopt. */
    void *more[N];
    for (int i = 0; i < N; i++) {
      more[i] = malloc(SIZE);
      if (in_set(t->blocks, t->n, more[i]) || in_set(t->got, N, more[i])) t->more_kept++;
      fill(more[i], SIZE, 200 + (unsigned)i);
    }
    t->more_ok = true;
    for (int i = 0; i < N; i++) { t->more_ok &= same(more[i], SIZE, 200 + (unsigned)i); free(more[i]); }
  }
  pthread_barrier_wait(&t->freed);
  pthread_barrier_wait(&t->checked);
  return NULL;
}
/* Start the keeper on t and wait until it has done its job. */
static void keeper_start(task_t *t) {
  pthread_barrier_init(&t->freed, NULL, 2);
  pthread_barrier_init(&t->checked, NULL, 2);
  CHECK(pthread_create(&t->th, NULL, keeper, t) == 0);
  pthread_barrier_wait(&t->freed);
}
/* Let it exit. */
static void keeper_end(task_t *t) {
  pthread_barrier_wait(&t->checked);
  CHECK(pthread_join(t->th, NULL) == 0);
  pthread_barrier_destroy(&t->freed);
  pthread_barrier_destroy(&t->checked);
}

/* After a job handed the keeper our blocks: allocate until the first n of
 * them came back to this (the owning) thread, or give up. */
static bool owner_gets_back(void **freed, size_t n) {
  enum { TRIES = 20000 };
  void **mine = malloc(TRIES * sizeof(void *));
  size_t back = 0, k = 0;
  for (; k < TRIES && back < n; k++) {
    mine[k] = malloc(SIZE);
    if (in_set(freed, n, mine[k])) back++;
  }
  for (size_t i = 0; i < k; i++) free(mine[i]);
  free(mine);
  return back == n;
}

static void test_reuse(void) {
  void *blocks[N], *stay[N];
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(SIZE); fill(blocks[i], SIZE, (unsigned)i);
    stay[i] = malloc(SIZE); fill(stay[i], SIZE, 50 + (unsigned)i);
  }
  task_t t = { .job = JOB_REUSE, .blocks = blocks, .n = N };
  keeper_start(&t);
  keeper_end(&t);
  if (no_foreign) CHECKF(t.kept == 0, "the secure build kept %zu blocks", t.kept);
  else CHECKF(t.kept == N, "the freeing thread got back %zu of the %d blocks it freed", t.kept, N);
  bool ok = true;
  for (int i = 0; i < N; i++) ok &= same(t.got[i], SIZE, 100 + (unsigned)i) && same(stay[i], SIZE, 50 + (unsigned)i);
  CHECK(ok);
  for (int i = 0; i < N; i++) { free(t.got[i]); free(stay[i]); }
}

/* The cache runs dry: after the blocks it freed, the thread's next blocks
 * of the size are new ones (its page is back in the fast path's table). */
static void test_dry(void) {
  void *blocks[N];
  for (int i = 0; i < N; i++) { blocks[i] = malloc(SIZE); fill(blocks[i], SIZE, (unsigned)i); }
  task_t t = { .job = JOB_DRY, .blocks = blocks, .n = N };
  keeper_start(&t);
  keeper_end(&t);
  if (!no_foreign) CHECKF(t.kept == N, "the freeing thread got back %zu of the %d blocks it freed", t.kept, N);
  CHECKF(t.more_kept == 0, "%zu of its next %d blocks were blocks it freed or already had", t.more_kept, N);
  bool ok = t.more_ok;
  for (int i = 0; i < N; i++) ok &= same(t.got[i], SIZE, 100 + (unsigned)i);
  CHECK(ok);
  for (int i = 0; i < N; i++) free(t.got[i]);
}

/* A thread whose first call is a free, then mallocs: it gets none of the
 * blocks it freed, and they are back with the owner while it lives. */
static void test_free_first(void) {
  void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = malloc(SIZE);
  task_t t = { .job = JOB_REUSE, .free_only = true, .blocks = blocks, .n = N };
  keeper_start(&t);
  CHECKF(t.kept == 0, "a thread that freed before its first malloc was handed %zu of those blocks", t.kept);
  CHECKF(owner_gets_back(blocks, N), "blocks freed before the thread's first malloc did not go back to the owner");
  keeper_end(&t);
  bool ok = true;
  for (int i = 0; i < N; i++) ok &= same(t.got[i], SIZE, 100 + (unsigned)i);
  CHECK(ok);
  for (int i = 0; i < N; i++) free(t.got[i]);
}

/* The keeper exits, or trims, or overflows its cache: our blocks come back.
 * Trim and overflow are checked while the keeper still lives. An
 * overflowing cache gives back a full cache's worth at a time: the first
 * N blocks it was handed are back while it may still hold later ones. */
static void test_return(job_t job, size_t n, bool free_only) {
  void **blocks = malloc(n * sizeof(void *));
  for (size_t i = 0; i < n; i++) blocks[i] = malloc(SIZE);
  task_t t = { .job = job, .free_only = free_only, .blocks = blocks, .n = n };
  keeper_start(&t);
  if (job != JOB_EXIT) CHECKF(owner_gets_back(blocks, N), "job %d: the owner did not get its blocks back from a live thread", (int)job);
  keeper_end(&t);
  if (job == JOB_EXIT) CHECKF(owner_gets_back(blocks, n), "the owner did not get its %zu blocks back after the thread exited", n);
  free(blocks);
}

/* A thread that only frees, handed blocks of two pages in turn: each block
 * ends the other page's run, which goes back to the owner at once. */
static void test_runs(void) {
  enum { MANY = 3000 };   /* 48-byte blocks: more than two 64 KiB pages */
  void **all = malloc(MANY * sizeof(void *)), *order[2 * N];
  for (size_t i = 0; i < MANY; i++) all[i] = malloc(SIZE);
  uintptr_t first = (uintptr_t)all[0] >> 16, second = 0;
  size_t na = 0, nb = 0;
  for (size_t i = 0; i < MANY; i++) {
    uintptr_t pg = (uintptr_t)all[i] >> 16;
    if (pg == first && na < N) { order[2 * na++] = all[i]; all[i] = NULL; }
    else if (pg != first && (second == 0 || pg == second) && nb < N) { second = pg; order[2 * nb++ + 1] = all[i]; all[i] = NULL; }
  }
  CHECKF(na == N && nb == N, "found %zu and %zu blocks on two pages", na, nb);
  if (na == N && nb == N) {
    task_t t = { .job = JOB_HOLD, .free_only = true, .blocks = order, .n = 2 * N };
    keeper_start(&t);
    CHECKF(owner_gets_back(order, 2 * N - 1), "blocks freed in turn from two pages were kept by a live thread that only frees");
    keeper_end(&t);
  }
  for (size_t i = 0; i < MANY; i++) free(all[i]);
  free(all);
}

/* A key destructor that runs after keel's exit hook (its key is newer)
 * frees our blocks: they must not be stranded in a cache that no hook
 * would flush again. */
static pthread_key_t late_key;
static void late_free(void *arg) {
  task_t *t = arg;
  for (size_t i = 0; i < t->n; i++) free(t->blocks[i]);
}
static void *late_freer(void *arg) {
  free(malloc(1000));          /* keel's hook is registered first */
  pthread_setspecific(late_key, arg);
  return NULL;
}
static void test_late_destructor(void) {
  void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = malloc(SIZE);
  task_t t = { .blocks = blocks, .n = N };
  pthread_t th;
  CHECK(pthread_key_create(&late_key, late_free) == 0);
  CHECK(pthread_create(&th, NULL, late_freer, &t) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  CHECKF(owner_gets_back(blocks, N), "blocks freed in a late key destructor did not come back");
  pthread_key_delete(late_key);
}

/* Blocks of a first-class heap are never kept: after destroy, nobody is
 * handed one. */
static void test_user_heap(void) {
  keel_heap_t *h = keel_heap_new();
  void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = keel_heap_malloc(h, SIZE);
  task_t t = { .job = JOB_USER, .blocks = blocks, .n = N };
  keeper_start(&t);
  keeper_end(&t);
  CHECKF(t.kept == 0, "another thread was handed %zu blocks of a first-class heap", t.kept);
  keel_heap_destroy(h);
  bool ok = true;
  for (int i = 0; i < N; i++) ok &= same(t.got[i], SIZE, 100 + (unsigned)i);
  CHECK(ok);
  for (int i = 0; i < N; i++) free(t.got[i]);
}

/* ---- a kept block is a freed block ------------------------------------ */
static void *kept_block;
static void *free_twice(void *p) { free(malloc(1000)); free(p); free(p); return NULL; }
static void *free_twice_only(void *p) { free(p); free(p); return NULL; }   /* no malloc first */

static bool count_visit(void *block, size_t size, void *arg) {
  (void)size;
  if (block == kept_block) ++*(int *)arg;
  return true;
}

/* While another thread keeps one of our blocks, our heap does not list it. */
static void test_still_freed(void) {
  void *keep_alive = malloc(SIZE);   /* the page stays in our heap */
  kept_block = malloc(SIZE);
  task_t t = { .job = JOB_HOLD, .blocks = &kept_block, .n = 1 };
  keeper_start(&t);
  int seen = 0;
  keel_heap_visit(keel_heap_default(), count_visit, &seen);
  CHECKF(seen == 0, "keel_heap_visit counted a freed block %d times", seen);
  CHECK(!keel_heap_contains(keel_heap_default(), kept_block));
  keeper_end(&t);
  free(keep_alive);
}

/* In a forked child: another thread runs fn on one of our blocks. */
static void in_other_thread(void *(*fn)(void *)) {
  void *p = malloc(SIZE);
  pthread_t th;
  pthread_create(&th, NULL, fn, p);
  pthread_join(th, NULL);
}
static void child_double_free(void) { in_other_thread(free_twice); }
static void child_double_free_only(void) { in_other_thread(free_twice_only); }

/* A thread keeps the block, then asks its size: refused, as any freed block. */
static void *usable_of_kept(void *p) { free(malloc(1000)); free(p); malloc_usable_size(p); return NULL; }
static void child_usable(void) { in_other_thread(usable_of_kept); }

static void expect_abort(void (*fn)(void), const char *want, const char *what) {
  char out[2048];
  int st = kl_t_fork(fn, NULL, out, sizeof out);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "%s: the child was not aborted (status %d)", what, st);
  CHECKF(strstr(out, want) != NULL, "%s: no \"%s\" in: %s", what, want, out);
}

int main(void) {
  no_foreign = getenv("NO_FOREIGN") != NULL;
  test_dry();   /* first: no other thread's abandoned pages to adopt yet */
  test_reuse();
  test_still_freed();
  expect_abort(child_double_free, "double free", "a kept block freed again");
  expect_abort(child_usable, "already freed", "malloc_usable_size of a kept block");
  expect_abort(child_double_free_only, "double free", "a block freed twice by a thread that never allocated");
  test_return(JOB_EXIT, N, false);
  test_return(JOB_TRIM, N, false);
  test_return(JOB_OVERFLOW, 4000, false);   /* 4000 x 48 B: more than a cache holds */
  test_return(JOB_EXIT, N, true);
  test_return(JOB_OVERFLOW, 4000, true);
  test_return(JOB_TRIM, N, true);
  test_runs();
  test_late_destructor();
  test_free_first();
  test_user_heap();
  return KL_DONE();
}
