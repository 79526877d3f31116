/* stats.c — statistics and glibc's introspection calls checked against a
 * known allocation pattern. Links libkeel. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"
#include "../harness.h"

#define MiB (1024.0 * 1024.0)
static keel_stats_t s0, s1;

static void *thread_allocs(void *arg) {
  void **keep = arg;
  for (int i = 0; i < 1000; i++) keep[i] = malloc(100);   /* class 112 */
  return NULL;
}

int main(void) {
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

  /* mallinfo2: 64 MiB in use says about 64 MiB; after free, near zero */
  void *big[64];
  for (int i = 0; i < 64; i++) { big[i] = malloc(1 << 20); memset(big[i], 2, 1 << 20); }
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

  /* malloc_info writes XML; the suite checks it is well formed */
  FILE *f = fopen(getenv("STATS_XML") ? getenv("STATS_XML") : "/dev/null", "w");
  CHECK(malloc_info(0, f) == 0);
  fclose(f);
  errno = 0;
  CHECK(malloc_info(1, stdout) == -1 && errno == EINVAL);

  /* options through the API */
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
  fclose(tf);
  free(hold);
  return KL_DONE();
}
