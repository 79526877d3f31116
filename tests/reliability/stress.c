/* stress.c — the large multi-threaded stress test of keel's keel_* API.
 *
 *   stress THREADS OPS_PER_THREAD GENERATIONS [MAX_HUGE_KIB] [SEED]
 *
 * THREADS workers run at once; each does OPS_PER_THREAD operations and
 * exits, and the main thread replaces it until GENERATIONS workers have run
 * in total, so blocks allocated by dead threads live on and are freed by
 * threads that never owned them (keel's abandon/reclaim path). Every block
 * carries a cookie (rel.h) checked before it is freed or reallocated.
 *
 * Blocks pass between threads through a shared array of atomic slots: a
 * worker swaps its fresh block into a random slot and frees (or keeps) what
 * it got back, so a third or more of all frees are remote. The program
 * counts them and fails if fewer than a third are.
 *
 * At the end every block is freed and keel_stats_get must reconcile: bytes
 * allocated and freed since the start are equal and in-use bytes return to
 * where they were. Exit status 0 and "N passed, 0 failed" when all is well. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "rel.h"
#include "../harness.h"

#define SHARED 4096
#define LOCAL  256

typedef struct { void *p; size_t size; uint64_t seed; int owner; } blk_t;
typedef struct { _Atomic(blk_t *) slot[SHARED]; } shared_t;

static shared_t shared;
static long ops_per_thread;
static size_t max_huge;
static uint64_t base_seed;
static _Atomic long n_frees, n_remote, n_allocs, n_realloc, n_bad;
static _Atomic size_t bytes_requested;

/* The descriptor itself is a keel block too: more traffic, and it is freed
 * by whichever thread frees the block it describes. */
static blk_t *blk_new(uint64_t *rng, int me) {
  size_t size = rel_size(rng, max_huge);
  void *p = NULL;
  unsigned kind = (unsigned)rel_below(rng, 10);
  size_t align = 16;
  if (kind < 6) p = keel_malloc(size);
  else if (kind < 8) {
    size_t n = 1 + rel_below(rng, 8);
    size = (size + n - 1) / n * n;
    p = keel_calloc(n, size / n);
    if (p) {   /* calloc must give zeros; check a sample (all of a small block) */
      const unsigned char *b = p;
      size_t step = size <= 4096 ? 1 : 97;
      for (size_t i = 0; i < size; i += step) if (b[i]) { fprintf(stderr, "calloc byte %zu not zero\n", i); n_bad++; break; }
    }
  } else if (kind == 8) {
    align = (size_t)1 << (4 + rel_below(rng, 10));       /* 16 B .. 8 KiB */
    if (rel_below(rng, 50) == 0) align = (size_t)1 << (14 + rel_below(rng, 9));  /* up to 4 MiB, rarely */
    p = keel_aligned_alloc(align, size);
  } else {
    align = (size_t)1 << (3 + rel_below(rng, 10));
    if (keel_posix_memalign(&p, align, size) != 0) p = NULL;
  }
  if (p == NULL) { fprintf(stderr, "allocation of %zu failed (errno %d)\n", size, errno); n_bad++; return NULL; }
  if ((uintptr_t)p % align || (uintptr_t)p % 16) { fprintf(stderr, "%p not aligned to %zu\n", p, align); n_bad++; }
  if (keel_usable_size(p) < size) { fprintf(stderr, "usable %zu < %zu\n", keel_usable_size(p), size); n_bad++; }
  blk_t *b = keel_malloc(sizeof *b);
  if (b == NULL) { n_bad++; keel_free(p); return NULL; }
  b->p = p; b->size = size; b->seed = rel_next(rng); b->owner = me;
  rel_fill(p, size, b->seed);
  n_allocs++;
  bytes_requested += size;
  return b;
}

static void blk_free(blk_t *b, int me) {
  if (b == NULL) return;
  if (!rel_check(b->p, b->size, b->seed)) n_bad++;
  if (b->owner != me) n_remote++;
  n_frees++;
  if (b->size & 1) keel_free_sized(b->p, b->size);
  else keel_free(b->p);
  keel_free(b);
}

/* Grow or shrink in place or by moving; the kept prefix must survive. */
static void blk_realloc(blk_t *b, uint64_t *rng, int me) {
  if (!rel_check(b->p, b->size, b->seed)) { n_bad++; return; }
  size_t nsize = rel_below(rng, 4) == 0 ? rel_size(rng, max_huge) : b->size / 2 + 1 + rel_below(rng, b->size + 64);
  void *q = keel_realloc(b->p, nsize);
  if (q == NULL) { fprintf(stderr, "realloc to %zu failed\n", nsize); n_bad++; return; }
  size_t keep = nsize < b->size ? nsize : b->size;
  /* The kept prefix must be what rel_fill wrote (past the header, whose
   * bytes are not from the byte stream). */
  uint64_t tag = rel_tag(b->size, b->seed);
  const unsigned char *nb = q;
  size_t step = keep <= 64 * 1024 ? 1 : 61;
  for (size_t i = b->size >= sizeof(rel_hdr_t) ? sizeof(rel_hdr_t) : 0; i < keep; i += step)
    if (nb[i] != rel_byte(tag, i)) { fprintf(stderr, "realloc lost byte %zu of %zu\n", i, keep); n_bad++; break; }
  if (b->owner != me) n_remote++;   /* the old block was freed by realloc */
  b->p = q; b->size = nsize; b->seed = rel_next(rng); b->owner = me;
  rel_fill(q, nsize, b->seed);
  n_realloc++;   /* not in bytes_requested: keel counts an in-place resize by its difference */
}

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  uint64_t rng = base_seed ^ ((uint64_t)me * 0x100000001b3ull);
  blk_t *local[LOCAL] = { 0 };
  for (long op = 0; op < ops_per_thread; op++) {
    unsigned r = (unsigned)rel_below(&rng, 100);
    if (r < 45) {                       /* allocate into the local set */
      size_t i = rel_below(&rng, LOCAL);
      blk_free(local[i], me);
      local[i] = blk_new(&rng, me);
    } else if (r < 80) {                /* trade with other threads */
      size_t i = rel_below(&rng, LOCAL), j = rel_below(&rng, SHARED);
      blk_t *mine = local[i] ? local[i] : blk_new(&rng, me);
      local[i] = NULL;
      blk_t *got = atomic_exchange_explicit(&shared.slot[j], mine, memory_order_acq_rel);
      if (got && rel_below(&rng, 3)) blk_free(got, me);
      else local[i] = got;
    } else if (r < 88) {                /* realloc something local */
      size_t i = rel_below(&rng, LOCAL);
      if (local[i]) blk_realloc(local[i], &rng, me);
    } else {                            /* plain free */
      size_t i = rel_below(&rng, LOCAL);
      blk_free(local[i], me); local[i] = NULL;
    }
  }
  /* Exit leaving blocks behind: half go to the shared array (freed later
   * by other threads, after this thread's heap is gone), half are freed. */
  for (size_t i = 0; i < LOCAL; i++) {
    if (!local[i]) continue;
    if (i & 1) {
      blk_t *got = atomic_exchange_explicit(&shared.slot[rel_below(&rng, SHARED)], local[i], memory_order_acq_rel);
      blk_free(got, me);
    } else blk_free(local[i], me);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  ops_per_thread = argc > 2 ? atol(argv[2]) : 20000;
  long generations = argc > 3 ? atol(argv[3]) : threads * 4;
  max_huge = (argc > 4 ? (size_t)atol(argv[4]) : 4096) * 1024;
  base_seed = argc > 5 ? strtoull(argv[5], NULL, 0) : 0x6b65656cull;
  if (threads < 1 || threads > 1024 || generations < threads) { fprintf(stderr, "bad arguments\n"); return 2; }

  keel_stats_t s0, s1;
  keel_stats_get(&s0);
  pthread_t *tid = calloc((size_t)threads, sizeof *tid);
  long started = 0, joined = 0;
  for (; started < threads; started++)
    CHECK(pthread_create(&tid[started], NULL, worker, (void *)(intptr_t)(started + 1)) == 0);
  /* Replace workers round-robin as they finish. */
  while (joined < generations) {
    long slot = joined % threads;
    pthread_join(tid[slot], NULL);
    joined++;
    if (started < generations) {
      CHECK(pthread_create(&tid[slot], NULL, worker, (void *)(intptr_t)(started + 1)) == 0);
      started++;
    }
  }
  for (size_t j = 0; j < SHARED; j++) blk_free(atomic_exchange(&shared.slot[j], NULL), 0);
  free(tid);
  keel_stats_get(&s1);

  long frees = n_frees + n_realloc, remote = n_remote;
  printf("stress: %d threads x %ld ops, %ld generations: %ld allocs, %ld reallocs, %ld frees, %ld remote (%.1f%%), %.1f MiB requested in new blocks\n",
         threads, ops_per_thread, generations, (long)n_allocs, (long)n_realloc, (long)n_frees, remote,
         frees ? 100.0 * remote / frees : 0.0, bytes_requested / 1048576.0);
  CHECKF(n_bad == 0, "%ld damaged or failed blocks", (long)n_bad);
  CHECKF(remote * 3 >= frees, "only %ld of %ld frees were remote", remote, frees);
  size_t alloc_d = s1.allocated_bytes_total - s0.allocated_bytes_total;
  size_t freed_d = s1.freed_bytes_total - s0.freed_bytes_total;
  printf("stats: allocated %zu B, freed %zu B since start; in use %zu -> %zu B; threads seen %zu\n",
         alloc_d, freed_d, s0.in_use_bytes, s1.in_use_bytes, s1.threads_seen);
  /* With the malloc override (the release library), glibc's own blocks
   * (thread descriptors' DTVs, stdio buffers) are keel blocks too and some
   * outlive the test, so the books balance to within their size; with only
   * keel_* going to keel (REL_EXACT=1: a build with KEEL_OVERRIDE=OFF)
   * they balance to the byte. Either way the three counters must agree. */
  ptrdiff_t net = (ptrdiff_t)(alloc_d - freed_d), in_use_d = (ptrdiff_t)(s1.in_use_bytes - s0.in_use_bytes);
  ptrdiff_t slack = getenv("REL_EXACT") ? 0 : 64 * 1024;
  CHECKF(net == in_use_d, "allocated-freed %td != change of in-use %td", net, in_use_d);
  CHECKF(net <= slack && net >= -slack, "allocated %zu, freed %zu (net %td, allowed %td)", alloc_d, freed_d, net, slack);
  CHECKF(alloc_d >= bytes_requested, "keel counted %zu B allocated, the program asked for %zu in new blocks", alloc_d, (size_t)bytes_requested);
  CHECKF(s1.threads_seen >= s0.threads_seen + (size_t)generations, "threads seen %zu", s1.threads_seen);
  return KL_DONE();
}
