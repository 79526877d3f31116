/* keel's contract on wasm32 (tests/suites/wasm.sh builds this with emcc and
 * with clang --target=wasm32-wasi and runs it under node): alignment,
 * malloc(0), usable size, calloc zeroing and overflow, realloc semantics,
 * the aligned family and its argument checks, impossible sizes, errno,
 * reuse of freed memory, and the heap walker after each group. */
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"
#include "harness.h"

/* Not in every libc's headers; keel defines them all. */
void *memalign(size_t, size_t);
void *valloc(size_t);
void *pvalloc(size_t);
void *reallocarray(void *, size_t, size_t);
int keel_wasm_heap_check(void);
size_t keel_wasm_memory_size(void);
#define ALIGN __alignof__(max_align_t)
#define HEAP_OK() CHECKF(keel_wasm_heap_check() == 0, "heap check %d", keel_wasm_heap_check())

static int aligned(void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }
static int zero(const unsigned char *p, size_t n) { while (n--) if (*p++) return 0; return 1; }

static void test_basic(void) {
  void *ps[200];
  for (size_t i = 0; i < 200; i++) {
    size_t n = i * 7;
    ps[i] = keel_malloc(n);
    CHECK(ps[i] != NULL);
    CHECK(aligned(ps[i], ALIGN));
    CHECK(keel_usable_size(ps[i]) >= n);
    memset(ps[i], (int)i, keel_usable_size(ps[i]));
  }
  for (size_t i = 0; i < 200; i++) {
    for (size_t j = 0; j < 200; j += 37) if (i != j) CHECK(ps[i] != ps[j]);
    free(ps[i]);
  }
  void *a = malloc(0), *b = malloc(0);
  CHECK(a && b && a != b);
  free(a); free(b);
  CHECK(keel_usable_size(NULL) == 0);
  errno = 1234; free(NULL); keel_free(malloc(10)); CHECK(errno == 1234);
  CHECK(keel_version() == KEEL_VERSION);
  HEAP_OK();
}

static void test_calloc(void) {
  unsigned char *p = malloc(4000);
  memset(p, 0xab, 4000);
  free(p);
  unsigned char *q = calloc(1000, 4);          /* likely reuses the dirty block */
  CHECK(q && zero(q, 4000));
  free(q);
  errno = 0; CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  errno = 0; CHECK(calloc(65536, 65536) == NULL && errno == ENOMEM);   /* wraps to 0 on 32 bits */
  errno = 0; CHECK(keel_calloc(SIZE_MAX, SIZE_MAX) == NULL && errno == ENOMEM);
  void *z = calloc(0, 10); CHECK(z != NULL); free(z);
  HEAP_OK();
}

static void test_realloc(void) {
  unsigned char *p = realloc(NULL, 10);
  CHECK(p != NULL);
  for (int i = 0; i < 10; i++) p[i] = (unsigned char)i;
  for (size_t n = 16; n < 200000; n = n * 3 / 2) {
    unsigned char *q = realloc(p, n);
    CHECK(q != NULL);
    if (!q) return;
    p = q;
    int ok = 1;
    for (int i = 0; i < 10; i++) ok &= p[i] == i;
    CHECK(ok);
    CHECK(keel_usable_size(p) >= n);
    memset(p + 10, 0x5a, n - 10);
  }
  p = realloc(p, 5);                           /* shrink keeps the prefix */
  CHECK(p && p[0] == 0 && p[4] == 4);
  errno = 0;
  CHECK(realloc(p, SIZE_MAX - 8) == NULL && errno == ENOMEM);
  CHECK(p[3] == 3);                            /* still valid after a failure */
  CHECK(realloc(p, 0) == NULL);                /* frees, as glibc does */
  errno = 0;
  CHECK(reallocarray(NULL, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
  void *r = reallocarray(NULL, 10, 10); CHECK(r != NULL); free(r);
  /* grow in place into a freed neighbour */
  char *a = malloc(100), *b = malloc(100), *c = malloc(100);
  free(b);
  CHECK(realloc(a, 180) == a);
  free(a); free(c);
  HEAP_OK();
}

static void test_aligned(void) {
  for (size_t al = 1; al <= 65536; al *= 2) {
    for (size_t n = 0; n < 300; n += 77) {
      void *p = aligned_alloc(al, n);
      CHECK(p && aligned(p, al) && aligned(p, ALIGN));
      CHECK(keel_usable_size(p) >= n);
      memset(p, 1, n);
      void *q = NULL;
      CHECK(al < sizeof(void *) ? posix_memalign(&q, al, n) == EINVAL
                                : posix_memalign(&q, al, n) == 0 && aligned(q, al));
      void *m = memalign(al, n);
      CHECK(m && aligned(m, al));
      free(p); free(q); free(m);
    }
  }
  void *v = valloc(100); CHECK(v && aligned(v, 65536)); free(v);
  void *pv = pvalloc(100); CHECK(pv && aligned(pv, 65536) && keel_usable_size(pv) >= 65536); free(pv);
  size_t al24 = 24;
  errno = 0; CHECK(aligned_alloc(al24, 10) == NULL && errno == EINVAL);
  errno = 0; CHECK(keel_aligned_alloc(0x80000000u, 10) == NULL && errno == ENOMEM);
  errno = 0; CHECK(aligned_alloc(64, SIZE_MAX) == NULL && errno == ENOMEM);
  void *o = (void *)0x1;
  CHECK(posix_memalign(&o, 3, 8) == EINVAL && o == (void *)0x1);
  CHECK(posix_memalign(&o, 0, 8) == EINVAL && o == (void *)0x1);
  CHECK(posix_memalign(&o, 64, SIZE_MAX - 100) == ENOMEM && o == (void *)0x1);
  CHECK(keel_posix_memalign(&o, 4096, 1) == 0 && aligned(o, 4096));
  free(o);
  HEAP_OK();
}

static void test_impossible(void) {
  size_t bad[] = { SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096, SIZE_MAX / 2, (size_t)1 << 31, 0xfffffff0u };
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    CHECK(malloc(bad[i]) == NULL && errno == ENOMEM);
  }
  HEAP_OK();
}

/* Freed memory is reused: the second round of the same sizes must not grow
 * linear memory. */
static void test_reuse(void) {
  enum { N = 2000 };
  static void *p[N];
  for (int round = 0; round < 2; round++) {
    size_t before = keel_wasm_memory_size();
    for (int i = 0; i < N; i++) { p[i] = malloc((size_t)(i % 97) * 40 + 1); CHECK(p[i] != NULL); }
    for (int i = 0; i < N; i += 2) free(p[i]);
    for (int i = 1; i < N; i += 2) free(p[i]);
    if (round == 1) CHECK(keel_wasm_memory_size() == before);
  }
  HEAP_OK();
}

/* Grow well past the initial memory, free it all, do it again: memory grows
 * geometrically and not again the second time. */
static void test_grow(void) {
  enum { N = 64 };
  static void *p[N];
  size_t first = 0;
  for (int round = 0; round < 2; round++) {
    int got = 0;
    for (int i = 0; i < N; i++) { p[i] = malloc(1 << 20); got += p[i] != NULL; if (p[i]) memset(p[i], i, 1 << 20); }
    if (round == 0) first = keel_wasm_memory_size();
    else CHECK(keel_wasm_memory_size() == first);
#ifdef KL_NO_GROWTH
    CHECK(got < N);                            /* fixed memory: some fail, cleanly */
#else
    CHECK(got == N);
#endif
    for (int i = 0; i < N; i++) {
      if (p[i]) CHECK(((unsigned char *)p[i])[(1 << 20) - 1] == (unsigned char)i);
      free(p[i]);
    }
  }
  HEAP_OK();
}

int main(void) {
  test_basic();
  test_calloc();
  test_realloc();
  test_aligned();
  test_impossible();
  test_reuse();
  test_grow();
  return KL_DONE();
}
