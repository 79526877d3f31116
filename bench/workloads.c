/* workloads.c — the allocation workloads of `make bench`, one program.
 *
 *   kbench WORKLOAD THREADS SCALE
 *
 * The allocator under test is whatever malloc the process resolves to (the
 * driver sets LD_PRELOAD), so this file calls only the standard C family.
 * Workloads are modelled on the classic allocator benchmarks (larson,
 * xmalloc, cache-scratch/thrash, alloc-test, sh6bench/sh8bench, glibc's
 * bench-malloc-simple/-thread, malloc-large) but written from scratch.
 *
 * Work per thread is fixed (SCALE multiplies it), so total work grows with
 * THREADS, as in the classic suites: on a 2-core machine 4 threads measure
 * behaviour under oversubscription.
 *
 * Every block carries a pattern (its size and a per-block seed at the start,
 * then one word per 64 bytes and the last word) written after allocation and
 * verified before free; a block handed to two owners, a list that corrupts a
 * block, or a lost block makes the program print "kbench: CHECK FAILED" and
 * exit 3, so an allocator that corrupts memory cannot look fast. On success
 * it prints "ok WORKLOAD ..." and, for some workloads, "metric NAME VALUE"
 * lines that the driver records.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *wl_name = "?";
static long scale = 1;
static int nthreads = 1;
static _Atomic long total_allocs, total_frees;

/* Failure is fatal at once: timing a broken run is pointless. */
__attribute__((noreturn, format(printf, 1, 2)))
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "kbench: CHECK FAILED in %s: ", wl_name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(3);
}

/* xorshift64*: cheap, per thread, deterministic per seed. */
static inline uint64_t rnd(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) fail("malloc(%zu) returned NULL", n);
  /* 16-byte alignment is owed only to blocks that can hold a 16-byte object. */
  if ((uintptr_t)p & (n >= 16 ? 15 : 7)) fail("malloc(%zu) returned %p, misaligned", n, p);
  return p;
}

/* ---- block patterns ------------------------------------------------------
 * Word 0 = size, word 1 = seed, then a word every 64 bytes (one store per
 * cache line, so the cost is that of touching the block, not of memset) and
 * the last 8 bytes (from 24 bytes up, so it never overlaps the header; step
 * words stop short of it). Minimum block size is 16. */
static inline uint64_t pword(uint64_t seed, size_t off) {
  return seed ^ (off * 0x9E3779B97F4A7C15ull);
}
static void fill_step(void *p, size_t n, uint64_t seed, size_t step) {
  unsigned char *c = p;
  uint64_t v;
  ((uint64_t *)p)[0] = n;
  ((uint64_t *)p)[1] = seed;
  for (size_t o = step; o + 16 <= n; o += step) { v = pword(seed, o); memcpy(c + o, &v, 8); }
  if (n >= 24) { v = pword(seed, n - 8) ^ 0xA5; memcpy(c + n - 8, &v, 8); }
}
static void check_step(const void *p, size_t n, uint64_t seed, size_t step) {
  const unsigned char *c = p;
  uint64_t v;
  if (((const uint64_t *)p)[0] != n || ((const uint64_t *)p)[1] != seed)
    fail("block %p header: size %llu seed %llx, expected %zu %llx", p,
         (unsigned long long)((const uint64_t *)p)[0],
         (unsigned long long)((const uint64_t *)p)[1], n, (unsigned long long)seed);
  for (size_t o = step; o + 16 <= n; o += step) {
    memcpy(&v, c + o, 8);
    if (v != pword(seed, o)) fail("block %p size %zu corrupted at offset %zu", p, n, o);
  }
  if (n < 24) return;  /* the tail word would overlap the header */
  memcpy(&v, c + n - 8, 8);
  if (v != (pword(seed, n - 8) ^ 0xA5)) fail("block %p size %zu corrupted at its end", p, n);
}
static inline void fill(void *p, size_t n, uint64_t seed) { fill_step(p, n, seed, 64); }
static inline void check(const void *p, size_t n, uint64_t seed) { check_step(p, n, seed, 64); }
/* For blocks whose size the owner no longer knows: header says it. */
static inline size_t hsize(const void *p) { return (size_t)((const uint64_t *)p)[0]; }
static inline uint64_t hseed(const void *p) { return ((const uint64_t *)p)[1]; }
static void check_free(void *p) {
  size_t n = hsize(p);
  if (n < 16 || n > ((size_t)1 << 36)) fail("block %p has a corrupted size word %zu", p, n);
  check(p, n, hseed(p));
  free(p);
}

/* A thread's own state: its random generator and counters change on every
 * step, so each context has a cache line to itself. Packed two to a line
 * (as they were until 2026-11-30), the threads' steps false-shared: in
 * larson/2t about a fifth of the samples sat on the counter increments,
 * for every allocator, which measured the benchmark, not the allocator. */
typedef struct { int id; long allocs, frees; uint64_t rng; } __attribute__((aligned(64))) tctx_t;

static void run_threads(void *(*fn)(void *), tctx_t *ctx, int n) {
  pthread_t *th = xmalloc(sizeof(pthread_t) * (size_t)n);
  for (int i = 0; i < n; i++) {
    ctx[i].id = i; ctx[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) + 12345;
    if (pthread_create(&th[i], NULL, fn, &ctx[i])) fail("pthread_create");
  }
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < n; i++) { total_allocs += ctx[i].allocs; total_frees += ctx[i].frees; }
  free(th);
}

/* ---- larson: server churn --------------------------------------------------
 * A shared array of slots; every thread replaces random slots with fresh
 * blocks (atomic exchange) and frees what it took out. The block taken out
 * was almost always made by another thread, so most frees are remote. */
static _Atomic(void *) *lr_slots;
static size_t lr_nslots;
static void *larson_thread(void *a) {
  tctx_t *t = a;
  long iters = 20000 * scale;
  for (long i = 0; i < iters; i++) {
    uint64_t r = rnd(&t->rng);
    size_t n = 16 + (r >> 8) % 497;
    void *p = xmalloc(n); t->allocs++;
    fill(p, n, r);
    void *old = atomic_exchange_explicit(&lr_slots[r % lr_nslots], p, memory_order_acq_rel);
    if (old) { check_free(old); t->frees++; }
  }
  return NULL;
}
static void wl_larson(void) {
  lr_nslots = 2000 * (size_t)nthreads;
  lr_slots = calloc(lr_nslots, sizeof(*lr_slots));
  uint64_t s = 77;
  for (size_t i = 0; i < lr_nslots; i++) {  /* main thread fills first: its blocks are freed remotely */
    uint64_t r = rnd(&s); size_t n = 16 + (r >> 8) % 497;
    void *p = xmalloc(n); fill(p, n, r); lr_slots[i] = p; total_allocs++;
  }
  tctx_t ctx[nthreads]; memset(ctx, 0, sizeof ctx);
  run_threads(larson_thread, ctx, nthreads);
  for (size_t i = 0; i < lr_nslots; i++) if (lr_slots[i]) { check_free(lr_slots[i]); total_frees++; }
  free(lr_slots);
}

/* ---- xmalloc: producer/consumer ------------------------------------------
 * Producers allocate batches of blocks and queue them; consumers verify and
 * free them. Every free is remote. THREADS splits into producers and
 * consumers (1 thread still means one of each). */
#define XM_BATCH 256
typedef struct { int n; void *p[XM_BATCH]; } xm_batch_t;
static pthread_mutex_t xm_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t xm_cv = PTHREAD_COND_INITIALIZER;
#define XM_QCAP 64
static xm_batch_t *xm_q[XM_QCAP];
static int xm_head, xm_count, xm_producers_left;
static void *xm_producer(void *a) {
  tctx_t *t = a;
  long batches = 80 * scale;
  for (long b = 0; b < batches; b++) {
    xm_batch_t *bt = xmalloc(sizeof *bt); t->allocs++;
    bt->n = XM_BATCH;
    for (int i = 0; i < XM_BATCH; i++) {
      uint64_t r = rnd(&t->rng); size_t n = 16 + (r >> 8) % 1009;
      bt->p[i] = xmalloc(n); fill(bt->p[i], n, r); t->allocs++;
    }
    pthread_mutex_lock(&xm_mu);
    while (xm_count == XM_QCAP) pthread_cond_wait(&xm_cv, &xm_mu);
    xm_q[(xm_head + xm_count++) % XM_QCAP] = bt;
    pthread_cond_broadcast(&xm_cv);
    pthread_mutex_unlock(&xm_mu);
  }
  pthread_mutex_lock(&xm_mu);
  xm_producers_left--;
  pthread_cond_broadcast(&xm_cv);
  pthread_mutex_unlock(&xm_mu);
  return NULL;
}
static void *xm_consumer(void *a) {
  tctx_t *t = a;
  for (;;) {
    pthread_mutex_lock(&xm_mu);
    while (xm_count == 0 && xm_producers_left > 0) pthread_cond_wait(&xm_cv, &xm_mu);
    if (xm_count == 0) { pthread_mutex_unlock(&xm_mu); return NULL; }
    xm_batch_t *bt = xm_q[xm_head]; xm_head = (xm_head + 1) % XM_QCAP; xm_count--;
    pthread_cond_broadcast(&xm_cv);
    pthread_mutex_unlock(&xm_mu);
    for (int i = 0; i < bt->n; i++) { check_free(bt->p[i]); t->frees++; }
    free(bt); t->frees++;
  }
}
static int xm_nprod;
static void *xm_role(void *a) {
  tctx_t *t = a;
  return t->id < xm_nprod ? xm_producer(a) : xm_consumer(a);
}
static void wl_xmalloc(void) {
  int n = nthreads > 1 ? nthreads : 2;
  xm_nprod = xm_producers_left = n / 2;
  tctx_t ctx[n]; memset(ctx, 0, sizeof ctx);
  run_threads(xm_role, ctx, n);
}

/* ---- false sharing: cache-scratch and cache-thrash ----------------------
 * The main thread allocates one small block per thread (neighbours, likely
 * in one cache line) and hands them out; each thread frees its block (a
 * remote free), then repeatedly allocates a small block, writes it hard and
 * frees it. An allocator that gives the freed neighbour back to the new
 * owner puts several threads' hot data in one cache line. */
static void **fs_handed;
static void *fs_thread(void *a) {
  tctx_t *t = a;
  check_free(fs_handed[t->id]); t->frees++;
  long iters = 2000 * scale;
  for (long i = 0; i < iters; i++) {
    uint64_t *p = xmalloc(16); t->allocs++;
    volatile uint64_t *v = p;
    v[0] = 0; v[1] = (uint64_t)i;
    for (int k = 0; k < 200; k++) { v[0] += (uint64_t)k; v[1] ^= (uint64_t)k; }
    if (v[0] != 19900 || v[1] != (uint64_t)i) /* 0^1^...^199 == 0 */ fail("scratch block %p lost writes", (void *)p);
    free(p); t->frees++;
  }
  return NULL;
}
static void wl_false_sharing(void) {
  fs_handed = xmalloc(sizeof(void *) * (size_t)nthreads);
  for (int i = 0; i < nthreads; i++) { fs_handed[i] = xmalloc(16); fill(fs_handed[i], 16, (uint64_t)i + 5); total_allocs++; }
  tctx_t ctx[nthreads]; memset(ctx, 0, sizeof ctx);
  run_threads(fs_thread, ctx, nthreads);
  free(fs_handed);
}

/* ---- alloc-test: mixed sizes with a live set -----------------------------
 * Each thread keeps 1,000 live blocks and replaces random ones; sizes are
 * mostly small with a tail up to 64 KiB; one in 16 comes from calloc and
 * must read back zero. */
static size_t at_size(uint64_t r) {
  unsigned k = (unsigned)(r % 100); r >>= 8;
  if (k < 80) return 16 + r % 113;
  if (k < 96) return 128 + r % 897;
  if (k < 99) return 1024 + r % 7169;
  return 8192 + r % 57345;
}
static void *at_thread(void *a) {
  tctx_t *t = a;
  enum { LIVE = 1000 };
  void *live[LIVE] = {0};
  long iters = 15000 * scale;
  for (long i = 0; i < iters; i++) {
    uint64_t r = rnd(&t->rng);
    unsigned slot = (unsigned)(r >> 40) % LIVE;
    if (live[slot]) { check_free(live[slot]); t->frees++; }
    size_t n = at_size(r);
    void *p;
    if ((r & 15) == 0) {
      p = calloc(1, n);
      if (!p) fail("calloc(1, %zu) returned NULL", n);
      for (size_t o = 0; o < n; o += 64) if (((unsigned char *)p)[o]) fail("calloc block %p not zero at %zu", p, o);
    } else p = xmalloc(n);
    fill(p, n, r); live[slot] = p; t->allocs++;
  }
  for (unsigned s = 0; s < LIVE; s++) if (live[s]) { check_free(live[s]); t->frees++; }
  return NULL;
}
static void wl_alloc_test(void) {
  tctx_t ctx[nthreads]; memset(ctx, 0, sizeof ctx);
  run_threads(at_thread, ctx, nthreads);
}

/* ---- sh6bench / sh8bench: many sizes, varied free order, cross-thread ----
 * Each round a thread allocates 2,000 blocks cycling through 40 sizes, hands
 * the second half to its neighbour (through a mailbox, after a barrier) and
 * frees the first half in forward, reverse or odd-then-even order. */
#define SH_N 2000
static void ***sh_mail;
static pthread_barrier_t sh_bar;
static const size_t sh_sizes[] = {16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256,
  320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4000,
  17, 33, 65, 129, 257, 513, 1025, 2049, 100};
static void *sh_thread(void *a) {
  tctx_t *t = a;
  void **mine = xmalloc(sizeof(void *) * SH_N);
  long rounds = 12 * scale;
  for (long rd = 0; rd < rounds; rd++) {
    for (int i = 0; i < SH_N; i++) {
      size_t n = sh_sizes[(size_t)(i * 7 + rd) % (sizeof sh_sizes / sizeof sh_sizes[0])];
      mine[i] = xmalloc(n); fill(mine[i], n, rnd(&t->rng)); t->allocs++;
    }
    memcpy(sh_mail[t->id], mine + SH_N / 2, sizeof(void *) * (SH_N / 2));
    pthread_barrier_wait(&sh_bar);
    void **theirs = sh_mail[(t->id + 1) % nthreads];
    for (int i = SH_N / 2 - 1; i >= 0; i--) { check_free(theirs[i]); t->frees++; }
    switch (rd % 3) {
    case 0: for (int i = 0; i < SH_N / 2; i++) check_free(mine[i]); break;
    case 1: for (int i = SH_N / 2 - 1; i >= 0; i--) check_free(mine[i]); break;
    default:
      for (int i = 1; i < SH_N / 2; i += 2) check_free(mine[i]);
      for (int i = 0; i < SH_N / 2; i += 2) check_free(mine[i]);
    }
    t->frees += SH_N / 2;
    pthread_barrier_wait(&sh_bar);  /* mailboxes are rewritten next round */
  }
  free(mine);
  return NULL;
}
static void wl_sh8(void) {
  sh_mail = xmalloc(sizeof(void **) * (size_t)nthreads);
  for (int i = 0; i < nthreads; i++) sh_mail[i] = xmalloc(sizeof(void *) * (SH_N / 2));
  pthread_barrier_init(&sh_bar, NULL, (unsigned)nthreads);
  tctx_t ctx[nthreads]; memset(ctx, 0, sizeof ctx);
  run_threads(sh_thread, ctx, nthreads);
  for (int i = 0; i < nthreads; i++) free(sh_mail[i]);
  free(sh_mail);
}

/* ---- tight: glibc bench-malloc-simple / -thread ---------------------------
 * A tight loop per thread: allocate a small block, free the one allocated
 * 32 steps earlier. Measures the fast paths with little else. */
static void *tight_thread(void *a) {
  tctx_t *t = a;
  enum { RING = 32 };
  void *ring[RING] = {0};
  long iters = 200000 * scale;
  for (long i = 0; i < iters; i++) {
    uint64_t r = rnd(&t->rng);
    size_t n = 16 + (r >> 16) % 241;
    unsigned k = (unsigned)i % RING;
    if (ring[k]) { check_free(ring[k]); t->frees++; }
    ring[k] = xmalloc(n); fill(ring[k], n, r); t->allocs++;
  }
  for (int k = 0; k < RING; k++) if (ring[k]) { check_free(ring[k]); t->frees++; }
  return NULL;
}
static void wl_tight(void) {
  tctx_t ctx[nthreads]; memset(ctx, 0, sizeof ctx);
  run_threads(tight_thread, ctx, nthreads);
}

/* ---- large: malloc-large, 64 KiB to 32 MiB --------------------------------
 * Eight live blocks per thread, replaced at random; sizes log-uniform from
 * 64 KiB to 32 MiB; every 4 KiB page is touched. */
static void *large_thread(void *a) {
  tctx_t *t = a;
  enum { LIVE = 8 };
  void *live[LIVE] = {0};
  long iters = 40 * scale;
  for (long i = 0; i < iters; i++) {
    uint64_t r = rnd(&t->rng);
    unsigned slot = (unsigned)(r >> 50) % LIVE;
    if (live[slot]) { check_step(live[slot], hsize(live[slot]), hseed(live[slot]), 4096); free(live[slot]); t->frees++; }
    unsigned sh = 16 + (unsigned)(r % 10);          /* 64 KiB .. 32 MiB */
    size_t n = ((size_t)1 << sh) + (size_t)((r >> 8) % ((size_t)1 << sh));
    if (n > ((size_t)32 << 20)) n = (size_t)32 << 20;
    live[slot] = xmalloc(n); fill_step(live[slot], n, r, 4096); t->allocs++;
  }
  for (int s = 0; s < LIVE; s++) if (live[s]) { check_step(live[s], hsize(live[s]), hseed(live[s]), 4096); free(live[s]); t->frees++; }
  return NULL;
}
static void wl_large(void) {
  tctx_t ctx[nthreads]; memset(ctx, 0, sizeof ctx);
  run_threads(large_thread, ctx, nthreads);
}

/* ---- realloc: growing strings and arrays ---------------------------------
 * 200 strings grow a few bytes at a time (as a string builder does without
 * capacity) and 50 int arrays grow by doubling; contents are fully checked
 * when an object is retired at its maximum size and at the end. */
static unsigned char rs_byte(unsigned id, size_t i) { return (unsigned char)(id * 131u + i * 7u + (i >> 8)); }
static void *realloc_thread(void *a) {
  tctx_t *t = a;
  enum { NS = 200, NA = 50 };
  struct { unsigned char *p; size_t len; unsigned id; } s[NS] = {{0}};
  struct { uint32_t *p; size_t len, cap; unsigned id; } ar[NA] = {{0}};
  unsigned next_id = 1;
  long iters = 60000 * scale;
  for (long it = 0; it < iters; it++) {
    uint64_t r = rnd(&t->rng);
    if ((r & 7) != 0) {  /* a string appends 1..64 bytes */
      unsigned k = (unsigned)(r >> 8) % NS;
      if (!s[k].p) { s[k].id = next_id++; s[k].len = 0; }
      size_t add = 1 + (r >> 20) % 64;
      unsigned char *np = realloc(s[k].p, s[k].len + add);
      if (!np) fail("realloc returned NULL");
      if (!s[k].p) t->allocs++;
      if (s[k].len && np[s[k].len - 1] != rs_byte(s[k].id, s[k].len - 1)) fail("realloc lost string bytes");
      for (size_t i = 0; i < add; i++) np[s[k].len + i] = rs_byte(s[k].id, s[k].len + i);
      s[k].p = np; s[k].len += add;
      if (s[k].len > 32768) {
        for (size_t i = 0; i < s[k].len; i++) if (s[k].p[i] != rs_byte(s[k].id, i)) fail("string content lost at %zu", i);
        free(s[k].p); s[k].p = NULL; t->frees++;
      }
    } else {             /* an array pushes 16 values, doubling its capacity */
      unsigned k = (unsigned)(r >> 8) % NA;
      if (!ar[k].p) { ar[k].id = next_id++; ar[k].len = 0; ar[k].cap = 0; }
      for (int j = 0; j < 16; j++) {
        if (ar[k].len == ar[k].cap) {
          size_t nc = ar[k].cap ? ar[k].cap * 2 : 4;
          uint32_t *np = realloc(ar[k].p, nc * sizeof(uint32_t));
          if (!np) fail("realloc returned NULL");
          if (!ar[k].p) t->allocs++;
          ar[k].p = np; ar[k].cap = nc;
        }
        ar[k].p[ar[k].len] = (uint32_t)(ar[k].id * 2654435761u + ar[k].len); ar[k].len++;
      }
      if (ar[k].len >= 65536) {
        for (size_t i = 0; i < ar[k].len; i++) if (ar[k].p[i] != (uint32_t)(ar[k].id * 2654435761u + i)) fail("array content lost at %zu", i);
        free(ar[k].p); ar[k].p = NULL; t->frees++;
      }
    }
  }
  for (int k = 0; k < NS; k++) if (s[k].p) {
    for (size_t i = 0; i < s[k].len; i++) if (s[k].p[i] != rs_byte(s[k].id, i)) fail("string content lost at %zu", i);
    free(s[k].p); t->frees++;
  }
  for (int k = 0; k < NA; k++) if (ar[k].p) {
    for (size_t i = 0; i < ar[k].len; i++) if (ar[k].p[i] != (uint32_t)(ar[k].id * 2654435761u + i)) fail("array content lost at %zu", i);
    free(ar[k].p); t->frees++;
  }
  return NULL;
}
static void wl_realloc(void) {
  tctx_t ctx[nthreads]; memset(ctx, 0, sizeof ctx);
  run_threads(realloc_thread, ctx, nthreads);
}

/* ---- memory efficiency -----------------------------------------------------
 * Fill with small blocks, free 90% at random (fragmenting every page), then
 * allocate blocks of other (larger) sizes, then free everything. The driver
 * records peak RSS; this program reports the RSS 300 ms after the last free
 * (after one more malloc/free, as a program that goes on would make), which
 * shows whether freed memory goes back to the OS. Single-threaded; THREADS
 * runs that many independent copies in threads. */
static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f) { if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0; fclose(f); }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}
static void *memeff_thread(void *a) {
  tctx_t *t = a;
  size_t n1 = 25000 * (size_t)scale;
  void **v = xmalloc(sizeof(void *) * n1);
  for (size_t i = 0; i < n1; i++) {
    uint64_t r = rnd(&t->rng); size_t n = 16 + (r >> 8) % 1009;
    v[i] = xmalloc(n); fill(v[i], n, r); t->allocs++;
  }
  for (size_t i = 0; i < n1; i++) {  /* free 90% at random */
    if (rnd(&t->rng) % 10 != 0) { check_free(v[i]); v[i] = NULL; t->frees++; }
  }
  size_t n2 = n1 / 8;
  void **w = xmalloc(sizeof(void *) * n2);
  for (size_t i = 0; i < n2; i++) {
    uint64_t r = rnd(&t->rng); size_t n = 1500 + (r >> 8) % 4597;
    w[i] = xmalloc(n); fill(w[i], n, r); t->allocs++;
  }
  for (size_t i = 0; i < n1; i++) if (v[i]) { check_free(v[i]); t->frees++; }
  for (size_t i = 0; i < n2; i++) { check_free(w[i]); t->frees++; }
  free(v); free(w);
  return NULL;
}
static void wl_memeff(void) {
  tctx_t ctx[nthreads]; memset(ctx, 0, sizeof ctx);
  run_threads(memeff_thread, ctx, nthreads);
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, NULL);
  free(xmalloc(32));
  printf("metric rss_after_free_kib %ld\n", rss_kib());
}

static const struct { const char *name; void (*fn)(void); } workloads[] = {
  {"larson", wl_larson}, {"xmalloc", wl_xmalloc}, {"false-sharing", wl_false_sharing},
  {"alloc-test", wl_alloc_test}, {"sh8", wl_sh8}, {"tight", wl_tight},
  {"large", wl_large}, {"realloc", wl_realloc}, {"memeff", wl_memeff},
};

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: kbench WORKLOAD THREADS SCALE\nworkloads:");
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) fprintf(stderr, " %s", workloads[i].name);
    fputc('\n', stderr);
    return 2;
  }
  nthreads = atoi(argv[2]); scale = atol(argv[3]);
  if (nthreads < 1 || nthreads > 1024 || scale < 1) { fprintf(stderr, "kbench: bad THREADS or SCALE\n"); return 2; }
  for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
    if (strcmp(argv[1], workloads[i].name) != 0) continue;
    wl_name = workloads[i].name;
    workloads[i].fn();
    /* Every block handed out came back, exactly once. */
    if (total_allocs != total_frees) fail("%ld blocks allocated, %ld freed", (long)total_allocs, (long)total_frees);
    printf("ok %s threads=%d scale=%ld blocks=%ld\n", wl_name, nthreads, scale, (long)total_allocs);
    return 0;
  }
  fprintf(stderr, "kbench: unknown workload %s\n", argv[1]);
  return 2;
}
