/* stress.c — deterministic multi-threaded stress: THREADS threads, random
 * sizes from 1 byte to 1 MiB with a heavy tail, a third of the blocks
 * handed through a shared exchange array and freed by another thread,
 * realloc in the mix; every block carries a pattern derived from its
 * address and size, verified before every free. Ends by reconciling keel's
 * statistics: everything allocated was freed. Args: [ops per thread]. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"
#include "../harness.h"

#define THREADS 4
#define SLOTS 1024
#define EXCHANGE 4096
static _Atomic(uint8_t *) exchange[EXCHANGE];
static long ops = 200000;
static _Atomic long corrupt;

/* Header: size (8 bytes), then bytes i = low byte of (size ^ i * 131). */
static uint8_t *make(size_t size) {
  uint8_t *p = malloc(size + 8);
  if (!p) { fprintf(stderr, "malloc(%zu) failed\n", size); abort(); }
  memcpy(p, &size, 8);
  size_t step = size > 4096 ? 61 : 1;
  for (size_t i = 0; i < size; i += step) p[8 + i] = (uint8_t)(size ^ (i * 131));
  return p;
}
static void check_free(uint8_t *p) {
  size_t size;
  memcpy(&size, p, 8);
  size_t step = size > 4096 ? 61 : 1;
  for (size_t i = 0; i < size; i += step)
    if (p[8 + i] != (uint8_t)(size ^ (i * 131))) { atomic_fetch_add(&corrupt, 1); break; }
  free(p);
}
static size_t pick(uint64_t *s) {
  *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
  uint64_t r = *s;
  switch (r & 63) {
    case 0: return 1 + (r >> 8) % (1 << 20);     /* up to 1 MiB, 1 in 64 */
    case 1: case 2: case 3: return 1 + (r >> 8) % 65536;
    default: return 1 + (r >> 8) % 512;          /* mostly small */
  }
}

static void *worker(void *arg) {
  uint64_t s = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
  uint8_t *mine[SLOTS] = { 0 };
  for (long i = 0; i < ops; i++) {
    unsigned slot = (unsigned)((s >> 20) % SLOTS);
    size_t size = pick(&s);
    if (mine[slot]) check_free(mine[slot]);
    mine[slot] = make(size);
    if (i % 3 == 0) {         /* hand a block to another thread */
      uint8_t *old = atomic_exchange(&exchange[(s >> 30) % EXCHANGE], make(pick(&s)));
      if (old) check_free(old);
    }
    if (i % 17 == 0 && mine[slot]) {   /* realloc keeps the pattern's prefix */
      size_t old;
      memcpy(&old, mine[slot], 8);
      size_t n = pick(&s);
      uint8_t *q = realloc(mine[slot], n + 8);
      if (!q) abort();
      size_t keep = old < n ? old : n, step = old > 4096 ? 61 : 1;   /* make() wrote every step-th byte */
      for (size_t k = 0; k < keep; k += step)
        if (q[8 + k] != (uint8_t)(old ^ (k * 131))) { atomic_fetch_add(&corrupt, 1); break; }
      memcpy(q, &n, 8);
      for (size_t k = 0; k < n; k += (n > 4096 ? 61 : 1)) q[8 + k] = (uint8_t)(n ^ (k * 131));
      mine[slot] = q;
    }
  }
  for (int i = 0; i < SLOTS; i++) if (mine[i]) check_free(mine[i]);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1) ops = atol(argv[1]);
  keel_stats_t before, after;
  keel_stats_get(&before);
  for (int round = 0; round < 2; round++) {   /* the second round reuses what the first left */
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(i + round * THREADS));
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  }
  for (int i = 0; i < EXCHANGE; i++) {
    uint8_t *p = atomic_exchange(&exchange[i], NULL);
    if (p) check_free(p);
  }
  CHECKF(atomic_load(&corrupt) == 0, "%ld corrupted blocks", atomic_load(&corrupt));
  keel_stats_get(&after);
  /* Reconcile: bytes allocated since the start were all freed again. */
  size_t alloc = after.allocated_bytes_total - before.allocated_bytes_total;
  size_t freed = after.freed_bytes_total - before.freed_bytes_total;
  /* (stdio's buffers, allocated on first use, may fall inside the window) */
  CHECKF(alloc > 0 && alloc - freed < 16 * 1024, "allocated %zu, freed %zu", alloc, freed);
  CHECKF(after.in_use_bytes <= before.in_use_bytes + 64 * 1024, "in use %zu -> %zu", before.in_use_bytes, after.in_use_bytes);
  /* libc keeps a few blocks of its own across the window (thread DTVs of
   * cached stacks), hence the small slack. */
  CHECKF(after.calls_malloc - before.calls_malloc <= after.calls_free - before.calls_free + 16, "malloc calls %zu, free calls %zu",
         after.calls_malloc - before.calls_malloc, after.calls_free - before.calls_free);
  CHECK(after.threads_seen >= before.threads_seen + 2 * THREADS);
  return KL_DONE();
}
