/* realloc.c — realloc in place and through every size regime. Links libkeel
 * and uses the standard names (the first check asserts they are keel's).
 *  1. a resize that stays within the block's usable size and keeps at least
 *     half of it returns the same pointer (small and medium classes); a huge
 *     block shrinks in place to any huge size;
 *  2. a huge block grown step by step (8 MiB to 256 MiB by default, in
 *     256 KiB steps) keeps its contents and moves O(log n) times: keel grows
 *     the mapping in place or moves it with mremap to a reservation 1.25
 *     times the request, so the number of distinct addresses is bounded by
 *     the number of 1.25x steps from the first size to the last;
 *  3. one block resized up and down across every regime boundary
 *     (small <= 8 KiB < medium <= 128 KiB < large <= 256 KiB < huge, and
 *     the 4 MiB segment size), keeping the requested bytes every time;
 *  4. the large class: a block of 128 KiB to 256 KiB has 256 KiB usable,
 *     lies in a page of the thread's heap (keel_heap_visit of the default
 *     heap sees it, as it sees no huge block), counts as a huge block in
 *     the statistics, and the page a freed one leaves serves the next.
 *  5. a realloc growing a block into a class with no page takes another
 *     class's empty page (page.c's page_steal), in a fresh thread whose
 *     segments have no other written free page: a freed 12 KiB block's
 *     page takes the 20 KiB block, contents kept; a malloc of a new class
 *     takes a new page instead.
 *  6. a block that realloc moves to a bigger class gets room for half as
 *     much again as it had (up to the medium limit, and never past the
 *     next power of two), so the next growth steps stay in place.
 * Arg: [final size of the growth loop in MiB] (default 256).
 * REALLOC_COPIES=1 or CONTRACT_REALLOC_COPIES=1 (secure and debug builds,
 * which always copy) skips the same-pointer and move-count checks but still
 * checks every byte. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <pthread.h>
#include "keel.h"
#include "../harness.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

static uint8_t pat(size_t i, unsigned seed) { return (uint8_t)(seed + i * 7 + (i >> 12)); }
static void fill(uint8_t *p, size_t from, size_t to, unsigned seed) { for (size_t i = from; i < to; i++) p[i] = pat(i, seed); }
static bool same(const uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) if (p[i] != pat(i, seed)) return false;
  return true;
}
/* One byte in every 4 KiB page, plus the last: cheap enough to run after
 * every step of the growth loop. */
static bool find_block(void *block, size_t size, void *arg) {
  (void)size;
  if (block == *(void **)arg) { *(void **)arg = NULL; return false; }
  return true;
}
static bool visible(void *p) {   /* keel_heap_visit of this thread's heap finds p */
  void *want = p;
  keel_heap_visit(keel_heap_default(), find_block, &want);
  return want == NULL;
}

static bool same_sampled(const uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 4093) if (p[i] != pat(i, seed)) return false;
  return n == 0 || p[n - 1] == pat(n - 1, seed);
}

/* Part 5, in a thread of its own (a heap with no free page yet). Medium
 * pages are 256 KiB and aligned to it inside their segment. */
static bool same_page(const void *a, const void *b) { return (uintptr_t)a >> 18 == (uintptr_t)b >> 18; }
static void *steal_thread(void *arg) {
  bool copies = *(bool *)arg;
  uint8_t *a = malloc(12 * KiB);                     /* class 12 KiB: its page */
  fill(a, 0, 12 * KiB, 21);
  uint8_t *b = malloc(9000);                         /* class 10 KiB: its page */
  fill(b, 0, 9000, 22);
  free(a);                                           /* the 12 KiB page is empty */
  uint8_t *c = realloc(b, 20 * KiB);                 /* class 20 KiB has no page */
  CHECK(c != NULL && same(c, 9000, 22));
  CHECKF(copies || same_page(c, a), "a realloc growing into a new class took %p, not the empty page of %p", (void *)c, (void *)a);
  fill(c, 0, 20 * KiB, 23);
  /* b's page is empty now. A malloc of a new class does not take it: the
   * program may still use b's class, and a block it just freed must not
   * come back at once as another size (a double free would go unseen). */
  uint8_t *d = malloc(40 * KiB);
  CHECKF(copies || (!same_page(d, b) && !same_page(d, c)), "a malloc of a new class took %p: the empty page of %p", (void *)d, (void *)b);
  fill(d, 0, 40 * KiB, 24);
  uint8_t *g = malloc(5000);                         /* small */
  fill(g, 0, 5000, 25);
  uint8_t *h = realloc(g, 100 * KiB);                /* growing: takes b's empty page */
  CHECK(h != NULL && same(h, 5000, 25));
  CHECKF(copies || same_page(h, b), "a growing realloc took %p, not the empty page of %p", (void *)h, (void *)b);
  fill(h, 0, 100 * KiB, 26);
  CHECK(same(c, 20 * KiB, 23) && same(d, 40 * KiB, 24) && same(h, 100 * KiB, 26));
  free(c); free(d); free(h);
  return NULL;
}

int main(int argc, char **argv) {
  size_t top = (argc > 1 ? (size_t)atol(argv[1]) : 256) * MiB;
  Dl_info info;
  CHECKF(dladdr((void *)&realloc, &info) && info.dli_fname && strstr(info.dli_fname, "libkeel"),
         "realloc comes from %s", info.dli_fname ? info.dli_fname : "?");
  bool copies = getenv("REALLOC_COPIES") != NULL || getenv("CONTRACT_REALLOC_COPIES") != NULL;

  /* 1. in place: same pointer while the new size fits the usable size and
   *    is at least half of it (classes across small and medium) */
  size_t sizes[] = { 1, 16, 24, 100, 1000, 1024, 3000, 8192, 8193, 20000, 65536, 100000, 131072, 131073, 200000, 262144 };
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    uint8_t *p = malloc(sizes[i]);
    size_t u = malloc_usable_size(p);
    fill(p, 0, u, (unsigned)i);
    uint8_t *q = realloc(p, u);                      /* grow to the whole block */
    CHECKF(q != NULL && (copies || q == p), "realloc(%zu-byte block, %zu) moved", sizes[i], u);
    CHECK(same(q, u, (unsigned)i));
    p = q;
    size_t half = u - u / 2;                         /* still >= usable / 2 */
    q = realloc(p, half);
    CHECKF(q != NULL && (copies || q == p), "realloc(%zu-byte block, %zu) moved", u, half);
    CHECK(same(q, half, (unsigned)i));
    p = q;
    q = realloc(p, u);                               /* and back up within the block */
    CHECKF(q != NULL && (copies || q == p), "realloc back to %zu moved", u);
    CHECK(same(q, half, (unsigned)i));
    free(q);
  }
  /* a huge block shrinks in place, to any size above the medium limit */
  uint8_t *h = malloc(16 * MiB);
  fill(h, 0, 16 * MiB, 11);
  size_t down[] = { 12 * MiB, 9 * MiB, 4 * MiB + 1, 4 * MiB, 3 * MiB, 1 * MiB, 200 * KiB, 128 * KiB + 1 };
  for (size_t i = 0; i < sizeof down / sizeof *down; i++) {
    uint8_t *q = realloc(h, down[i]);
    CHECKF(q != NULL && (copies || q == h), "huge shrink to %zu moved", down[i]);
    CHECKF(q != NULL && same(q, down[i], 11), "huge shrink to %zu lost contents", down[i]);
    h = q;
  }
  free(h);

  /* 2. huge growth loop: contents kept, O(log n) moves */
  size_t first = 8 * MiB, step = 256 * KiB;
  uint8_t *g = malloc(first);
  fill(g, 0, first, 3);
  uintptr_t last = (uintptr_t)g;
  int moves = 0, steps = 0;
  bool kept = true;
  for (size_t n = first + step; n <= top; n += step, steps++) {
    uint8_t *q = realloc(g, n);
    if (q == NULL) { CHECKF(false, "realloc to %zu failed", n); g = NULL; break; }
    if ((uintptr_t)q != last) moves++;
    last = (uintptr_t)q;
    kept = kept && same_sampled(q, n - step, 3);
    fill(q, n - step, n, 3);
    g = q;
  }
  size_t grown = g ? first + (size_t)steps * step : 0;
  CHECKF(kept && g && same(g, grown, 3), "contents lost growing from %zu to %zu", first, grown);
  /* log_1.25(top / first) moves of the reservation, and a few spare: 1.25x
   * from 8 to 256 MiB is 16 steps; moving on every step would be 992. */
  int bound = 4;
  for (double r = (double)first; r < (double)top; r *= 1.25) bound++;
  CHECKF(copies || moves <= bound, "%d moves in %d growth steps from %zu to %zu MiB (bound %d)",
         moves, steps, first / MiB, top / MiB, bound);
  printf("growth %zu -> %zu MiB: %d steps, %d moves (bound %d)\n", first / MiB, grown / MiB, steps, moves, bound);
  free(g);

  /* 3. every regime boundary, up and down, contents checked at each step */
  size_t path[] = { 1, 16, 17, 1024, 1025, 8192, 8193, 65536, 131072, 131073, 262144, 262145, 1 * MiB,
                    4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 12 * MiB, 4 * MiB + 1, 4 * MiB, 4 * MiB - 1, 262145,
                    262144, 131073, 131072, 131071, 8193, 8192, 8191, 1025, 1024, 17, 16, 1 };
  for (unsigned seed = 1; seed <= 2; seed++) {
    uint8_t *r = NULL;
    size_t have = 0;
    for (size_t i = 0; i < sizeof path / sizeof *path; i++) {
      /* seed 2 starts from an over-aligned block: realloc must keep its bytes too */
      uint8_t *q = (i == 0 && seed == 2) ? aligned_alloc(4096, path[0]) : realloc(r, path[i]);
      CHECKF(q != NULL, "realloc to %zu", path[i]);
      if (q == NULL) break;
      size_t keepn = have < path[i] ? have : path[i];
      CHECKF(same(q, keepn, seed), "%zu -> %zu lost contents", have, path[i]);
      CHECK(malloc_usable_size(q) >= path[i]);
      fill(q, 0, path[i], seed);
      r = q;
      have = path[i];
    }
    free(r);
  }

  /* 4. the large class */
  keel_stats_t s0, s1;
  keel_stats_get(&s0);
  uint8_t *a = malloc(128 * KiB);
  fill(a, 0, 128 * KiB, 5);
  uint8_t *l = realloc(a, 256 * KiB);                /* an array doubling past 128 KiB */
  CHECK(l != NULL && same(l, 128 * KiB, 5));
  CHECKF(malloc_usable_size(l) == 256 * KiB, "usable size of a large block: %zu", malloc_usable_size(l));
  fill(l, 0, 256 * KiB, 6);
  CHECK(visible(l));
  uint8_t *huge = malloc(256 * KiB + 1);             /* a huge block is not in a page */
  CHECK(huge != NULL && !visible(huge));
  free(huge);
  keel_stats_get(&s1);
  CHECKF(s1.huge_blocks == s0.huge_blocks + 1, "huge_blocks %zu -> %zu with one large block live",
         s0.huge_blocks, s1.huge_blocks);
  uint8_t *l2 = realloc(l, 200 * KiB);               /* at least half: stays */
  CHECK(l2 == l && same(l2, 200 * KiB, 6));
  free(l2);
  uint8_t *l3 = malloc(128 * KiB + 1);               /* the freed block's page serves it */
  CHECKF(l3 == l2, "a large block after freeing one: %p, freed %p", (void *)l3, (void *)l2);
  fill(l3, 0, 128 * KiB + 1, 7);
  CHECK(same(l3, 128 * KiB + 1, 7));
  free(l3);

  /* 5. another class's empty page */
  pthread_t th;
  CHECK(pthread_create(&th, NULL, steal_thread, &copies) == 0 && pthread_join(th, NULL) == 0);

  /* 6. room to grow: 1 KiB grown by a byte has 1.5 KiB, and keeps its place
   *    up to there; near the medium limit the room stops at 128 KiB */
  uint8_t *r1 = malloc(1000);
  fill(r1, 0, 1000, 31);
  uint8_t *r2 = realloc(r1, 1025);
  CHECK(r2 != NULL && same(r2, 1000, 31));
  CHECKF(copies || malloc_usable_size(r2) >= 1536, "a 1 KiB block grown to 1025 bytes has %zu usable", malloc_usable_size(r2));
  fill(r2, 0, 1025, 32);
  uint8_t *r3 = realloc(r2, 1536);
  CHECKF(copies || r3 == r2, "growing on to 1536 bytes moved the block");
  CHECK(r3 != NULL && same(r3, 1025, 32));
  /* A medium malloc may take a free block up to four classes bigger
   * (src/page.c, page_shared); malloc_trim makes the free ones cold, so
   * this block is of its own class (112 KiB). */
  malloc_trim(0);
  uint8_t *m = malloc(100000);
  size_t mu = malloc_usable_size(m);
  fill(m, 0, mu, 33);
  uint8_t *m2 = realloc(m, mu + 1);
  CHECK(m2 != NULL && same(m2, mu, 33));
  CHECKF(copies || malloc_usable_size(m2) == 128 * KiB, "a %zu-byte block grown by a byte has %zu usable", mu, malloc_usable_size(m2));
  /* ...but not past the next power of two: a 7 KiB block grown to 7300
   *    bytes gets 8 KiB, not the 12 KiB class that half as much again
   *    would take (buffers that grow to a cap mostly stop at a power of
   *    two: redis's 8 KiB list nodes) */
  uint8_t *c1 = malloc(7000);
  fill(c1, 0, 7000, 34);
  uint8_t *c2 = realloc(c1, 7300);
  CHECK(c2 != NULL && same(c2, 7000, 34));
  CHECKF(copies || malloc_usable_size(c2) == 8 * KiB, "a 7 KiB block grown to 7300 bytes has %zu usable", malloc_usable_size(c2));
  free(r3); free(m2); free(c2);
  return KL_DONE();
}
