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

  /* impossible sizes */
  errno = 0; CHECK(keel_heap_malloc(h, SIZE_MAX - 10) == NULL && errno == ENOMEM);
  errno = 0; CHECK(keel_heap_calloc(h, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  errno = 0; CHECK(keel_heap_aligned_alloc(h, 48, 10) == NULL && errno == EINVAL);

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
