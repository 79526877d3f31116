/* holes.c — free OS pages inside pages that still hold live blocks are
 * given back (src/holes.c), and come back intact.
 *  1. 40,000 blocks of 1 KiB, 9 in 10 freed at random: malloc_trim(0)
 *     gives back the OS pages whose blocks are all free (resident memory
 *     falls by over 10 MB, where whole pages could give back nothing),
 *     keel_heap_visit sees exactly the live blocks, and every live block
 *     keeps its contents; then 36,000 new blocks of the size fill the
 *     holes again, and every block, old and new, keeps its contents.
 *  2. without malloc_trim: the same sparse pages, then another size
 *     allocated for a while (KEEL_PURGE_DELAY=1, set by the suite): the
 *     idle sparse pages give their holes back as the heap grows, so
 *     resident memory grows by less than the new blocks' bytes less 10 MB.
 *  3. a double free of a block whose memory was given back (its freed
 *     mark went with it) is caught later: when its page empties, or when
 *     the hole is filled again. Both abort with "double free".
 *  4. a program that leaves pages sparse and idle, then fills them again,
 *     round after round: a page whose holes come back within a second
 *     must sit idle longer before its next ones, so rounds 31-40 make at
 *     most half the holes of rounds 1-10 (keel_stats_t.holes_purged).
 *  5. four threads at once, rounds of: free 85% of their blocks (a third
 *     of those handed to the next thread, which frees them: remote frees
 *     and foreign caches), allocate another size while the sweeps run,
 *     free what the previous thread handed over, fill the slots again;
 *     every block checked before it is freed and at the end of each
 *     round (in the checked build, the heap walks check the hole counts;
 *     how many holes are made depends on the timing, and is only shown).
 *  6. cold blocks of medium pages: 200 blocks of 40,000 bytes, 160 freed
 *     (each page keeps one);
 *     without malloc_trim, medium mallocs of another size a few delays
 *     apart (KEEL_PURGE_DELAY=1) find them cold and give their memory
 *     back: resident memory falls by over 4 MB, holes_purged agrees,
 *     keel_heap_visit sees the 40 live ones, the live blocks keep their
 *     contents; 160 new blocks of the size take the cold ones again, and
 *     every block keeps its contents. A double free of a cold block is
 *     caught at once (its header, with the freed mark, stays).
 *  7. a medium malloc takes a free block of a bigger class (up to four
 *     classes up) rather than carve its own: malloc(20000), freed, then
 *     malloc(15000) returns the same block.
 * Every part runs in a fresh thread or a forked child, so its pages are
 * its own. In builds without holes (secure, debug) parts 1, 2 and 4 check
 * the contents only (NO_HOLES=1), and part 3's double frees are caught
 * at once. Links libkeel. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>
#include "keel.h"
#include "../harness.h"

#define SIZE 1024
#define MANY 40000

static bool holes_expected;

static void fill(unsigned char *p, size_t n, unsigned seed) { for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed * 13 + i * 7); }
static bool same(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) if (p[i] != (unsigned char)(seed * 13 + i * 7)) return false;
  return true;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static unsigned rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (unsigned)(rng >> 11); }

static unsigned char *v[MANY];

/* MANY blocks, then 9 in 10 freed; returns how many are left. */
static int sparse(void) {
  for (int i = 0; i < MANY; i++) { v[i] = malloc(SIZE); fill(v[i], SIZE, (unsigned)i); }
  int live = 0;
  for (int i = 0; i < MANY; i++) {
    if (rnd() % 10 != 0) { free(v[i]); v[i] = NULL; } else live++;
  }
  return live;
}

static int check_live(void) {
  int bad = 0;
  for (int i = 0; i < MANY; i++) if (v[i] != NULL && !same(v[i], SIZE, (unsigned)i)) bad++;
  return bad;
}

static size_t visited;
static bool count_1k(void *block, size_t size, void *arg) {
  (void)block; (void)arg;
  if (size >= SIZE && size < 2 * SIZE) visited++;   /* the debug build's blocks are bigger (1280 B) */
  return true;
}

static void *part1(void *arg) {
  (void)arg;
  int live = sparse();
  long before = kl_t_rss_kib();
  keel_stats_t s0, s1;
  keel_stats_get(&s0);
  malloc_trim(0);
  keel_stats_get(&s1);
  long after = kl_t_rss_kib();
  if (holes_expected) CHECKF(s1.holes_purged - s0.holes_purged >= (before - after) / 8,
                             "keel_stats_t.holes_purged %zu -> %zu", s0.holes_purged, s1.holes_purged);
  visited = 0;
  keel_heap_visit(keel_heap_default(), count_1k, NULL);   /* before printf: stdio's buffer may be 1 KiB */
  CHECKF(visited == (size_t)live, "keel_heap_visit saw %zu blocks of %d B, %d live", visited, SIZE, live);
  printf("part 1: %d live blocks of %d; resident %ld -> %ld KiB after malloc_trim\n", live, MANY, before, after);
  if (holes_expected) CHECKF(before - after > 10 * 1024, "resident %ld -> %ld KiB", before, after);
  CHECK(check_live() == 0);
  /* Fill the holes again. */
  for (int i = 0; i < MANY; i++) if (v[i] == NULL) { v[i] = malloc(SIZE); fill(v[i], SIZE, (unsigned)i); }
  CHECK(check_live() == 0);
  for (int i = 0; i < MANY; i++) free(v[i]);
  return NULL;
}

#define OTHER 2048
#define OTHER_N 10000
static void *part2(void *arg) {
  (void)arg;
  int live = sparse();
  long before = kl_t_rss_kib();
  static unsigned char *w[OTHER_N];
  for (int b = 0; b < 20; b++) {
    for (int i = b * (OTHER_N / 20); i < (b + 1) * (OTHER_N / 20); i++) { w[i] = malloc(OTHER); fill(w[i], OTHER, (unsigned)i + 5); }
    usleep(3000);   /* longer than KEEL_PURGE_DELAY: the sparse pages sit idle */
  }
  long after = kl_t_rss_kib(), grown = after - before, bytes = (long)OTHER * OTHER_N / 1024;
  printf("part 2: %d live blocks of %d; resident %ld -> %ld KiB while %ld KiB were allocated\n", live, MANY, before, after, bytes);
  if (holes_expected) CHECKF(grown < bytes - 10 * 1024, "resident grew %ld KiB for %ld KiB of new blocks", grown, bytes);
  CHECK(check_live() == 0);
  int bad = 0;
  for (int i = 0; i < OTHER_N; i++) { if (!same(w[i], OTHER, (unsigned)i + 5)) bad++; free(w[i]); }
  CHECK(bad == 0);
  for (int i = 0; i < MANY; i++) free(v[i]);
  return NULL;
}

/* Part 4: rounds of sparse, idle (sweeps run: another size is taken),
 * filled again. Holes made per round, from keel_stats_get. */
#define ROUND_N 8000
static void *part4(void *arg) {
  size_t *made = arg;
  static unsigned char *r[ROUND_N];
  for (int i = 0; i < ROUND_N; i++) { r[i] = malloc(SIZE); fill(r[i], SIZE, (unsigned)i); }
  int bad = 0;
  for (int round = 0; round < 40; round++) {
    keel_stats_t s0, s1;
    keel_stats_get(&s0);
    for (int i = 0; i < ROUND_N; i++) if (i % 10 != 0) { if (!same(r[i], SIZE, (unsigned)i)) bad++; free(r[i]); r[i] = NULL; }
    for (int k = 0; k < 4; k++) {   /* idle for the sweeps; a fresh page of another size runs them */
      usleep(2000);
      void *o[40];
      for (int j = 0; j < 40; j++) o[j] = malloc(3000 + 64 * k);
      for (int j = 0; j < 40; j++) free(o[j]);
    }
    for (int i = 0; i < ROUND_N; i++) if (r[i] == NULL) { r[i] = malloc(SIZE); fill(r[i], SIZE, (unsigned)i); }
    keel_stats_get(&s1);
    made[round] = s1.holes_purged - s0.holes_purged;
  }
  for (int i = 0; i < ROUND_N; i++) { if (!same(r[i], SIZE, (unsigned)i)) bad++; free(r[i]); }
  CHECK(bad == 0);
  return NULL;
}

/* Part 5: four threads, remote frees in flight while sweeps run. */
#define P5_THREADS 4
#define P5_N 12000
typedef struct { pthread_mutex_t mu; int n; unsigned char *p[P5_N]; unsigned seed[P5_N]; size_t size[P5_N]; } mailbox_t;
static mailbox_t box[P5_THREADS];
static int p5_bad;
static pthread_mutex_t p5_mu = PTHREAD_MUTEX_INITIALIZER;
static void *part5(void *arg) {
  int me = (int)(intptr_t)arg, bad = 0;
  uint64_t s = 0x1234567ull * (uint64_t)(me + 1);
#define R5() (s ^= s << 13, s ^= s >> 7, s ^= s << 17, (unsigned)(s >> 11))
  static unsigned char *v5[P5_THREADS][P5_N];
  static size_t n5[P5_THREADS][P5_N];
  unsigned char **v = v5[me];
  size_t *n = n5[me];
  for (int i = 0; i < P5_N; i++) { n[i] = 16 + R5() % 1009; v[i] = malloc(n[i]); fill(v[i], n[i], (unsigned)(me * P5_N + i)); }
  mailbox_t *out = &box[(me + 1) % P5_THREADS], *in = &box[me];
  for (int round = 0; round < 6; round++) {
    for (int i = 0; i < P5_N; i++) {
      if (R5() % 100 >= 85) continue;
      if (!same(v[i], n[i], (unsigned)(me * P5_N + i))) bad++;
      if (R5() % 3 == 0) {
        pthread_mutex_lock(&out->mu);
        if (out->n < P5_N) { out->p[out->n] = v[i]; out->seed[out->n] = (unsigned)(me * P5_N + i); out->size[out->n] = n[i]; out->n++; v[i] = NULL; }
        pthread_mutex_unlock(&out->mu);
      }
      if (v[i] != NULL) { free(v[i]); v[i] = NULL; }
    }
    for (int k = 0; k < 6; k++) {   /* sweeps run on fresh pages of another size */
      usleep(1500);
      void *o[24];
      for (int j = 0; j < 24; j++) { o[j] = malloc(2048 + 512 * (size_t)k); memset(o[j], k, 64); }
      for (int j = 0; j < 24; j++) free(o[j]);
    }
    pthread_mutex_lock(&in->mu);
    for (int j = 0; j < in->n; j++) { if (!same(in->p[j], in->size[j], in->seed[j])) bad++; free(in->p[j]); }
    in->n = 0;
    pthread_mutex_unlock(&in->mu);
    for (int i = 0; i < P5_N; i++) if (v[i] == NULL) { n[i] = 16 + R5() % 1009; v[i] = malloc(n[i]); fill(v[i], n[i], (unsigned)(me * P5_N + i)); }
    for (int i = 0; i < P5_N; i++) if (!same(v[i], n[i], (unsigned)(me * P5_N + i))) bad++;
  }
  for (int i = 0; i < P5_N; i++) { if (!same(v[i], n[i], (unsigned)(me * P5_N + i))) bad++; free(v[i]); }
#undef R5
  pthread_mutex_lock(&p5_mu);
  p5_bad += bad;
  pthread_mutex_unlock(&p5_mu);
  return NULL;
}

/* Part 3: the first block of each 64 KiB page kept, the rest freed,
 * holes made; then one freed block in a hole is freed again. */
#define PAGES 40
static unsigned char *d[64 * PAGES + 64];
static unsigned char *second_free(void) {
  int n = 64 * PAGES + 64;
  for (int i = 0; i < n; i++) d[i] = malloc(SIZE);
  unsigned char *victim = NULL;
  for (int i = 0; i < n; i++) {
    uintptr_t off = (uintptr_t)d[i] & 0xffff;
    if (off < SIZE) continue;                                 /* kept */
    /* The victim's page keeps a block (a segment's first page starts
     * after its header, keeps none, and empties). */
    bool page_kept = false;
    for (int j = 0; j < n && !page_kept; j++)
      page_kept = ((uintptr_t)d[j] & 0xffff) < SIZE && (uintptr_t)d[j] >> 16 == (uintptr_t)d[i] >> 16;
    if (victim == NULL && i > 128 && off >= 0x8000 && off < 0xc000 && page_kept) victim = d[i];
    free(d[i]);
    d[i] = NULL;
  }
  malloc_trim(0);
  free(victim);   /* the second free */
  return victim;
}
static void late_when_emptied(void) {
  second_free();
  for (int i = 0; i < 64 * PAGES + 64; i++) free(d[i]);
  _exit(0);   /* not caught */
}
static void late_when_refilled(void) {
  second_free();
  for (int i = 0; i < 64 * PAGES * 2; i++) { unsigned char *p = malloc(SIZE); memset(p, 1, SIZE); }
  _exit(0);
}

/* Part 6. */
#define MED 40000
#define MED_N 200
static unsigned char *m6[MED_N];
static size_t med_seen;
static bool count_med(void *block, size_t size, void *arg) {
  (void)block; (void)arg;
  if (size >= MED && size < MED + 8192) med_seen++;   /* the debug build's blocks are bigger */
  return true;
}
static void *part6(void *arg) {
  (void)arg;
  for (int i = 0; i < MED_N; i++) { m6[i] = malloc(MED); fill(m6[i], MED, (unsigned)i + 3); }
  /* Keep one block in five: every page (six blocks) keeps one, so stays. */
  for (int i = 0; i < MED_N; i++) if (i % 5 != 0) { free(m6[i]); m6[i] = NULL; }
  long before = kl_t_rss_kib();
  keel_stats_t s0, s1;
  keel_stats_get(&s0);
  /* Sweeps run from the medium slow path, at most once per four delays
   * (KL_COLD_DELAYS): the first stamps the free blocks, a later one
   * finds them still free. A
   * 300 KiB block is not medium, so these frees add no free block. */
  for (int r = 0; r < 10; r++) {
    usleep(3000);
    unsigned char *volatile h = malloc(300000), *volatile o = malloc(12000);   /* volatile: kept by the compiler */
    h[0] = o[0] = 1;
    free(h);
    free(o);
  }
  keel_stats_get(&s1);
  long after = kl_t_rss_kib();
  printf("part 6: %d of %d blocks of %d B freed; resident %ld -> %ld KiB, %zu OS pages given back\n",
         MED_N - MED_N / 5, MED_N, MED, before, after, s1.holes_purged - s0.holes_purged);
  if (holes_expected) {
    CHECKF(before - after > 4 * 1024, "resident %ld -> %ld KiB", before, after);
    CHECKF((long)(s1.holes_purged - s0.holes_purged) * 4 >= before - after - 1024,
           "keel_stats_t.holes_purged %zu -> %zu", s0.holes_purged, s1.holes_purged);
  }
  med_seen = 0;
  keel_heap_visit(keel_heap_default(), count_med, NULL);
  CHECKF(med_seen == MED_N / 5, "keel_heap_visit saw %zu blocks of %d B, %d live", med_seen, MED, MED_N / 5);
  int bad = 0;
  for (int i = 0; i < MED_N; i += 5) if (!same(m6[i], MED, (unsigned)i + 3)) bad++;
  CHECK(bad == 0);
  for (int i = 0; i < MED_N; i++) if (m6[i] == NULL) { m6[i] = malloc(MED); fill(m6[i], MED, (unsigned)i + 3); }
  for (int i = 0; i < MED_N; i++) { if (!same(m6[i], MED, (unsigned)i + 3)) bad++; free(m6[i]); }
  CHECK(bad == 0);
  return NULL;
}
static void cold_double_free(void) {
  for (int i = 0; i < 20; i++) m6[i] = malloc(MED);
  for (int i = 0; i < 20; i++) if (i % 3 != 0) free(m6[i]);   /* each page keeps a block */
  malloc_trim(0);   /* every free medium block goes cold at once */
  free(m6[7]);      /* the second free */
  _exit(0);         /* not caught */
}

/* Part 7. */
static void *part7(void *arg) {
  (void)arg;
  unsigned char *p = malloc(20000);
  fill(p, 20000, 9);
  uintptr_t was = (uintptr_t)p;
  free(p);
  unsigned char *q = malloc(15000);
  if (holes_expected) CHECKF((uintptr_t)q == was && malloc_usable_size(q) >= 20000, "malloc(15000) after free(malloc(20000)): %#lx, then %p (%zu usable)",
                             (unsigned long)was, (void *)q, malloc_usable_size(q));
  fill(q, 15000, 10);
  CHECK(same(q, 15000, 10));
  free(q);
  return NULL;
}

static void expect_double_free(const char *what, void (*fn)(void)) {
  char out[4096];
  int st = kl_t_fork(fn, NULL, out, sizeof out);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(out, "double free"),
         "%s: status %#x, stderr: %.400s", what, st, out);
}

int main(void) {
  holes_expected = getenv("NO_HOLES") == NULL;
  pthread_t t;
  pthread_create(&t, NULL, part1, NULL);
  pthread_join(t, NULL);
  pthread_create(&t, NULL, part2, NULL);
  pthread_join(t, NULL);
  size_t made[40];
  pthread_create(&t, NULL, part4, made);
  pthread_join(t, NULL);
  size_t first = 0, last = 0;
  for (int i = 0; i < 10; i++) { first += made[i]; last += made[30 + i]; }
  printf("part 4: holes made in rounds 1-10: %zu, in rounds 31-40: %zu\n", first, last);
  if (holes_expected) CHECKF(first > 0 && last <= first / 2, "holes made in rounds 1-10: %zu, 31-40: %zu", first, last);
  keel_stats_t s0, s1;
  keel_stats_get(&s0);
  pthread_t th[P5_THREADS];
  for (int i = 0; i < P5_THREADS; i++) pthread_mutex_init(&box[i].mu, NULL);
  for (int i = 0; i < P5_THREADS; i++) pthread_create(&th[i], NULL, part5, (void *)(intptr_t)i);
  for (int i = 0; i < P5_THREADS; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < P5_THREADS; i++) for (int j = 0; j < box[i].n; j++) {   /* handed over after its taker's last round */
    if (!same(box[i].p[j], box[i].size[j], box[i].seed[j])) p5_bad++;
    free(box[i].p[j]);
  }
  keel_stats_get(&s1);
  printf("part 5: %zu holes made by 4 threads\n", s1.holes_purged - s0.holes_purged);
  CHECKF(p5_bad == 0, "%d blocks damaged", p5_bad);
  pthread_create(&t, NULL, part6, NULL);
  pthread_join(t, NULL);
  pthread_create(&t, NULL, part7, NULL);
  pthread_join(t, NULL);
  expect_double_free("double free of a cold block, caught at once", cold_double_free);
  expect_double_free("double free in a hole, found when its page empties", late_when_emptied);
  expect_double_free("double free in a hole, found when the hole fills", late_when_refilled);
  return KL_DONE();
}
