/* pool.c — freed huge blocks' pages made into new huge blocks (src/pool.c).
 *  1. a freed huge mapping is carved in place: a block of the same size, or
 *     two smaller ones, land on its addresses, and touching them again
 *     costs (almost) no page faults;
 *  2. a bigger request is built by moving a smaller run and growing it: its
 *     reused part does not fault, and every byte of it is writable; a
 *     block that realloc shrank grows back into the tail it gave the pool
 *     (pooled pages right after it): same address, no faults, contents kept;
 *  3. reused memory is what the caller asked for: calloc gives zeros,
 *     every block keeps its own contents while others are carved, moved,
 *     resized and freed around it;
 *  4. a block a program split into several kernel mappings (madvise
 *     MADV_DONTFORK on its middle) is never moved with mremap: growing it
 *     by realloc copies, and reusing it after free gives fresh memory; no
 *     live block is damaged (the hole hazard of MREMAP_FIXED);
 *  5. malloc_trim(0) unmaps the pool (reserved bytes fall);
 *  6. four threads replacing huge blocks of random sizes keep every byte;
 *  7. a huge block mapped fresh first gives back the segments waiting out
 *     their purge delay in the cache: a freed 3 MiB block's pages are no
 *     longer resident once a 24 MiB block is made.
 * Links libkeel. POOL_NONE=1 (the secure build, which has no pool) skips
 * the address and fault checks but still checks every byte. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include "keel.h"
#include "../harness.h"

#define MiB ((size_t)1 << 20)
#define PAGE ((size_t)4096)
static bool no_pool;

static uint8_t pat(size_t i, unsigned seed) { return (uint8_t)(seed * 31 + (i >> 12) * 7 + i); }
static void fill(uint8_t *p, size_t n, unsigned seed) { for (size_t i = 0; i < n; i += 512) p[i] = pat(i, seed); p[n - 1] = pat(n - 1, seed); }
/* The bytes fill wrote (every 512th) within the first n. */
static bool same(const uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 512) if (p[i] != pat(i, seed)) return false;
  return true;
}
static bool zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i += 256) if (p[i] != 0) return false;
  return p[n - 1] == 0;
}
static long faults(void) { struct rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_minflt; }
/* Page faults taken while writing one byte in every page of [p, p + n). */
static long touch_faults(uint8_t *p, size_t n) {
  long f = faults();
  for (size_t i = 0; i < n; i += PAGE) p[i] ^= 1;
  return faults() - f;
}

static void in_place(void) {
  uint8_t *a = malloc(24 * MiB);
  fill(a, 24 * MiB, 1);
  free(a);
  uint8_t *b = malloc(24 * MiB);
  long f = touch_faults(b, 24 * MiB);
  if (!no_pool) {
    CHECKF(b == a, "same size after free: %p, was %p", (void *)b, (void *)a);
    CHECKF(f < (long)(24 * MiB / PAGE / 10), "%ld faults touching a reused 24 MiB block", f);
  }
  fill(b, 24 * MiB, 2);
  free(b);
  /* Two smaller blocks from the one run: the first at its start, the
   * second right after, on the next segment boundary. */
  uint8_t *c = malloc(9 * MiB), *d = malloc(9 * MiB);
  if (!no_pool) {
    CHECKF(c == b, "first carve at the run's start: %p, run %p", (void *)c, (void *)b);
    CHECKF(d > c && d < c + 24 * MiB, "second carve inside the run: %p, run %p", (void *)d, (void *)c);
    long fd = touch_faults(d, 9 * MiB);
    CHECKF(fd < (long)(9 * MiB / PAGE / 10), "%ld faults touching the second carve", fd);
  }
  fill(c, 9 * MiB, 3); fill(d, 9 * MiB, 4);
  CHECK(same(c, 9 * MiB, 3) && same(d, 9 * MiB, 4));
  free(c); free(d);
}

static void moved(void) {
  malloc_trim(0);
  uint8_t *a = malloc(12 * MiB);
  fill(a, 12 * MiB, 5);
  free(a);
  /* 40 MiB: the 12 MiB run is too small, so it is moved and grown. */
  uint8_t *b = malloc(40 * MiB);
  long f = touch_faults(b, 40 * MiB);
  if (!no_pool)
    CHECKF(f < (long)(40 * MiB / PAGE) * 85 / 100, "%ld faults touching a 40 MiB block built on a 12 MiB run", f);
  fill(b, 40 * MiB, 6);
  CHECK(same(b, 40 * MiB, 6));
  free(b);
}

static void regrow(void) {
  malloc_trim(0);
  uint8_t *a = malloc(32 * MiB);
  fill(a, 32 * MiB, 7);
  /* Shrunk below half: the tail past 8 MiB goes to the pool. */
  uint8_t *b = realloc(a, 5 * MiB);
  CHECK(b != NULL && same(b, 5 * MiB, 7));
  if (!no_pool) CHECKF(b == a, "shrink in place: %p, was %p", (void *)b, (void *)a);
  /* Grown again: the pooled tail right after it is taken back. */
  uint8_t *c = realloc(b, 30 * MiB);
  CHECK(c != NULL && same(c, 5 * MiB, 7));
  if (!no_pool) {
    CHECKF(c == b, "regrow into the pooled tail in place: %p, was %p", (void *)c, (void *)b);
    long f = touch_faults(c + 8 * MiB, 22 * MiB);
    CHECKF(f < (long)(22 * MiB / PAGE / 10), "%ld faults touching the regrown tail", f);
  }
  fill(c, 30 * MiB, 8);
  CHECK(same(c, 30 * MiB, 8));
  free(c);
}

static void contents(void) {
  enum { N = 6 };
  static const size_t sizes[N] = { 5 * MiB, 17 * MiB, 6 * MiB + 4321, 33 * MiB, 200 * 1024, 9 * MiB + 1 };
  uint8_t *p[N];
  for (int round = 0; round < 8; round++) {
    for (int i = 0; i < N; i++) {
      size_t n = sizes[(i + round) % N];
      if (i % 2) {
        p[i] = calloc(1, n);
        CHECKF(p[i] && zero(p[i], n), "calloc(%zu) on reused memory is zero (round %d)", n, round);
      } else {
        p[i] = malloc(n);
        CHECK(p[i] != NULL);
      }
      fill(p[i], n, (unsigned)(round * N + i));
    }
    /* Resize some in place and across moves, then free in a shuffled order. */
    size_t n1 = sizes[(1 + round) % N], grown = n1 * 2 + MiB;
    uint8_t *q = realloc(p[1], grown);
    CHECK(q != NULL && same(q, n1, (unsigned)(round * N + 1)));
    p[1] = q;
    fill(p[1], grown, 99);
    size_t n3 = sizes[(3 + round) % N], shrunk = n3 / 3 + 1;
    q = realloc(p[3], shrunk);
    CHECK(q != NULL && same(q, shrunk, (unsigned)(round * N + 3)));
    p[3] = q;
    for (int i = 0; i < N; i++) {
      int k = (i * 5 + round) % N;
      size_t n = k == 1 ? grown : k == 3 ? shrunk : sizes[(k + round) % N];
      CHECKF(same(p[k], n, k == 1 ? 99 : (unsigned)(round * N + k)), "block %d of %zu bytes kept its contents (round %d)", k, n, round);
      free(p[k]);
    }
  }
}

/* A block in several kernel mappings: madvise(MADV_DONTFORK) on a middle
 * range changes that range's flags, so the kernel splits the mapping. */
static void split(void) {
  malloc_trim(0);
  size_t n = 20 * MiB;
  uint8_t *guard = malloc(30 * MiB);   /* a live block that a hole would hit */
  fill(guard, 30 * MiB, 7);
  uint8_t *a = malloc(n);
  fill(a, n, 8);
  uint8_t *mid = (uint8_t *)(((uintptr_t)a + 8 * MiB) & ~(PAGE - 1));
  CHECK(madvise(mid, 64 * PAGE, MADV_DONTFORK) == 0);
  uint8_t *b = realloc(a, 300 * MiB);   /* cannot grow in place next to other blocks; must copy */
  CHECK(b != NULL && same(b, n, 8));
  fill(b, 300 * MiB, 9);
  free(b);
  uint8_t *c = malloc(20 * MiB);
  uint8_t *mid2 = (uint8_t *)(((uintptr_t)c + 4 * MiB) & ~(PAGE - 1));
  CHECK(madvise(mid2, 16 * PAGE, MADV_DONTFORK) == 0);
  fill(c, 20 * MiB, 10);
  free(c);                              /* a run in several mappings */
  uint8_t *d = malloc(48 * MiB);        /* bigger: would move that run */
  CHECK(d != NULL);
  fill(d, 48 * MiB, 11);
  CHECK(same(d, 48 * MiB, 11));
  CHECK(same(guard, 30 * MiB, 7));
  free(d);
  free(guard);
}

static void trim(void) {
  uint8_t *p[4];
  for (int i = 0; i < 4; i++) { p[i] = malloc((size_t)(8 + 4 * i) * MiB); fill(p[i], (size_t)(8 + 4 * i) * MiB, 12); }
  for (int i = 0; i < 4; i++) free(p[i]);
  keel_stats_t before, after;
  keel_stats_get(&before);
  malloc_trim(0);
  keel_stats_get(&after);
  if (!no_pool) CHECKF(before.reserved_bytes >= after.reserved_bytes + 40 * MiB,
                       "malloc_trim unmaps the pool: reserved %zu -> %zu bytes", before.reserved_bytes, after.reserved_bytes);
  CHECKF(after.reserved_bytes < 32 * MiB, "reserved after malloc_trim: %zu bytes", after.reserved_bytes);
}

/* Threads replacing blocks of 256 KiB to 24 MiB: the pool and the segment
 * cache are shared, so blocks move between threads' hands. */
static void *churn(void *arg) {
  unsigned r = (unsigned)(uintptr_t)arg;
  uintptr_t bad = 0;
  uint8_t *live[4] = {0};
  size_t len[4] = {0};
  unsigned tag[4] = {0};
  for (int i = 0; i < 100; i++) {
    r = r * 1103515245u + 12345u;
    int k = (int)((r >> 16) % 4);
    if (live[k]) { if (!same(live[k], len[k], tag[k])) bad++; free(live[k]); }
    r = r * 1103515245u + 12345u;
    len[k] = (size_t)256 * 1024 + (size_t)((r >> 8) % (24 * 1024)) * 1024;
    bool cleared = (r >> 4) % 3 == 0;
    live[k] = cleared ? calloc(1, len[k]) : malloc(len[k]);
    if (live[k] == NULL) { bad++; continue; }
    if (cleared && !zero(live[k], len[k])) bad++;
    tag[k] = r;
    fill(live[k], len[k], tag[k]);
  }
  for (int k = 0; k < 4; k++) { if (live[k] && !same(live[k], len[k], tag[k])) bad++; free(live[k]); }
  return (void *)bad;
}

static void threads(void) {
  pthread_t t[4];
  for (uintptr_t i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, churn, (void *)(i * 7919 + 1)) == 0);
  for (int i = 0; i < 4; i++) {
    void *bad;
    pthread_join(t[i], &bad);
    CHECKF(bad == NULL, "thread %d: %zu blocks lost contents, zeros or allocation", i, (size_t)(uintptr_t)bad);
  }
}

/* How many of the n bytes at p (page-aligned) are resident. */
static size_t resident(const void *p, size_t n) {
  static unsigned char vec[(16 << 20) / 4096];
  if (n > sizeof vec * PAGE || mincore((void *)p, n, vec) != 0) return 0;
  size_t r = 0;
  for (size_t i = 0; i < n / PAGE; i++) r += vec[i] & 1;
  return r * PAGE;
}

static void fresh_purges_cache(void) {
  size_t n = 3 * MiB;
  uint8_t *p = malloc(n);
  fill(p, n, 7);
  free(p);   /* its 4 MiB segment waits in the segment cache, written */
  if (no_pool) return;   /* the secure build unmaps it at once */
  size_t before = resident(p, n);
  CHECKF(before >= n * 9 / 10, "a freed 3 MiB block's pages were not resident in the cache (%zu bytes)", before);
  uint8_t *q = malloc(24 * MiB);
  fill(q, 24 * MiB, 8);
  size_t after = resident(p, n);
  CHECKF(after <= n / 10, "after a fresh 24 MiB block, %zu bytes of a cached freed block were still resident", after);
  CHECK(same(q, 24 * MiB, 8));
  free(q);
  malloc_trim(0);
}

int main(void) {
  no_pool = getenv("POOL_NONE") != NULL;
  fresh_purges_cache();   /* first: nothing pooled yet, so the 24 MiB block is fresh */
  in_place();
  moved();
  regrow();
  contents();
  split();
  trim();
  threads();
  return KL_DONE();
}
