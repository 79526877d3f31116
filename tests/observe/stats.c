/* stats.c — statistics and glibc's introspection calls checked against a
 * known allocation pattern. Links libkeel. */
#define _GNU_SOURCE     /* reallocarray, valloc, pvalloc, memalign */
#include <errno.h>
#include <stdint.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"
#include "../harness.h"

#define MiB (1024.0 * 1024.0)
static keel_stats_t s0, s1;

/* C23's sized frees; glibc's stdlib.h declares them only in newer versions. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);

static void *thread_mallocs(void *arg) {   /* a thread with an empty heap: its first malloc reclaims */
  (void)arg;
  void *q[64];
  for (int i = 0; i < 64; i++) q[i] = malloc(100);
  for (int i = 0; i < 64; i++) free(q[i]);
  return NULL;
}

/* Every family member has its own count; malloc and free are what is left
 * of the blocks handed out and freed. Nothing between the two reads may
 * allocate (no stdio). */
static void per_member_counts(void) {
  void *m[10], *a[20];
  size_t na = 0, usable = 0;
  /* Warm up first: once the process holds two segments keel starts its
   * purger thread, and glibc's pthread_create calls calloc. */
  for (int round = 0; round < 2; round++) {
    void *w[200];
    for (int i = 0; i < 200; i++) w[i] = malloc((size_t)i * 700 + 1);
    for (int i = 0; i < 200; i++) free(w[i]);
  }
  volatile size_t half = SIZE_MAX / 2;   /* hides the overflow from the compiler's warning */
  keel_stats_get(&s0);
  for (int i = 0; i < 10; i++) m[i] = malloc(24 + i * 100);           /* malloc 10 */
  a[na++] = calloc(4, 8); a[na++] = calloc(1, 300000);                /* calloc 2 (one huge) */
  a[na++] = keel_calloc(2, 2);                                        /* calloc 3 */
  void *r = realloc(NULL, 16);                                        /* realloc 1 (a block) */
  r = realloc(r, 4000);                                               /* realloc 2 (moves) */
  r = keel_realloc(r, 4000);                                          /* realloc 3 (stays) */
  void *ra = reallocarray(NULL, 10, 10);                              /* reallocarray 1 (a block) */
  ra = reallocarray(ra, 100, 100);                                    /* reallocarray 2 (moves) */
  errno = 0;
  void *bad = reallocarray(ra, half, 4);                              /* reallocarray 3 (overflow) */
  int overflow_ok = bad == NULL && errno == ENOMEM;
  a[na++] = aligned_alloc(64, 100); a[na++] = keel_aligned_alloc(4096, 10);      /* aligned_alloc 2 */
  void *pm = NULL;
  int pm_ok = posix_memalign(&pm, 128, 50) == 0; a[na++] = pm;                   /* posix_memalign 1 */
  pm_ok = pm_ok && keel_posix_memalign(&pm, 32, 50) == 0; a[na++] = pm;          /* posix_memalign 2 */
  pm_ok = pm_ok && posix_memalign(&pm, 3, 50) == EINVAL;                         /* not a call that returned a block */
  a[na++] = memalign(8, 10); a[na++] = memalign(256, 10); a[na++] = memalign(100, 10);  /* memalign 3 */
  for (int i = 0; i < 4; i++) a[na++] = valloc(10 + i);                          /* valloc 4 */
  for (int i = 0; i < 5; i++) a[na++] = pvalloc(5000);                           /* pvalloc 5 */
  for (int i = 0; i < 6; i++) usable += malloc_usable_size(m[i]);                /* malloc_usable_size 6 */
  usable += keel_usable_size(m[6]) + malloc_usable_size(NULL);                   /* 8 */
  free_sized(m[0], 24); free_sized(m[1], 124); free_sized(NULL, 0);              /* free_sized 2 */
  free_aligned_sized(a[3], 64, 100);                                             /* free_sized 3 */
  keel_free_sized(m[2], 24); keel_free_sized(NULL, 0);                           /* free_sized 4 */
  for (int i = 3; i < 10; i++) free(m[i]);                                       /* free 7 */
  for (size_t i = 0; i < na; i++) if (i != 3) free(a[i]);                        /* free 7 + na - 1 */
  free(r); free(ra);                                                             /* free 9 + na - 1 */
  free(NULL);                                                                    /* not counted */
  keel_stats_get(&s1);
#define D(f) (s1.f - s0.f)
  CHECK(overflow_ok && pm_ok && usable >= 6 * 24);
  CHECKF(D(calls_malloc) == 10, "malloc %zu", D(calls_malloc));
  CHECKF(D(calls_calloc) == 3, "calloc %zu", D(calls_calloc));
  CHECKF(D(calls_realloc) == 3, "realloc %zu", D(calls_realloc));
  CHECKF(D(calls_reallocarray) == 3, "reallocarray %zu", D(calls_reallocarray));
  CHECKF(D(calls_aligned_alloc) == 2, "aligned_alloc %zu", D(calls_aligned_alloc));
  CHECKF(D(calls_posix_memalign) == 2, "posix_memalign %zu", D(calls_posix_memalign));
  CHECKF(D(calls_memalign) == 3, "memalign %zu", D(calls_memalign));
  CHECKF(D(calls_valloc) == 4, "valloc %zu", D(calls_valloc));
  CHECKF(D(calls_pvalloc) == 5, "pvalloc %zu", D(calls_pvalloc));
  CHECKF(D(calls_aligned) == 16, "aligned (sum) %zu", D(calls_aligned));
  CHECKF(D(calls_usable_size) == 8, "malloc_usable_size %zu", D(calls_usable_size));
  CHECKF(D(calls_free_sized) == 4, "free_sized %zu", D(calls_free_sized));
  CHECKF(D(calls_free) == 9 + na - 1, "free %zu (want %zu)", D(calls_free), 9 + na - 1);
  CHECKF(s1.calls_aligned == s1.calls_aligned_alloc + s1.calls_posix_memalign + s1.calls_memalign +
         s1.calls_valloc + s1.calls_pvalloc, "aligned %zu is not the sum", s1.calls_aligned);
#undef D
}

/* keel_stats_get_sized never writes past `size`; the function keel_stats_get
 * (what a 1.0.0 binary calls) fills the 1.0.0 struct only. */
static void sized_get(void) {
  size_t v1 = offsetof(keel_stats_t, calls_reallocarray);
  static _Alignas(keel_stats_t) unsigned char buf[sizeof(keel_stats_t) + 64];
  memset(buf, 0xAB, sizeof buf);
  keel_stats_get_sized((keel_stats_t *)buf, v1);
  int untouched = 1;
  for (size_t i = v1; i < sizeof buf; i++) untouched &= buf[i] == 0xAB;
  CHECK(untouched && ((keel_stats_t *)buf)->calls_malloc > 0);
  memset(buf, 0xAB, sizeof buf);
  (keel_stats_get)((keel_stats_t *)buf);          /* the function, not the macro */
  untouched = 1;
  for (size_t i = v1; i < sizeof buf; i++) untouched &= buf[i] == 0xAB;
  CHECK(untouched && ((keel_stats_t *)buf)->calls_malloc > 0);
  memset(buf, 0xAB, sizeof buf);
  keel_stats_get_sized((keel_stats_t *)buf, sizeof buf);   /* a newer, longer struct: the tail is zeroed */
  int zero_tail = 1;
  for (size_t i = sizeof(keel_stats_t); i < sizeof buf; i++) zero_tail &= buf[i] == 0;
  CHECK(zero_tail && ((keel_stats_t *)buf)->calls_usable_size > 0);
}

/* The whole class table, read through KEEL_STATS_CLASS: increasing sizes
 * up to 128 KiB, then zeros; the entries past the 48 of 1.0.0 are filled
 * (a 128 KiB block is counted in classes_more), and "a power of two plus a
 * header" lands in the 9/8 class above it (bins.c). */
static void class_table(void) {
  static const struct { size_t ask, block; } cases[] = {
    { 1025, 1152 }, { 1032, 1152 }, { 1153, 1280 }, { 2049, 2304 }, { 2305, 2560 },
    { 4104, 4608 }, { 4368, 4608 }, { 4609, 5120 }, { 8193, 10240 }, { 120000, 131072 },
  };
  enum { N = sizeof cases / sizeof cases[0] };
  static keel_stats_t a, b;
  void *p[N][3];
  keel_stats_get(&a);
  for (unsigned k = 0; k < N; k++)
    for (int j = 0; j < 3; j++) {
      p[k][j] = malloc(cases[k].ask);
      CHECKF(p[k][j] != NULL && malloc_usable_size(p[k][j]) == cases[k].block, "malloc(%zu): usable %zu, want %zu",
             cases[k].ask, p[k][j] ? malloc_usable_size(p[k][j]) : 0, cases[k].block);
      memset(p[k][j], 0x5A, cases[k].ask);
    }
  keel_stats_get(&b);
  unsigned used = 0, ordered = 1, zeros_after = 1;
  size_t last = 0;
  for (unsigned i = 0; i < KEEL_STATS_CLASSES_ALL; i++) {
    size_t bs = KEEL_STATS_CLASS(&b, i)->block_size;
    if (bs == 0) { zeros_after &= KEEL_STATS_CLASS(&b, i)->pages == 0; continue; }
    ordered &= used == i && bs > last && bs % 16 == 0;
    last = bs; used++;
  }
  CHECKF(ordered && zeros_after && used > KEEL_STATS_CLASSES && last == 131072,
         "%u classes, last %zu, ordered %u", used, last, ordered);
  for (unsigned k = 0; k < N; k++) {
    unsigned at = KEEL_STATS_CLASSES_ALL, want = 0;
    for (unsigned i = 0; i < used; i++) if (KEEL_STATS_CLASS(&b, i)->block_size == cases[k].block) at = i;
    for (unsigned i = 0; i < N; i++) want += cases[i].block == cases[k].block ? 3 : 0;
    CHECKF(at < used && KEEL_STATS_CLASS(&b, at)->blocks_in_use - KEEL_STATS_CLASS(&a, at)->blocks_in_use == want &&
           (cases[k].block != 131072 || at >= KEEL_STATS_CLASSES), "class %zu at %u", cases[k].block, at);
  }
  int intact = 1;
  for (unsigned k = 0; k < N; k++)
    for (int j = 0; j < 3; j++) {
      for (size_t i = 0; i < cases[k].ask; i++) intact &= ((unsigned char *)p[k][j])[i] == 0x5A;
      free(p[k][j]);
    }
  CHECK(intact);
}

static void *thread_allocs(void *arg) {
  void **keep = arg;
  for (int i = 0; i < 1000; i++) keep[i] = malloc(100);   /* class 112 */
  return NULL;
}

/* ---- `stats handoff`: a fresh process, since the peak only grows.
 * One thread makes blocks and another frees them, 200 batches of 1,000
 * blocks of 1 KiB (200 MiB in all, at most three batches in flight). The
 * peak of bytes in use must stay near what was in flight: it once summed
 * the maker's allocations without the other thread's frees and grew with
 * the total. Twice: a freeing thread that allocated first, and one that
 * never allocates (its first free sets up its heap, free.c). */
enum { BATCHES = 200, PER = 1000 };
static pthread_mutex_t ho_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ho_cv = PTHREAD_COND_INITIALIZER;
static void **ho_slot;           /* a batch waiting to be freed */
static bool ho_done;

static void *ho_consumer(void *arg) {
  if (arg != NULL) free(malloc(64));   /* this thread gets a heap */
  for (;;) {
    pthread_mutex_lock(&ho_mu);
    while (ho_slot == NULL && !ho_done) pthread_cond_wait(&ho_cv, &ho_mu);
    void **batch = ho_slot;
    ho_slot = NULL;
    pthread_cond_broadcast(&ho_cv);
    pthread_mutex_unlock(&ho_mu);
    if (batch == NULL) return NULL;
    for (int i = 0; i < PER; i++) free(batch[i]);
  }
}

static void handoff(bool consumer_has_heap) {
  /* Three buffers: while we fill one, one waits in the slot and the
   * consumer may still be freeing the third. */
  static void *batches[3][PER];
  pthread_t th;
  ho_done = false;
  CHECK(pthread_create(&th, NULL, ho_consumer, consumer_has_heap ? (void *)1 : NULL) == 0);
  for (int b = 0; b < BATCHES; b++) {
    void **batch = batches[b % 3];
    for (int i = 0; i < PER; i++) { batch[i] = malloc(1000); memset(batch[i], b, 1000); }
    pthread_mutex_lock(&ho_mu);
    while (ho_slot != NULL) pthread_cond_wait(&ho_cv, &ho_mu);
    ho_slot = batch;
    pthread_cond_broadcast(&ho_cv);
    pthread_mutex_unlock(&ho_mu);
  }
  pthread_mutex_lock(&ho_mu);
  while (ho_slot != NULL) pthread_cond_wait(&ho_cv, &ho_mu);
  ho_done = true;
  pthread_cond_broadcast(&ho_cv);
  pthread_mutex_unlock(&ho_mu);
  CHECK(pthread_join(th, NULL) == 0);
  keel_stats_t s;
  keel_stats_get(&s);
  /* Three batches of 1 KiB blocks in flight at most, plus slack. */
  CHECKF(s.in_use_bytes_peak < 3 * PER * 1024 + 4 * MiB,
         "consumer %s a heap: peak in use %.1f MiB after %d MiB made and freed",
         consumer_has_heap ? "with" : "without", s.in_use_bytes_peak / MiB, BATCHES);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "handoff") == 0) {
    handoff(strcmp(argv[2], "heap") == 0);
    return KL_DONE();
  }
  per_member_counts();
  sized_get();
  class_table();
  keel_stats_get(&s0);
  /* 1000 blocks of 1000 bytes: class 1024 */
  void *p[1000];
  for (int i = 0; i < 1000; i++) { p[i] = malloc(1000); memset(p[i], 1, 1000); }
  void *c = calloc(10, 10), *r = realloc(NULL, 10), *al = aligned_alloc(64, 64);
  keel_stats_get(&s1);
  size_t dl = s1.in_use_bytes - s0.in_use_bytes;
  CHECKF(dl >= 1000 * 1024 && dl < 1000 * 1024 + 4096, "in use grew by %zu", dl);
  CHECKF(s1.calls_malloc - s0.calls_malloc == 1000, "malloc calls %zu", s1.calls_malloc - s0.calls_malloc);
  CHECK(s1.calls_calloc - s0.calls_calloc == 1);
  CHECK(s1.calls_realloc - s0.calls_realloc == 1);
  CHECK(s1.calls_aligned - s0.calls_aligned == 1);
  unsigned c1024 = 0;
  for (unsigned i = 0; i < KEEL_STATS_CLASSES; i++) if (s1.classes[i].block_size == 1024) c1024 = i;
  CHECK(s1.classes[c1024].blocks_in_use - s0.classes[c1024].blocks_in_use == 1000);
  CHECK(s1.classes[c1024].pages >= 16);   /* 64 KiB pages hold 64 blocks of 1 KiB */
  CHECK(s1.in_use_bytes_peak >= s1.in_use_bytes);
  CHECK(s1.committed_bytes >= s1.in_use_bytes && s1.reserved_bytes >= s1.committed_bytes);
  CHECK(s1.allocated_bytes_total - s0.allocated_bytes_total >= 1000 * 1024);
  for (int i = 0; i < 1000; i++) free(p[i]);
  free(c); free(r); free(al);
  keel_stats_get(&s1);
  CHECKF(s1.in_use_bytes <= s0.in_use_bytes + 4096, "in use back: %zu vs %zu", s1.in_use_bytes, s0.in_use_bytes);
  CHECK(s1.calls_free - s0.calls_free == 1003);
  CHECK(s1.freed_bytes_total - s0.freed_bytes_total >= 1000 * 1024);
  CHECK(s1.in_use_bytes_peak >= s0.in_use_bytes + 1000 * 1024);

  /* other threads' counters merge on read; thread exits are counted */
  void *keep[1000];
  pthread_t t;
  keel_stats_get(&s0);
  pthread_create(&t, NULL, thread_allocs, keep);
  pthread_join(t, NULL);
  keel_stats_get(&s1);
  CHECK(s1.threads_seen == s0.threads_seen + 1);
  CHECK(s1.segments_abandoned > s0.segments_abandoned);
  CHECKF(s1.in_use_bytes - s0.in_use_bytes >= 1000 * 112, "thread's blocks: %zu", s1.in_use_bytes - s0.in_use_bytes);
  for (int i = 0; i < 1000; i++) free(keep[i]);    /* remote frees */
  keel_stats_get(&s0);
  CHECK(s0.in_use_bytes + 1000 * 112 <= s1.in_use_bytes);

  /* A thread leaves live blocks (its segments are abandoned); a thread that
   * starts afterwards adopts them at its first slow path. */
  keel_stats_get(&s0);
  pthread_create(&t, NULL, thread_allocs, keep);
  pthread_join(t, NULL);
  pthread_create(&t, NULL, thread_mallocs, NULL);
  pthread_join(t, NULL);
  keel_stats_get(&s1);
  CHECKF(s1.segments_abandoned > s0.segments_abandoned, "abandoned %zu -> %zu", s0.segments_abandoned, s1.segments_abandoned);
  CHECKF(s1.segments_reclaimed > s0.segments_reclaimed, "reclaimed %zu -> %zu", s0.segments_reclaimed, s1.segments_reclaimed);
  for (int i = 0; i < 1000; i++) free(keep[i]);

  /* mallinfo2: 64 MiB in use says about 64 MiB; after free, near zero.
   * The first 64 MiB of huge blocks are new mappings: OS calls, and a
   * committed peak at least that high, which stays after the free. */
  void *big[64];
  keel_stats_get(&s0);
  for (int i = 0; i < 64; i++) { big[i] = malloc(1 << 20); memset(big[i], 2, 1 << 20); }
  keel_stats_get(&s1);
  CHECKF(s1.os_calls > s0.os_calls, "OS calls %zu -> %zu", s0.os_calls, s1.os_calls);
  CHECKF(s1.committed_bytes_peak >= s1.committed_bytes && s1.committed_bytes_peak >= s0.committed_bytes + 64 * MiB,
         "committed peak %zu, committed %zu (was %zu)", s1.committed_bytes_peak, s1.committed_bytes, s0.committed_bytes);
  size_t peak_with_big = s1.committed_bytes_peak;
  struct mallinfo2 m = mallinfo2();
  CHECKF(m.uordblks >= 64 * MiB && m.uordblks < 66 * MiB, "uordblks %zu", m.uordblks);
  CHECK(m.hblks >= 64 && m.arena >= m.uordblks);
  for (int i = 0; i < 64; i++) free(big[i]);
  m = mallinfo2();
  CHECKF(m.uordblks < 1 * MiB, "uordblks after free %zu", m.uordblks);
  struct mallinfo mo = mallinfo();
  CHECK(mo.uordblks >= 0 && (size_t)mo.uordblks < 1 * MiB);

  /* malloc_trim gives cached and free memory back */
  for (int i = 0; i < 4000; i++) { p[i % 1000] = malloc(8000); }
  for (int i = 0; i < 1000; i++) free(p[i]);
  keel_stats_get(&s0);
  CHECK(malloc_trim(0) == 1);
  keel_stats_get(&s1);
  CHECKF(s1.committed_bytes < s0.committed_bytes, "trim: %zu -> %zu", s0.committed_bytes, s1.committed_bytes);
  CHECK(s1.pages_purged >= s0.pages_purged);
  CHECKF(s1.os_calls > s0.os_calls, "trim made no OS call: %zu -> %zu", s0.os_calls, s1.os_calls);
  CHECKF(s1.committed_bytes_peak >= peak_with_big && s1.committed_bytes_peak >= s0.committed_bytes,
         "committed peak fell: %zu -> %zu", peak_with_big, s1.committed_bytes_peak);

  /* malloc_info writes XML; the suite checks it is well formed */
  FILE *f = fopen(getenv("STATS_XML") ? getenv("STATS_XML") : "/dev/null", "w");
  CHECK(malloc_info(0, f) == 0);
  fclose(f);
  errno = 0;
  CHECK(malloc_info(1, stdout) == -1 && errno == EINVAL);

  /* options through the API */
  CHECK(keel_option_get(KEEL_OPTION_REPORT_INTERVAL) >= 1);
  CHECK(keel_option_set(KEEL_OPTION_REPORT_INTERVAL, 0) == EINVAL && keel_option_set(KEEL_OPTION_REPORT_INTERVAL, 60001) == EINVAL);
  CHECK(keel_option_set(KEEL_OPTION_REPORT_INTERVAL, 20) == 0 && keel_option_get(KEEL_OPTION_REPORT_INTERVAL) == 20);
  CHECK(keel_option_get(KEEL_OPTION_PURGE_DELAY) >= 0);
  CHECK(keel_option_set(KEEL_OPTION_PURGE_DELAY, 50) == 0 && keel_option_get(KEEL_OPTION_PURGE_DELAY) == 50);
  CHECK(keel_option_set(KEEL_OPTION_PURGE_DELAY, -1) == EINVAL);
  CHECK(keel_option_set((keel_option_t)99, 1) == EINVAL && keel_option_get((keel_option_t)99) == -1);

  /* the table prints every class in use */
  FILE *tf = tmpfile();
  void *hold = malloc(3000);
  keel_stats_print(tf);
  rewind(tf);
  char buf[8192];
  size_t got = fread(buf, 1, sizeof buf - 1, tf);
  buf[got] = '\0';
  CHECK(strstr(buf, "keel statistics") != NULL && strstr(buf, "3.0 KiB") != NULL && strstr(buf, "in use") != NULL);
  CHECK(strstr(buf, "reallocarray") != NULL && strstr(buf, "posix_memalign") != NULL &&
        strstr(buf, "malloc_usable_size") != NULL && strstr(buf, "free_sized") != NULL &&
        strstr(buf, "segments abandoned") != NULL);
  fclose(tf);
  free(hold);
  return KL_DONE();
}
