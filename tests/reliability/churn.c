/* churn.c — thread churn: THREADS short-lived threads (default 100,000),
 * BATCH at a time, each allocating a handful of blocks of mixed sizes,
 * freeing some, and leaving the rest in a shared ring for later threads to
 * free. Every exit abandons the thread's heap and segments; every start
 * must reuse them (keel recycles heap structs and adopts abandoned
 * segments). Passes when every block's cookie survives and resident memory
 * stays flat: RSS at the end within max(16 MiB, 25%) of RSS after the first
 * tenth of the run, once the working set (the ring) has been built.
 *
 *   churn [THREADS] [BATCH] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "rel.h"
#include "../harness.h"

#ifndef RING
#define RING 2048
#endif
typedef struct { void *p; size_t size; uint64_t seed; } cell_t;
static _Atomic(cell_t *) ring[RING];
static _Atomic long bad, made;

static void drop(cell_t *c) {
  if (!c) return;
  if (!rel_check(c->p, c->size, c->seed)) bad++;
  keel_free(c->p);
  keel_free(c);
}

static void *body(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull;
  void *mine[8];
  size_t sz[8];
  for (int i = 0; i < 8; i++) {       /* some blocks that die with the thread */
    sz[i] = rel_size(&rng, 512 * 1024);
    mine[i] = keel_malloc(sz[i]);
    if (!mine[i]) { bad++; return NULL; }
    rel_fill(mine[i], sz[i], i);
  }
  for (int k = 0; k < 4; k++) {       /* and some that outlive it */
    cell_t *c = keel_malloc(sizeof *c);
    if (!c) { bad++; break; }
    c->size = 1 + rel_below(&rng, 2048);
    c->seed = rel_next(&rng);
    c->p = keel_malloc(c->size);
    if (!c->p) { bad++; keel_free(c); break; }
    rel_fill(c->p, c->size, c->seed);
    drop(atomic_exchange_explicit(&ring[rel_below(&rng, RING)], c, memory_order_acq_rel));
    made++;
  }
  for (int i = 0; i < 8; i++) {
    if (!rel_check(mine[i], sz[i], i)) bad++;
    if (i & 1) keel_free(mine[i]);
    else keel_free_sized(mine[i], sz[i]);
  }
  return NULL;
}

int main(int argc, char **argv) {
  long total = argc > 1 ? atol(argv[1]) : 100000;
  int batch = argc > 2 ? atoi(argv[2]) : 8;
  if (batch < 1 || batch > 256 || total < batch * 10) { fprintf(stderr, "bad arguments\n"); return 2; }
  pthread_t tid[256];
  long early = 0, peak = 0;
  for (long done = 0; done < total; done += batch) {
    for (int i = 0; i < batch; i++)
      if (pthread_create(&tid[i], NULL, body, (void *)(uintptr_t)(done + i + 1)) != 0) { CHECK(!"pthread_create"); return KL_DONE(); }
    for (int i = 0; i < batch; i++) pthread_join(tid[i], NULL);
    long rss = rel_rss_kib();
    if (rss > peak) peak = rss;
    if (early == 0 && done >= total / 10) early = rss;
  }
  long end = rel_rss_kib();
  for (size_t j = 0; j < RING; j++) drop(atomic_exchange(&ring[j], NULL));
  long limit = early + (early / 4 > 16384 ? early / 4 : 16384);
  printf("churn: %ld threads (%d at a time), %ld blocks left behind; RSS after 10%% %ld KiB, peak %ld KiB, end %ld KiB (limit %ld)\n",
         total, batch, (long)made, early, peak, end, limit);
  CHECKF(bad == 0, "%ld damaged blocks or failed allocations", (long)bad);
  /* REL_NO_RSS: sanitizer runtimes keep shadow memory, so RSS says
   * nothing about keel there; the numbers are still printed. */
  if (!getenv("REL_NO_RSS")) {
    CHECKF(end <= limit, "RSS grew from %ld KiB to %ld KiB", early, end);
    CHECKF(peak <= limit, "RSS peaked at %ld KiB", peak);
  }
  return KL_DONE();
}
