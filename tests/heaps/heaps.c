/* heaps.c — first-class heaps (keel_heap_*): every function and rule in
 * keel.h, with content checks. Links libkeel (keel.h only). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include "keel.h"
#include "../harness.h"

static bool count_visit(void *b, size_t size, void *arg) { (void)b; (void)size; (*(size_t *)arg)++; return true; }
static bool stop_after_3(void *b, size_t size, void *arg) { (void)b; (void)size; return ++*(size_t *)arg < 3; }
static bool sizes_ok(void *b, size_t size, void *arg) {
  if (keel_usable_size(b) != size) (*(size_t *)arg)++;
  return true;
}
static void fill(void *p, size_t n, unsigned seed) { for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)(seed + i); }
static bool check(const void *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) if (((const uint8_t *)p)[i] != (uint8_t)(seed + i)) return false;
  return true;
}
static size_t committed(void) { keel_stats_t s; keel_stats_get(&s); return s.committed_bytes; }
static size_t in_use(void) { keel_stats_t s; keel_stats_get(&s); return s.in_use_bytes; }

static keel_heap_t *shared_heap;
static void *foreign_alloc(void *arg) {
  (void)arg;
  errno = 0;
  void *p = keel_heap_malloc(shared_heap, 32);
  return (void *)(uintptr_t)(p == NULL && errno == EINVAL);
}
static void *foreign_destroy_delete(void *arg) {
  keel_heap_destroy(shared_heap);
  keel_heap_delete(shared_heap);
  return arg;
}
static void *free_these(void *arg) {
  void **v = arg;
  for (int i = 0; v[i]; i++) free(v[i]);
  return NULL;
}
static void *make_heap_and_exit(void *arg) {
  keel_heap_t *h = keel_heap_new();
  char *p = keel_heap_malloc(h, 100), *big = keel_heap_malloc(h, 300000);
  strcpy(p, "outlives its thread");
  memset(big, 7, 300000);
  ((void **)arg)[0] = p;
  ((void **)arg)[1] = big;
  ((void **)arg)[2] = h;
  return NULL;
}

int main(void) {
  keel_option_set(KEEL_OPTION_ON_ERROR, 1);   /* misuse cases below must return, not abort */
  /* The purger thread stays on: it once held a cached segment out of its
   * slot while malloc_trim went by, and "memory back near the baseline"
   * below failed 1 run in 3 (4 MiB still committed; fixed in segment.c,
   * trim_epoch). */

  /* basic allocation through every entry, content kept */
  keel_heap_t *h = keel_heap_new();
  CHECK(h != NULL);
  CHECK(keel_heap_default() != NULL && keel_heap_default() != h);
  void *blocks[300];
  for (int i = 0; i < 300; i++) {
    size_t n = 1 + (size_t)i * 37 % 5000;
    blocks[i] = keel_heap_malloc(h, n);
    fill(blocks[i], n, (unsigned)i);
  }
  char *z = keel_heap_calloc(h, 100, 10);
  bool zero = z != NULL;
  for (int i = 0; zero && i < 1000; i++) zero = z[i] == 0;
  CHECK(zero);
  char *a = keel_heap_aligned_alloc(h, 4096, 100);
  CHECK(a != NULL && ((uintptr_t)a & 4095) == 0);
  char *r = keel_heap_malloc(h, 50);
  fill(r, 50, 9);
  r = keel_heap_realloc(h, r, 20000);
  CHECK(r != NULL && check(r, 50, 9) && keel_heap_contains(h, r));
  char *big = keel_heap_malloc(h, 2 << 20);   /* huge blocks belong to heaps too */
  CHECK(big != NULL && keel_heap_contains(h, big));
  bool all = true;
  for (int i = 0; i < 300; i++) all = all && check(blocks[i], 1 + (size_t)i * 37 % 5000, (unsigned)i) && keel_heap_contains(h, blocks[i]);
  CHECK(all);

  /* contains: not for the default heap's blocks, not inside, not freed */
  void *other = malloc(64);
  CHECK(!keel_heap_contains(h, other));
  CHECK(!keel_heap_contains(h, (char *)blocks[5] + 1));
  CHECK(keel_heap_contains(keel_heap_default(), other));
  free(other);

  /* visit: every live block once; after partial frees (local and remote) */
  size_t n = 0;
  CHECK(keel_heap_visit(h, count_visit, &n));
  CHECK(n == 300 + 4);
  for (int i = 0; i < 300; i += 3) { free(blocks[i]); blocks[i] = NULL; }
  void *remote[120] = { 0 };
  int k = 0;
  for (int i = 1; i < 300; i += 3) { remote[k++] = blocks[i]; blocks[i] = NULL; }
  pthread_t t;
  pthread_create(&t, NULL, free_these, remote);
  pthread_join(t, NULL);
  n = 0;
  keel_heap_visit(h, count_visit, &n);
  CHECKF(n == 100 + 4, "visit after partial frees: %zu", n);
  CHECK(!keel_heap_contains(h, remote[0]));
  n = 0;
  CHECK(!keel_heap_visit(h, stop_after_3, &n) && n == 3);
  n = 0;
  keel_heap_visit(h, sizes_ok, &n);
  CHECK(n == 0);

  /* only the owner allocates; another thread gets an error, not corruption */
  shared_heap = h;
  void *res;
  pthread_create(&t, NULL, foreign_alloc, NULL);
  pthread_join(t, &res);
  CHECK(res == (void *)1);

  /* another thread's destroy and delete are refused (reported; warn here):
   * the heap and its blocks stay as they were */
  n = 0;
  keel_heap_visit(h, count_visit, &n);
  pthread_create(&t, NULL, foreign_destroy_delete, NULL);
  pthread_join(t, NULL);
  size_t n2 = 0;
  CHECK(keel_heap_visit(h, count_visit, &n2) && n2 == n);
  CHECK(keel_heap_contains(h, big) && keel_heap_contains(h, r) && check(r, 50, 9));

  /* impossible sizes: NULL and ENOMEM from every entry, like malloc; a
   * failed realloc leaves the old block valid and in the heap */
  errno = 0; CHECK(keel_heap_malloc(h, SIZE_MAX - 10) == NULL && errno == ENOMEM);
  errno = 0; CHECK(keel_heap_calloc(h, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  char *small = keel_heap_malloc(h, 100), *huge = keel_heap_malloc(h, 3 << 20);
  fill(small, 100, 21);
  fill(huge, 3 << 20, 22);
  size_t bad[] = { SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, (size_t)PTRDIFF_MAX, (size_t)1 << 62 };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    errno = 0; CHECKF(keel_heap_malloc(h, bad[i]) == NULL && errno == ENOMEM, "heap malloc(%zu)", bad[i]);
    errno = 0; CHECKF(keel_heap_calloc(h, 1, bad[i]) == NULL && errno == ENOMEM, "heap calloc(1, %zu)", bad[i]);
    errno = 0; CHECKF(keel_heap_realloc(h, small, bad[i]) == NULL && errno == ENOMEM, "heap realloc(small, %zu)", bad[i]);
    errno = 0; CHECKF(keel_heap_realloc(h, huge, bad[i]) == NULL && errno == ENOMEM, "heap realloc(huge, %zu)", bad[i]);
    errno = 0; CHECKF(keel_heap_realloc(h, NULL, bad[i]) == NULL && errno == ENOMEM, "heap realloc(NULL, %zu)", bad[i]);
    errno = 0; CHECKF(keel_heap_aligned_alloc(h, 64, bad[i]) == NULL && errno == ENOMEM, "heap aligned(64, %zu)", bad[i]);
    errno = 0; CHECKF(keel_heap_aligned_alloc(h, 1 << 20, bad[i]) == NULL && errno == ENOMEM, "heap aligned(1 MiB, %zu)", bad[i]);
  }
  CHECK(check(small, 100, 21) && keel_heap_contains(h, small));
  CHECK(check(huge, 3 << 20, 22) && keel_heap_contains(h, huge));
  /* an alignment no address space can honour is ENOMEM too */
  errno = 0; CHECK(keel_heap_aligned_alloc(h, (size_t)1 << 63, 16) == NULL && errno == ENOMEM);
  /* an alignment that is not a power of two is EINVAL, whatever the size */
  size_t badal[] = { 0, 3, 24, 48, 100, 4097, SIZE_MAX };
  for (size_t i = 0; i < sizeof badal / sizeof *badal; i++) {
    errno = 0; CHECKF(keel_heap_aligned_alloc(h, badal[i], 10) == NULL && errno == EINVAL, "heap aligned(%zu, 10)", badal[i]);
    errno = 0; CHECKF(keel_heap_aligned_alloc(h, badal[i], 0) == NULL && errno == EINVAL, "heap aligned(%zu, 0)", badal[i]);
  }
  /* keel_heap_realloc keeps the bytes through every regime and the block in
   * the heap; shrinking within the block keeps it in place */
  size_t path[] = { 1, 100, 8192, 8193, 100000, 131073, 1 << 20, 9 << 20, 1 << 20, 131073, 100000, 8193, 8192, 100, 1 };
  char *rp = NULL;
  size_t have = 0;
  for (size_t i = 0; i < sizeof path / sizeof *path; i++) {
    char *q = keel_heap_realloc(h, rp, path[i]);
    size_t keepn = have < path[i] ? have : path[i];
    CHECKF(q != NULL && check(q, keepn, 31) && keel_heap_contains(h, q), "heap realloc %zu -> %zu", have, path[i]);
    if (q == NULL) break;
    fill(q, path[i], 31);
    rp = q;
    have = path[i];
  }
  size_t u = keel_usable_size(rp);
  CHECK(keel_heap_realloc(h, rp, u) == rp);
  free(rp);
  free(small);
  free(huge);

  /* destroy frees everything at once */
  size_t before = in_use();
  keel_heap_destroy(h);
  CHECKF(in_use() < before, "in use %zu -> %zu", before, in_use());

  /* a million blocks, destroyed whole; memory back near the baseline */
  malloc_trim(0);
  size_t base = committed();
  h = keel_heap_new();
  bool ok = true;
  for (int i = 0; i < 1000000; i++) {
    uint32_t *p = keel_heap_malloc(h, 16 + (size_t)(i % 4) * 16);
    if (p == NULL) { ok = false; break; }
    p[0] = (uint32_t)i;
  }
  CHECK(ok);
  n = 0;
  keel_heap_visit(h, count_visit, &n);
  CHECK(n == 1000000);
  size_t peak = committed();
  keel_heap_destroy(h);
  malloc_trim(0);
  size_t after = committed();
  CHECKF(peak > base + 20 * 1024 * 1024 && after < base + 2 * 1024 * 1024,
         "committed: base %zu, with a million blocks %zu, after destroy %zu", base, peak, after);

  /* delete keeps blocks valid in the default heap */
  h = keel_heap_new();
  char *keep = keel_heap_malloc(h, 100), *keepbig = keel_heap_malloc(h, 500000);
  strcpy(keep, "still here");
  memset(keepbig, 3, 500000);
  keel_heap_delete(h);
  CHECK(strcmp(keep, "still here") == 0 && keepbig[499999] == 3);
  CHECK(keel_heap_contains(keel_heap_default(), keep));
  free(keep);
  free(keepbig);

  /* a heap outlives nothing: its thread's exit kills the handle, not the blocks */
  void *out[3];
  pthread_create(&t, NULL, make_heap_and_exit, out);
  pthread_join(t, NULL);
  CHECK(strcmp(out[0], "outlives its thread") == 0 && ((char *)out[1])[299999] == 7);
  errno = 0;
  CHECK(keel_heap_malloc(out[2], 10) == NULL);
  free(out[0]);
  free(out[1]);
  return KL_DONE();
}
