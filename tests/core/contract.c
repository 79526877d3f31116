/* contract.c — the allocation contract, exactly as glibc's users rely on it.
 * Built twice: with -DUSE_KEEL_API through keel.h's keel_* names, and
 * through the standard names with libkeel linked (then the first check
 * asserts that malloc really is keel's). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "keel.h"
#include "../harness.h"

#ifdef USE_KEEL_API
#define MALLOC keel_malloc
#define CALLOC keel_calloc
#define REALLOC keel_realloc
#define FREE keel_free
#define ALIGNED keel_aligned_alloc
#define POSIX_MEMALIGN keel_posix_memalign
#define USABLE keel_usable_size
#else
#define MALLOC malloc
#define CALLOC calloc
#define REALLOC realloc
#define FREE free
#define ALIGNED aligned_alloc
#define POSIX_MEMALIGN posix_memalign
#define USABLE malloc_usable_size
#endif

static size_t sizes[] = { 0, 1, 7, 8, 15, 16, 17, 24, 100, 127, 128, 129, 1000, 1023, 1024, 1025, 4096,
                          8191, 8192, 8193, 65536, 131071, 131072, 131073, 1 << 20, (4 << 20) - 1, 4 << 20,
                          (4 << 20) + 1, 32 << 20 };
#define NSIZES (sizeof sizes / sizeof *sizes)

static void fill(uint8_t *p, size_t n, uint8_t seed) { for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 7); }
static bool same(const uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++) if (p[i] != (uint8_t)(seed + i * 7)) return false;
  return true;
}
static bool aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

int main(void) {
#ifndef USE_KEEL_API
  Dl_info info;
  CHECKF(dladdr((void *)&malloc, &info) && info.dli_fname && strstr(info.dli_fname, "libkeel"),
         "malloc comes from %s", info.dli_fname ? info.dli_fname : "?");
#endif
  CHECK(keel_version() == KEEL_VERSION && keel_version() / 10000 == KEEL_VERSION_MAJOR);

  /* 16-byte alignment, usable size, writable, every regime */
  for (size_t i = 0; i < NSIZES; i++) {
    uint8_t *p = MALLOC(sizes[i]);
    CHECKF(p != NULL && aligned(p, 16), "malloc(%zu) = %p", sizes[i], (void *)p);
    size_t u = USABLE(p);
    CHECKF(u >= sizes[i], "usable %zu < %zu", u, sizes[i]);
    memset(p, 0xEE, u);
    FREE(p);
  }
  /* malloc(0): unique, freeable */
  void *z1 = MALLOC(0), *z2 = MALLOC(0);
  CHECK(z1 != NULL && z2 != NULL && z1 != z2);
  FREE(z1); FREE(z2);
  FREE(NULL);
  CHECK(USABLE(NULL) == 0);

  /* impossible sizes: NULL and ENOMEM, never a crash */
  size_t bad[] = { SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, (size_t)PTRDIFF_MAX, (size_t)1 << 62 };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    errno = 0;
    CHECKF(MALLOC(bad[i]) == NULL && errno == ENOMEM, "malloc(%zu)", bad[i]);
    errno = 0;
    CHECK(CALLOC(1, bad[i]) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(ALIGNED(64, bad[i]) == NULL && errno == ENOMEM);
    void *out = (void *)1;
    CHECK(POSIX_MEMALIGN(&out, 64, bad[i]) == ENOMEM && out == (void *)1);
  }
  errno = 0;
  CHECK(CALLOC(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(CALLOC((size_t)1 << 33, (size_t)1 << 33) == NULL && errno == ENOMEM);
#ifndef USE_KEEL_API
  errno = 0;
  CHECK(reallocarray(NULL, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  void *ra = reallocarray(NULL, 10, 10);
  CHECK(ra != NULL && USABLE(ra) >= 100);
  free(ra);
#endif
  uint8_t *keep = MALLOC(1000);
  fill(keep, 1000, 3);
  errno = 0;
  CHECK(REALLOC(keep, SIZE_MAX - 100) == NULL && errno == ENOMEM);
  CHECK(same(keep, 1000, 3));        /* the old block stays valid */
  FREE(keep);

  /* calloc is zero, also memory recycled from earlier frees */
  for (size_t i = 1; i < NSIZES; i++) {
    size_t n = sizes[i];
    for (int round = 0; round < 3; round++) {
      uint8_t *d = MALLOC(n);
      memset(d, 0xAB, n);
      FREE(d);
      uint8_t *c = CALLOC(1, n);
      bool zero = c != NULL;
      for (size_t k = 0; zero && k < n; k++) zero = c[k] == 0;
      CHECKF(zero, "calloc(%zu) not zero", n);
      FREE(c);
    }
  }
  /* huge blocks taking turns in one cached segment, bigger, smaller, then
   * bigger again: what each wrote must read as zero to the next calloc
   * (keel tracks how far a cached segment was written, segment.c) */
  size_t turns[] = { 3 << 20, 1 << 20, (3 << 20) - 4096, 300000, 2 << 20 };
  for (size_t i = 0; i < sizeof turns / sizeof *turns; i++) {
    uint8_t *c = CALLOC(1, turns[i]);
    bool zero = c != NULL;
    for (size_t k = 0; zero && k < turns[i]; k++) zero = c[k] == 0;
    CHECKF(zero, "calloc(%zu) after other huge blocks not zero", turns[i]);
    if (c) memset(c, 0xAB, turns[i]);
    FREE(c);
  }
  uint8_t *cz = CALLOC(1000, 8);
  bool zz = true;
  for (int k = 0; k < 8000; k++) zz = zz && cz[k] == 0;
  CHECK(zz);
  FREE(cz);

  /* realloc keeps contents while growing and shrinking through every regime */
  size_t path[] = { 1, 24, 1000, 8000, 100000, 300000, 1 << 20, 9 << 20, 64 << 20, 9 << 20, 300000,
                    100000, 8000, 1000, 24, 1 };
  uint8_t *r = NULL;
  size_t have = 0;
  for (size_t i = 0; i < sizeof path / sizeof *path; i++) {
    uint8_t *q = REALLOC(r, path[i]);
    CHECKF(q != NULL, "realloc to %zu", path[i]);
    size_t keepn = have < path[i] ? have : path[i];
    CHECKF(same(q, keepn, 42), "realloc to %zu lost contents", path[i]);
    fill(q, path[i], 42);
    r = q;
    have = path[i];
  }
  FREE(r);
  /* grows in place when it can: a huge block (above 256 KiB) inside its
   * mapping, and by mremap (the pointer may move, the bytes must not be
   * copied wrong) */
  uint8_t *g = MALLOC(300000);
  fill(g, 300000, 5);
  uint8_t *g2 = REALLOC(g, 600000);
  /* The secure build (guard pages) and the debug build (checks on every
   * move) always copy: the suite says so with CONTRACT_REALLOC_COPIES. */
  CHECK((getenv("CONTRACT_REALLOC_COPIES") || g2 == g) && same(g2, 300000, 5));
  FREE(g2);
  CHECK(REALLOC(MALLOC(16), 0) == NULL);   /* glibc: frees and returns NULL */

  /* alignment: errors, then every power of two up to 16 MiB */
  void *out = (void *)1;
  CHECK(POSIX_MEMALIGN(&out, 0, 16) == EINVAL && out == (void *)1);
  CHECK(POSIX_MEMALIGN(&out, 4, 16) == EINVAL);      /* not a multiple of sizeof(void *) */
  CHECK(POSIX_MEMALIGN(&out, 24, 16) == EINVAL);     /* not a power of two */
  errno = 0; CHECK(ALIGNED(24, 16) == NULL && errno == EINVAL);
  errno = 0; CHECK(ALIGNED(3, 16) == NULL && errno == EINVAL);
  errno = 0; CHECK(ALIGNED(0, 16) == NULL && errno == EINVAL);
  size_t asz[] = { 1, 100, 5000, 300000 };
  for (size_t a = 8; a <= ((size_t)16 << 20); a <<= 1) {
    for (size_t k = 0; k < 4; k++) {
      uint8_t *p1 = ALIGNED(a, asz[k]);
      void *p2 = NULL;
      int rc = POSIX_MEMALIGN(&p2, a, asz[k]);
      CHECKF(p1 && aligned(p1, a) && rc == 0 && aligned(p2, a), "alignment %zu size %zu", a, asz[k]);
      CHECK(USABLE(p1) >= asz[k] && USABLE(p2) >= asz[k]);
      memset(p1, 1, USABLE(p1));
      memset(p2, 2, USABLE(p2));
#ifndef USE_KEEL_API
      uint8_t *p3 = memalign(a, asz[k]);
      CHECKF(p3 && aligned(p3, a), "memalign %zu", a);
      memset(p3, 3, malloc_usable_size(p3));
      free(p3);
#endif
      FREE(p1); FREE(p2);
    }
  }
#ifndef USE_KEEL_API
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uint8_t *v = valloc(100);
  CHECK(v && aligned(v, page) && malloc_usable_size(v) >= 100);
  uint8_t *pv = pvalloc(100);
  CHECK(pv && aligned(pv, page) && malloc_usable_size(pv) >= page);
  memset(pv, 1, page);
  uint8_t *pv0 = pvalloc(0);
  CHECK(pv0 && aligned(pv0, page) && malloc_usable_size(pv0) >= page);
  free(v); free(pv); free(pv0);
  uint8_t *m3 = memalign(48, 10);   /* glibc rounds a non-power of two up */
  CHECK(m3 && aligned(m3, 64));
  free(m3);
#endif

  /* free preserves errno */
  void *e = MALLOC(64), *e2 = MALLOC(10 << 20);
  errno = 1234;
  FREE(e); FREE(e2);
  CHECK(errno == 1234);

  /* many live blocks of mixed sizes keep their contents */
  enum { N = 20000 };
  static uint8_t *blk[N];
  static size_t bsz[N];
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < N; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    bsz[i] = (x % 16 == 0) ? x % 200000 : x % 600;
    blk[i] = MALLOC(bsz[i]);
    fill(blk[i], bsz[i], (uint8_t)i);
  }
  bool ok = true;
  for (int i = 0; i < N; i += 2) { ok = ok && same(blk[i], bsz[i], (uint8_t)i); FREE(blk[i]); }
  for (int i = 0; i < N; i += 2) { blk[i] = MALLOC(bsz[i]); fill(blk[i], bsz[i], (uint8_t)i); }
  for (int i = 0; i < N; i++) { ok = ok && same(blk[i], bsz[i], (uint8_t)i); FREE(blk[i]); }
  CHECK(ok);
  return KL_DONE();
}
