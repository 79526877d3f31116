/* keel for wasm32: a compact, deterministic, single-threaded allocator that
 * replaces the whole C allocation family of an emscripten or wasi-libc
 * program. Separate from the native core (see src/wasm/README.md): the
 * native 4 MiB segments and thread machinery cannot fit a 2.5 KB budget.
 *
 * Layout (the dlmalloc boundary-tag scheme, which is the smallest way to get
 * O(1) coalescing): a chunk starts with `prev_foot` (the previous chunk's
 * size, valid only while that chunk is free) and `head` (own size | INUSE |
 * PINUSE); the payload starts at chunk+8 and is A-aligned (A =
 * alignof(max_align_t): 8 on emscripten, 16 on wasi); sizes are multiples
 * of A. The next chunk's prev_foot is the last word of the payload, so the
 * per-block cost is one 4-byte word.
 * Free chunks carry list links and are kept in 480 bins: exact bins of 8
 * bytes below 1 KiB, then 16 bins per power of two; a bitmap finds the next
 * non-empty bin with one ctz per 32 bins. A bin is a LIFO list, doubly
 * linked so that coalescing can unlink any chunk in O(1); the head's `bk`
 * is left undefined (unlinking the head is recognised by bins[b] == c), so
 * popping the head writes nothing but the bin: it never touches the next
 * chunk in the list, which at a million live blocks is a cache miss.
 * The heap ends in `fence`, an in-use chunk of size 0; memory.grow adds
 * what is missing plus 1/64 of the memory size (geometric, so a million
 * small blocks need few grows, yet the final size stays within ~1.6% of
 * the need), and the new pages are simply freed, merging with a free last
 * chunk. There is no separate "top": one code path for all free memory
 * keeps the code small.
 *
 * Invariants: two free chunks are never adjacent; every free chunk is in
 * the bin of its size; PINUSE of a chunk is set iff the chunk before is in
 * use, and a free chunk's size is repeated in the next chunk's prev_foot.
 * Determinism: no clocks, no randomness, no environment: addresses depend
 * only on the sequence of calls (and on __heap_base, fixed at link time).
 * Costs: malloc and free are O(1) (a bin search is capped at 4 chunks); every
 * API entry checks its size arithmetic; a failed grow is NULL + ENOMEM.
 * calloc and realloc zero and copy with keel's own word loop, not libc's
 * memset/memcpy (see words()).
 * Threads: none by default. Built with emcc -pthread (the -mt archive), one
 * spin lock serialises every entry point (see the end of the file).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define A      __alignof__(max_align_t)
#define MINCH  16u                  /* head + two links + the next prev_foot */
#define INUSE  1u
#define PINUSE 2u
#define MAXREQ 0x7fff0000u          /* larger requests can never succeed on wasm32 */
#ifndef KL_SUB
#define KL_SUB 4                    /* log2 of the bins per power of two above the exact bins */
#endif
#ifndef KL_EXACT
#define KL_EXACT 10                 /* log2 of the end of the exact bins (sizes below it) */
#endif
#define NEXACT ((1u << KL_EXACT) >> 3)
#define NBINS  ((NEXACT + ((32 - KL_EXACT) << KL_SUB) + 31) & ~31u)
#ifndef KL_GROW_SHIFT
#define KL_GROW_SHIFT 6             /* grow by 1/64 of memory beyond the need: geometric, yet lean */
#endif
#define WASM_PAGE 65536u
/* No `used`: wasm-ld must be free to drop what a program does not call. */
#define KL_EXPORT __attribute__((visibility("default")))
/* The entry points that touch the heap. With -pthread their bodies become
 * static `unlocked_*` functions (so calls between them, realloc to malloc,
 * take no lock) and the exported names are the locking wrappers at the end
 * of the file; single-threaded, they are the exported functions themselves. */
#ifdef __EMSCRIPTEN_PTHREADS__
#define KL_MT 1
#define KL_API static
#define malloc               unlocked_malloc
#define free                 unlocked_free
#define calloc               unlocked_calloc
#define realloc              unlocked_realloc
#define aligned_alloc        unlocked_aligned_alloc
#define posix_memalign       unlocked_posix_memalign
#define memalign             unlocked_memalign
#define valloc               unlocked_valloc
#define pvalloc              unlocked_pvalloc
#define reallocarray         unlocked_reallocarray
#define free_sized           unlocked_free_sized
#define keel_wasm_heap_check unlocked_keel_wasm_heap_check
#else
#define KL_API KL_EXPORT
#endif
/* Functions off the malloc/free paths are compiled for size. */
#define KL_COLD __attribute__((minsize, noinline))
/* The archive is built at -Os; bin_of, bin_add and owned are inlined
 * anyway, and malloc and free handle their common case (a fit in the exact
 * bin or the next; nothing to merge) themselves. Measured under cachegrind
 * (bench/wasm/run.sh IR=1) that takes a malloc+free pair from ~40
 * instructions more than dlmalloc's to fewer, for ~350 bytes of code. */
#define KL_INLINE static inline __attribute__((always_inline))

typedef struct chunk_s {
  size_t prev_foot;                 /* size of the previous chunk if it is free */
  size_t head;                      /* size | INUSE | PINUSE */
  struct chunk_s *fd, *bk;          /* bin links, only while free; bk undefined in a bin's head */
} chunk_t;

static chunk_t *fence;              /* in-use chunk of size 0 ending the heap; NULL before the first grow */
static chunk_t *base;               /* the first chunk, for free's sanity check */
static chunk_t *bins[NBINS];
static uint32_t binmap[NBINS / 32];

#define CSIZE(c)  ((c)->head & ~(size_t)7)
#define AT(c, n)  ((chunk_t *)((char *)(c) + (n)))
#define MEM(c)    ((void *)((char *)(c) + 8))
#define CHUNK(p)  ((chunk_t *)((char *)(p) - 8))

extern unsigned char __heap_base;
#ifdef __EMSCRIPTEN__
/* Tells emscripten's JS to re-create its views of the grown memory. */
extern void emscripten_notify_memory_growth(size_t memory_index);
#endif

/* Bytes of chunk for a request (n <= MAXREQ, so this cannot wrap). */
static size_t req2size(size_t n) {
  size_t s = (n + 4 + A - 1) & ~(size_t)(A - 1);
  return s < MINCH ? MINCH : s;
}

/* Exact bins of 8 bytes below 1 KiB, then 16 per power of two. */
KL_INLINE unsigned bin_of(size_t s) {
  if (s < (1u << KL_EXACT)) return s >> 3;
  unsigned l = 31 - __builtin_clz(s);                /* KL_EXACT .. 31 */
  return NEXACT + ((l - KL_EXACT) << KL_SUB) + ((s >> (l - KL_SUB)) & ((1u << KL_SUB) - 1));
}

/* Bins are LIFO: the most recently freed chunk is reused first (warm in
 * cache). The map bit needs setting only when the bin was empty. */
KL_INLINE void bin_add(chunk_t *c, size_t s) {
  unsigned b = bin_of(s);
  chunk_t *f = bins[b];
  c->fd = f;
  bins[b] = c;
  if (f) f->bk = c;
  else binmap[b >> 5] |= 1u << (b & 31);
}

/* Unlinks any binned chunk. Only the head has no valid bk: its successor
 * becomes the head, whose bk need not be right. */
static void bin_del(chunk_t *c) {
  unsigned b = bin_of(CSIZE(c));
  chunk_t *f = c->fd;
  if (bins[b] == c) {
    if (!(bins[b] = f)) binmap[b >> 5] &= ~(1u << (b & 31));
  } else {
    c->bk->fd = f;
    if (f) f->bk = c->bk;
  }
}

/* A free chunk of at least s bytes, unbinned, or NULL (malloc pops exact
 * fits itself before calling this). Its own bin is searched best-fit among
 * its first 4 chunks; every chunk in a higher bin fits, so there the next
 * set bit of the map ends the search. Best fit keeps the heap as small as
 * dlmalloc's; the cap keeps malloc O(1). Each chunk looked at is a likely
 * cache miss with many live blocks: with 16 bins per power of two (sizes
 * within 6% of each other) 4 looks keep the heap as lean as 8 looks did
 * with 8 bins, at half the misses (bench/wasm: 1 Mi live blocks). */
static chunk_t *take(size_t s) {
  unsigned b = bin_of(s), k = 0;
  chunk_t *c = bins[b], *best = NULL;
  for (; c && k < 4; c = c->fd, k++)
    if (CSIZE(c) >= s && (!best || CSIZE(c) < CSIZE(best))) best = c;
  if ((c = best)) goto found;
  for (unsigned w = ++b >> 5; w < NBINS / 32; w++) {
    uint32_t m = binmap[w] & (w == b >> 5 ? ~0u << (b & 31) : ~0u);
    if (m) { c = bins[(w << 5) + __builtin_ctz(m)]; goto found; }
  }
  return NULL;
found:
  bin_del(c);
  return c;
}

/* Free the region c of size sz (c->head's PINUSE must be right): merge it
 * with a free neighbour on either side, then bin it. */
static void release(chunk_t *c, size_t sz) {
  if (!(c->head & PINUSE)) {
    size_t ps = c->prev_foot;
    c = (chunk_t *)((char *)c - ps);
    bin_del(c);
    sz += ps;
  }
  chunk_t *n = AT(c, sz);
  if (!(n->head & INUSE)) {
    bin_del(n);
    sz += CSIZE(n);
    n = AT(c, sz);
  }
  n->head &= ~PINUSE;
  n->prev_foot = sz;
  c->head = sz | PINUSE;
  bin_add(c, sz);
}

/* Gets memory for a chunk of s bytes: the first call adopts the memory
 * above __heap_base; later calls grow linear memory by what s lacks plus
 * 1/64 of its size (without the 1/64 if that fails). The new memory is freed as one chunk,
 * which merges with a free last chunk. If something else (sbrk) grew
 * memory since, the old fence grows into an in-use chunk over the foreign
 * pages (so the heap stays one walkable chain) and the new pages follow it.
 * Returns 0 with ENOMEM when memory cannot grow. */
KL_COLD static int grow(size_t s) {
  size_t cur = __builtin_wasm_memory_size(0) * WASM_PAGE;
  size_t old = cur / WASM_PAGE, pages = 0;
  chunk_t *c;
  if (fence) {
    if (!(fence->head & PINUSE)) s -= fence->prev_foot;  /* a free last chunk (< s) covers part */
    pages = (s + A + (cur >> KL_GROW_SHIFT) + WASM_PAGE - 1) / WASM_PAGE;
    if ((old = __builtin_wasm_memory_grow(0, pages)) == (size_t)-1) {
      pages = (s + A + WASM_PAGE - 1) / WASM_PAGE;
      if ((old = __builtin_wasm_memory_grow(0, pages)) == (size_t)-1) { errno = ENOMEM; return 0; }
    }
#ifdef __EMSCRIPTEN__
    emscripten_notify_memory_growth(0);
#endif
    c = (chunk_t *)(old * WASM_PAGE);
  } else {                              /* first call: adopt [__heap_base, end of memory) */
    c = (chunk_t *)&__heap_base;
  }
  c = (chunk_t *)((((size_t)c + 8 + A - 1) & ~(size_t)(A - 1)) - 8);  /* MEM(c) A-aligned */
  if (!fence) base = c;
  if (c == AT(fence, A)) {
    c = fence;                          /* contiguous: the old fence's PINUSE carries over */
  } else {
    if (fence)                          /* the old fence becomes an in-use chunk spanning the gap */
      fence->head = (size_t)((char *)c - (char *)fence) | (fence->head & PINUSE) | INUSE;
    c->head = PINUSE;
  }
  fence = AT(old * WASM_PAGE, pages * WASM_PAGE - 8);
  fence->head = INUSE;
  release(c, (size_t)((char *)fence - (char *)c));
  return 1;
}

/* Mark c in use with s bytes; a tail of MINCH or more goes back free. */
static void *finish(chunk_t *c, size_t s) {
  size_t cs = CSIZE(c);
  if (cs - s >= MINCH) {
    c->head = s | (c->head & PINUSE) | INUSE;
    chunk_t *r = AT(c, s);
    r->head = PINUSE;
    release(r, cs - s);
  } else {
    c->head |= INUSE;
    AT(c, cs)->head |= PINUSE;
  }
  return MEM(c);
}

/* The chunk of a block the program hands back; anything keel did not hand
 * out (misaligned, outside the heap, already free) traps at once. */
KL_INLINE chunk_t *owned(void *p) {
  chunk_t *c = CHUNK(p);
  if (((size_t)p & (A - 1)) || (size_t)c - (size_t)base >= (size_t)fence - (size_t)base ||
      !(c->head & INUSE))
    __builtin_trap();
  return c;
}

KL_COLD static void *nomem(void) { errno = ENOMEM; return NULL; }

/* d[0 .. n/4) = s ? s[...] : 0, for realloc's copy and calloc's zeroing (n a
 * multiple of 4). keel's own loop rather than libc's memcpy and memset:
 * those add ~900 bytes at -O2 to a program that does not use them already
 * (bench/wasm/size.c), where this loop costs a few dozen bytes in one that
 * does. Built with -mbulk-memory, it is one memory.copy or memory.fill. */
static void words(uint32_t *d, const uint32_t *s, size_t n) {
#ifdef __wasm_bulk_memory__
  if (s) __builtin_memcpy(d, s, n);
  else __builtin_memset(d, 0, n);
#else
  for (size_t i = 0; i < n / 4; i++) d[i] = s ? s[i] : 0;
#endif
}

KL_API void *malloc(size_t n) {
  if (n > MAXREQ) return nomem();
  size_t s = req2size(n);
  unsigned b = bin_of(s);
  chunk_t *c;
  /* The fast path: pop the exact bin's head, else the next bin's, whose
   * chunks are 8 bytes larger: too little to split off, so it is taken
   * whole (take() would choose it too, at the cost of a call). b + 1 must
   * still be an exact bin. (On wasi, A = 16, sizes are multiples of 16 and
   * every odd bin stays empty.) The size is known from the bin, so the next
   * chunk's address does not wait for a load of c->head. */
  size_t cs = s;
  if (b < NEXACT - 1 && ((c = bins[b]) || (cs += 8, c = bins[++b]))) {
    if (!(bins[b] = c->fd)) binmap[b >> 5] &= ~(1u << (b & 31));
    c->head |= INUSE;
    AT(c, cs)->head |= PINUSE;
    return MEM(c);
  }
  while (!(c = take(s)))                /* at most twice: the first call adopts memory */
    if (!grow(s)) return NULL;
  return finish(c, s);
}

KL_API void free(void *p) {
  if (p) {
    chunk_t *c = owned(p);
    size_t sz = CSIZE(c);
    chunk_t *n = AT(c, sz);
    if ((c->head & PINUSE) && (n->head & INUSE)) {   /* the fast path: nothing to merge */
      n->head &= ~PINUSE;
      n->prev_foot = sz;
      c->head = sz | PINUSE;
      bin_add(c, sz);
      return;
    }
    release(c, sz);
  }
}

KL_API KL_COLD void *calloc(size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) return nomem();
  void *p = malloc(n);
  if (p) words(p, NULL, (n + 3) & ~(size_t)3);   /* the usable size is n or more, a multiple of 4 */
  return p;
}

/* Grows in place into a free next chunk when it can; moves
 * otherwise. realloc(p, 0) frees p and returns NULL, as glibc does. */
KL_API KL_COLD void *realloc(void *p, size_t n) {
  if (!p) return malloc(n);
  if (!n) { free(p); return NULL; }
  if (n > MAXREQ) return nomem();
  chunk_t *c = owned(p);
  size_t s = req2size(n), cs = CSIZE(c);
  if (cs < s) {
    chunk_t *nx = AT(c, cs);
    if ((nx->head & INUSE) || cs + CSIZE(nx) < s) {
      void *q = malloc(n);
      if (q) { words(q, p, cs - 4); free(p); }
      return q;
    }
    bin_del(nx);
    c->head += CSIZE(nx);
  }
  return finish(c, s);
}

/* Over-aligned blocks: take n + al + MINCH bytes, free the part before the
 * aligned address as a chunk of its own (it is at least MINCH) and trim the
 * tail. al is a power of two. */
KL_COLD static void *amalloc(size_t al, size_t n) {
  if (al <= A) return malloc(n);
  if (al > MAXREQ || n > MAXREQ) return nomem();
  char *p = malloc(n + al + MINCH);
  if (!p) return NULL;
  chunk_t *c = CHUNK(p);
  size_t lead = (size_t)-(uintptr_t)p & (al - 1);
  if (lead) {
    if (lead < MINCH) lead += al;
    chunk_t *d = AT(c, lead);
    d->head = (CSIZE(c) - lead) | INUSE;
    release(c, lead);
    c = d;
  }
  return finish(c, req2size(n));
}

KL_API KL_COLD void *aligned_alloc(size_t al, size_t n) {
  if (al & (al - 1)) { errno = EINVAL; return NULL; }
  return amalloc(al, n);
}

KL_API KL_COLD int posix_memalign(void **out, size_t al, size_t n) {
  if ((al & (al - 1)) || al < sizeof(void *)) return EINVAL;
  void *p = amalloc(al, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

KL_EXPORT KL_COLD size_t malloc_usable_size(void *p) {
  return p ? CSIZE(CHUNK(p)) - 4 : 0;
}

/* ---- the rest of the family ---- */
KL_API KL_COLD void *memalign(size_t al, size_t n) { return aligned_alloc(al, n); }
KL_API KL_COLD void *valloc(size_t n) { return amalloc(WASM_PAGE, n); }
KL_API KL_COLD void *pvalloc(size_t n) {
  if (n > MAXREQ) return nomem();
  return amalloc(WASM_PAGE, (n + WASM_PAGE - 1) & ~(size_t)(WASM_PAGE - 1));
}
KL_API KL_COLD void *reallocarray(void *p, size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) return nomem();
  return realloc(p, n);
}
KL_API void free_sized(void *p, size_t n) { (void)n; free(p); }
KL_EXPORT int keel_version(void) { return 10000; }

/* ---- for tests ----
 * Walks the heap from the first chunk to the fence and checks every
 * invariant above; returns 0 when the heap is valid, else the number of the
 * broken rule. Programs that do not call it do not carry it. */
KL_API KL_COLD int keel_wasm_heap_check(void) {
  size_t nfree = 0, nbinned = 0;
  if (!fence) return 0;
  int prev_inuse = 1;
  for (chunk_t *c = base; c != fence; c = AT(c, CSIZE(c))) {
    if (c < base || c > fence || CSIZE(c) < MINCH || (CSIZE(c) & (A - 1))) return 1;
    if (!!(c->head & PINUSE) != prev_inuse) return 2;
    prev_inuse = c->head & INUSE;
    if (!prev_inuse) {
      nfree++;
      if (!(AT(c, CSIZE(c))->head & INUSE)) return 3;          /* two free chunks in a row */
      if (AT(c, CSIZE(c))->prev_foot != CSIZE(c)) return 4;
    }
  }
  if (!!(fence->head & PINUSE) != prev_inuse) return 5;
  for (unsigned b = 0; b < NBINS; b++) {
    if (!bins[b] != !(binmap[b >> 5] & (1u << (b & 31)))) return 6;
    for (chunk_t *c = bins[b]; c; c = c->fd, nbinned++)
      if ((c->head & INUSE) || bin_of(CSIZE(c)) != b || (c->fd && c->fd->bk != c)) return 7;
  }
  return nfree == nbinned ? 0 : 8;
}

/* Bytes of linear memory in use by the program, for the benchmarks. */
KL_EXPORT size_t keel_wasm_memory_size(void) {
  return __builtin_wasm_memory_size(0) * WASM_PAGE;
}

/* ---- threads (emcc -pthread: libkeel-emscripten-mt.a) ----
 * One lock around every entry point that touches the heap: the simplest
 * correct design, and the small heap code keeps the hold time short. A
 * spin lock, because the browser's main thread may not block (Atomics.wait
 * traps there). malloc_usable_size reads only the header of a block its
 * caller owns and takes no lock. sbrk.c takes the same lock, so keel and
 * sbrk never grow memory at the same time. */
#ifdef KL_MT
#undef malloc
#undef free
#undef calloc
#undef realloc
#undef aligned_alloc
#undef posix_memalign
#undef memalign
#undef valloc
#undef pvalloc
#undef reallocarray
#undef free_sized
#undef keel_wasm_heap_check
static int lock_word;

__attribute__((visibility("hidden"))) void kl_wasm_lock(void) {
  /* acquire: what the last holder wrote to the heap is visible to us */
  while (__atomic_exchange_n(&lock_word, 1, __ATOMIC_ACQUIRE))
    while (__atomic_load_n(&lock_word, __ATOMIC_RELAXED)) {}   /* wait with loads, not exchanges */
}
/* release: our heap writes are visible to the next holder */
__attribute__((visibility("hidden"))) void kl_wasm_unlock(void) { __atomic_store_n(&lock_word, 0, __ATOMIC_RELEASE); }

#define LOCKED(type, name, params, args) \
  KL_EXPORT type name params { kl_wasm_lock(); type r = unlocked_##name args; kl_wasm_unlock(); return r; }
LOCKED(void *, malloc, (size_t n), (n))
LOCKED(void *, calloc, (size_t count, size_t size), (count, size))
LOCKED(void *, realloc, (void *p, size_t n), (p, n))
LOCKED(void *, aligned_alloc, (size_t al, size_t n), (al, n))
LOCKED(int, posix_memalign, (void **out, size_t al, size_t n), (out, al, n))
LOCKED(void *, memalign, (size_t al, size_t n), (al, n))
LOCKED(void *, valloc, (size_t n), (n))
LOCKED(void *, pvalloc, (size_t n), (n))
LOCKED(void *, reallocarray, (void *p, size_t count, size_t size), (p, count, size))
LOCKED(int, keel_wasm_heap_check, (void), ())
KL_EXPORT void free(void *p) { kl_wasm_lock(); unlocked_free(p); kl_wasm_unlock(); }
KL_EXPORT void free_sized(void *p, size_t n) { kl_wasm_lock(); unlocked_free_sized(p, n); kl_wasm_unlock(); }
#endif

/* ---- the names the libcs and keel.h link against ---- */
#define ALIAS(name, target) \
  extern __typeof(target) name __attribute__((alias(#target), visibility("default")));
ALIAS(keel_malloc, malloc)
ALIAS(keel_calloc, calloc)
ALIAS(keel_realloc, realloc)
ALIAS(keel_free, free)
ALIAS(keel_free_sized, free_sized)
ALIAS(keel_aligned_alloc, aligned_alloc)
ALIAS(keel_posix_memalign, posix_memalign)
ALIAS(keel_usable_size, malloc_usable_size)
/* wasi-libc's atexit and locale code call these directly. */
ALIAS(__libc_malloc, malloc)
ALIAS(__libc_calloc, calloc)
ALIAS(__libc_free, free)
ALIAS(__libc_realloc, realloc)
/* emscripten's libc (environ, mmap, pthreads) calls these directly. */
ALIAS(emscripten_builtin_malloc, malloc)
ALIAS(emscripten_builtin_free, free)
ALIAS(emscripten_builtin_memalign, memalign)
