/* firstop.c — the first call a thread makes, and calls after keel has torn
 * the thread down.
 *
 * Part 1: for every size class keel has (16 B steps to 1 KiB, four per
 * power of two to 128 KiB, then huge sizes) and for every entry point
 * (malloc, calloc, realloc(NULL), aligned_alloc, posix_memalign, free of a
 * block from another thread, free(NULL), usable_size), a brand-new thread
 * makes that call first. The block must be usable, aligned and intact.
 *
 * Part 2: a pthread key created after keel's own (so glibc runs its
 * destructor after keel's, which abandons the thread's heap) allocates,
 * reallocs and frees in the destructor, frees blocks the thread made while
 * alive, re-arms itself for the next destructor round, and hands one block
 * to the main thread. Repeated over many threads, in-use bytes and RSS must
 * stay flat: a heap revived after teardown must not leak. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "rel.h"
#include "../harness.h"

static _Atomic long bad;
#define BAD(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); bad++; } while (0)

typedef struct { int kind; size_t size; void *given; void *out; } job_t;

static void *first_call(void *arg) {
  job_t *j = arg;
  void *p = NULL;
  size_t n = j->size;
  switch (j->kind) {
  case 0: p = keel_malloc(n); break;
  case 1: p = keel_calloc(1, n);
    if (p) for (size_t i = 0; i < n; i += (n > 4096 ? 509 : 1)) if (((unsigned char *)p)[i]) { BAD("calloc(%zu) byte %zu not zero", n, i); break; }
    break;
  case 2: p = keel_realloc(NULL, n); break;
  case 3: p = keel_aligned_alloc(n >= 4096 ? 4096 : 64, n); break;
  case 4: if (keel_posix_memalign(&p, 256, n)) p = NULL; break;
  case 5:   /* the first call frees a block another thread made */
    if (!rel_check(j->given, n, n)) BAD("given block damaged");
    keel_free(j->given);
    p = keel_malloc(n);
    break;
  case 6: keel_free(NULL); if (keel_usable_size(NULL) != 0) BAD("usable_size(NULL)"); p = keel_malloc(n); break;
  }
  if (!p) { BAD("first call kind %d size %zu failed", j->kind, n); return NULL; }
  if ((uintptr_t)p % 16) BAD("first call kind %d size %zu: %p misaligned", j->kind, n, p);
  if (keel_usable_size(p) < n) BAD("usable %zu < %zu", keel_usable_size(p), n);
  rel_fill(p, n, n);
  j->out = p;   /* freed by main: a remote free of a dead thread's block */
  return NULL;
}

static size_t sizes[128];
static int nsizes;
static void make_sizes(void) {
  for (size_t s = 16; s <= 1024; s += 16) sizes[nsizes++] = s;
  for (size_t b = 1024; b < 128 * 1024; b *= 2)
    for (int q = 1; q <= 4; q++) sizes[nsizes++] = b + b / 4 * q;
  sizes[nsizes++] = 1; sizes[nsizes++] = 200 * 1024; sizes[nsizes++] = 4 << 20; sizes[nsizes++] = (4 << 20) + 1;
}

/* ---- part 2 ---- */
static pthread_key_t late_key;
static _Atomic(void *) handed[64];
static void late_destructor(void *v) {
  void **mine = v;   /* the thread's blocks, still live, freed only now */
  uint64_t rng = (uintptr_t)v;
  for (int i = 0; i < 8; i++) {
    if (!rel_check(mine[i], 100 + i * 1000, i)) BAD("live block damaged at teardown");
    keel_free(mine[i]);
  }
  void *p = keel_malloc(24);
  void *q = keel_calloc(3, 5000);
  if (!p || !q) { BAD("allocation after teardown failed"); return; }
  rel_fill(p, 24, 1);
  p = keel_realloc(p, 70000);
  if (!p || !rel_check(p, 24, 1)) BAD("realloc after teardown lost data");
  keel_free(q);
  rel_fill(p, 70000, 2);
  void *old = atomic_exchange(&handed[rel_below(&rng, 64)], p);
  if (old) keel_free(old);
  keel_free(mine);
}
static void *late_body(void *arg) {
  void **mine = keel_malloc(8 * sizeof *mine);
  if (!mine) { BAD("malloc"); return NULL; }
  for (int i = 0; i < 8; i++) { mine[i] = keel_malloc(100 + i * 1000); rel_fill(mine[i], 100 + i * 1000, i); }
  pthread_setspecific(late_key, mine);
  return arg;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 2000;
  make_sizes();
  /* Part 1 */
  int threads = 0;
  for (int kind = 0; kind <= 6; kind++)
    for (int i = 0; i < nsizes; i++) {
      job_t j = { kind, sizes[i], NULL, NULL };
      if (kind == 5) { j.given = keel_malloc(j.size); rel_fill(j.given, j.size, j.size); }
      pthread_t t;
      if (pthread_create(&t, NULL, first_call, &j)) { BAD("pthread_create"); continue; }
      pthread_join(t, NULL);
      threads++;
      if (j.out) { if (!rel_check(j.out, j.size, j.size)) BAD("block of a dead thread damaged"); keel_free(j.out); }
    }
  printf("first calls: %d threads, %d sizes x 7 entry points\n", threads, nsizes);
  CHECKF(bad == 0, "%ld failures in part 1", (long)bad);

  /* Part 2: keel is initialized (part 1), so this key comes after keel's. */
  CHECK(pthread_key_create(&late_key, late_destructor) == 0);
  keel_stats_t s0, s1;
  long rss0 = 0;
  for (int r = 0; r < rounds; r++) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, late_body, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    if (r == rounds / 10) { rss0 = rel_rss_kib(); keel_stats_get(&s0); }
  }
  keel_stats_get(&s1);
  long rss1 = rel_rss_kib();
  for (int i = 0; i < 64; i++) { void *p = atomic_exchange(&handed[i], NULL); if (p) { if (!rel_check(p, 70000, 2)) BAD("handed block damaged"); keel_free(p); } }
  printf("after teardown: %d threads; in use %zu -> %zu B; RSS %ld -> %ld KiB\n",
         rounds * 4, s0.in_use_bytes, s1.in_use_bytes, rss0, rss1);
  CHECKF(bad == 0, "%ld failures in part 2", (long)bad);
  /* Flat: the 64 handed-over blocks are the only thing that may change. */
  CHECKF(s1.in_use_bytes <= s0.in_use_bytes + 64 * 80 * 1024, "in use grew %zu -> %zu", s0.in_use_bytes, s1.in_use_bytes);
  if (!getenv("REL_NO_RSS")) CHECKF(rss1 <= rss0 + 16384, "RSS grew %ld -> %ld KiB", rss0, rss1);   /* see churn.c */
  return KL_DONE();
}
