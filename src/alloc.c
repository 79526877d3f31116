/* alloc.c — the malloc fast path, and the API entries built on it.
 *
 * Fast path budget (x86-64, gcc -O2): keel_malloc of <= 1 KiB is
 *   TLS load of the heap, index pages_direct by (size+15)>>4, load page->free,
 *   one likely branch, pop (store free, prefetch the next head, clear the
 *   freed mark, increment used, count by that same index), return
 * — 18 instructions with the TLS load (two) and the return, no atomics,
 * no locks; malloc is this same code, inline (override.c)
 * (bench/RESULTS.md has the measured pair cost). Anything else is one
 * call, noinline so that the fast path stays this small:
 * kl_malloc_foreign for a miss up to 1 KiB (this thread's cache of other
 * threads' blocks, then the page's local frees, then the slow path),
 * kl_malloc_generic (page.c) otherwise.
 *
 * The thread's heap starts as the static kl_heap_empty whose direct pages
 * have no blocks, so the first call in a thread takes the slow path, which
 * initializes the process and the thread: no "initialized?" test here. */
#include <errno.h>
#include <string.h>
#include "internal/internal.h"
#include "keel.h"

kl_inline void *heap_malloc(kl_heap_t *heap, size_t size) {
  if (kl_likely(size <= KL_DIRECT_MAX)) {
    size_t i = (size + 15) >> 4;
    kl_page_t *page = heap->pages_direct[i];
    kl_block_t *b = page->free;
    if (kl_likely(b != NULL)) {
      kl_page_pop(page, b);
      heap->counters.direct_allocs[i]++;
      return b;
    }
#if KL_FOREIGN
    return kl_malloc_foreign(size, heap);   /* size first: it is in the first argument register already */
#endif
  } else if (size <= KL_MEDIUM_MAX) {
    /* Second fast path: the class's first page; NULL only in the empty heap
     * or for a class never used. */
    kl_page_t *page = heap->queues[kl_size_class(size)].first;
    if (kl_likely(page != NULL && page->free != NULL)) {
      kl_block_t *b = page->free;
      kl_page_pop(page, b);
      heap->counters.allocs[page->class_idx]++;
      return b;
    }
  }
  return kl_malloc_generic(heap, size, 0, false);
}

void *kl_malloc(size_t size) { return heap_malloc(kl_heap_get(), size); }

void *kl_calloc(size_t count, size_t size) {
  size_t total;
  if (kl_unlikely(kl_mul_overflow(count, size, &total))) { errno = ENOMEM; return NULL; }
  void *p;
  if (total <= KL_MEDIUM_MAX) {
    p = kl_malloc(total);
    if (p != NULL) memset(p, 0, total);
  } else {
    /* Huge: fresh OS memory is already zero, so only recycled memory is cleared. */
    p = kl_malloc_generic(kl_heap_get(), total, 0, true);
  }
  if (p != NULL) KL_COUNT_CALL(KL_CALL_CALLOC);
  return p;
}

/* Counted by the entry points (aligned_alloc, posix_memalign, memalign,
 * valloc, pvalloc), each on its own. */
void *kl_aligned(size_t align, size_t size) {
  return align <= 16 ? kl_malloc(size)   /* every block is 16-aligned */
                     : kl_malloc_generic(kl_heap_get(), size, align, false);
}

/* The page of a block keel handed out, or NULL after reporting a bad
 * pointer (KEEL_ON_ERROR=warn returns; the default aborts). */
kl_page_t *kl_checked_page(const void *p, kl_segment_t **seg_out, const char *who) {
  kl_segment_t *seg = kl_segmap_lookup(p);
  if (seg == NULL) { kl_error_bad_pointer(who, p, "not allocated by keel, or already freed"); return NULL; }
  kl_page_t *page = kl_segment_page_of(seg, p);
  size_t off = (size_t)((const uint8_t *)p - page->start);
  if (!kl_page_has_block(page, off)) {
    kl_error_bad_pointer(who, p, "not the start of a keel block (interior or stale pointer)");
    return NULL;
  }
  if (seg->kind != KL_SEG_HUGE && kl_block_freed((const kl_block_t *)p) == kl_block_mark(page)) {
    kl_error_bad_pointer(who, p, "already freed (double free or use after free)");
    return NULL;
  }
  *seg_out = seg;
  return page;
}

/* malloc_usable_size: programs that account their memory call it on every
 * malloc and free (redis does), so its common case is the cached one. */
size_t kl_usable_size(const void *p, const char *who) {
  if (p == NULL) return 0;
  kl_page_t *page = kl_cached_live_page(kl_heap_get(), p);
  if (kl_likely(page != NULL)) return page->block_size;
  kl_segment_t *seg;
  page = kl_checked_page(p, &seg, who);
  return page ? page->block_size : 0;
}

/* A block of `usable` bytes keeps a realloc to `size`: it fits, and is not
 * so small that a smaller class pays off. */
kl_inline bool fits_in_place(size_t size, size_t usable) { return size <= usable && size >= usable / 2; }

/* realloc whose moved block comes from `heap`: the thread's default heap for
 * realloc, a first-class heap for keel_heap_realloc. The entry points count
 * the call; here, the blocks taken and given back (stats.c subtracts them
 * from the malloc and free counts). */
static void *realloc_in(kl_heap_t *heap, void *p, size_t size, const char *who) {
  if (p == NULL) { void *q = heap_malloc(heap, size); if (q) KL_COUNT(realloc_allocs); return q; }
  kl_segment_t *seg;
  kl_page_t *page = kl_checked_page(p, &seg, who);
  if (page == NULL) { errno = EINVAL; return NULL; }
  if (size == 0) { kl_free(p); KL_COUNT(realloc_frees); return NULL; }   /* glibc's behaviour */
  size_t usable = page->block_size;
  if (seg->kind == KL_SEG_HUGE) {
    if (size > KL_MEDIUM_MAX) {
      void *q = kl_segment_huge_realloc(seg, size);
      if (q != NULL) return q;
    }
  } else if (fits_in_place(size, usable)) {
    return p;
  }
  /* A block that a realloc grows will likely grow again (a string built
   * piece by piece, python's lists by an eighth): it moves to a class with
   * room for half as much again as it had, so that the next steps fit in
   * place rather than copy. kbench realloc 1 20: 0.18 -> 0.17 s, peak RSS
   * 23.2 -> 23.4 MB (mimalloc 0.17 s, 24.5 MB); the demo, whose logs grow
   * 64 bytes at a time: 0.39 -> 0.34 s, 34.2 -> 30.6 MB. A room of a
   * quarter or a third measured worse than none. Only up to the medium
   * limit: a large block's page has room to 256 KiB already, and a huge
   * block grows in place in its mapping. */
  size_t ask = size;
  if (size > usable && size <= KL_MEDIUM_MAX && seg->kind != KL_SEG_HUGE) {
    size_t room = usable + usable / 2;
    /* Never past the next power of two: buffers that grow to a cap mostly
     * stop at one (redis's list nodes at 8 KiB, 260 bytes a step), and a
     * 7 KiB node asking for 10.5 KiB ended in a 12 KiB block: redis's peak
     * RSS under redis-benchmark was 92.9 MB against 83.6 without room. */
    size_t cap = (size_t)2 << kl_bsr(size - 1);
    if (room > cap) room = cap;
    if (room > size) ask = room;
  }
  /* Not in the empty heap, which is shared (a thread's first call). */
  bool grow = size > usable && heap != &kl_heap_empty;
  if (grow) heap->growing = true;
  void *q = heap_malloc(heap, ask);
  if (grow) heap->growing = false;
  if (q == NULL) return NULL;   /* errno is ENOMEM; p stays valid */
  memcpy(q, p, size < usable ? size : usable);
  kl_free(p);
  KL_COUNT(realloc_allocs);
  KL_COUNT(realloc_frees);
  return q;
}

/* realloc's common case: p stays where it is. For a live block in the
 * cached segment (kl_cached_live_page) that still fits its class without
 * wasting half of it, that is the answer with no segment map lookup and no
 * call; anything else, errors included, is realloc_in's (NULL here).
 * kbench realloc under callgrind: 71% of calls end here; realloc's own
 * instructions 9.4M -> 5.6M, the program's 99.2M -> 95.5M (scale 2). */
kl_inline void *realloc_in_place(kl_heap_t *heap, void *p, size_t size) {
  kl_page_t *page = kl_cached_live_page(heap, p);
  if (page == NULL) return NULL;
  return size != 0 && fits_in_place(size, page->block_size) ? p : NULL;
}

void *kl_realloc(void *p, size_t size, const char *who) {
  kl_heap_t *heap = kl_heap_get();
  void *q = realloc_in_place(heap, p, size);
  return q != NULL ? q : realloc_in(heap, p, size, who);
}

/* ---- keel_* API ---------------------------------------------------------- */

kl_public void *keel_malloc(size_t size) { return KL_MALLOC(size); }
kl_public void *keel_calloc(size_t count, size_t size) { return KL_CALLOC(count, size); }
/* Counted after the call, which sets up the thread's heap if it is the
 * thread's first. */
kl_public void *keel_realloc(void *p, size_t size) {
  void *q = KL_REALLOC(p, size, "keel_realloc");
  KL_COUNT_CALL(KL_CALL_REALLOC);
  return q;
}
kl_public size_t keel_usable_size(const void *p) {
  size_t n = KL_USABLE(p, "keel_usable_size");
  KL_COUNT_CALL(KL_CALL_USABLE_SIZE);
  return n;
}
kl_public int keel_version(void) { return KEEL_VERSION; }

/* C11 aligned_alloc and POSIX posix_memalign, shared by the keel_* names
 * and the standard ones (override.c). */
void *kl_aligned_alloc(size_t alignment, size_t size) {
  if (!kl_is_pow2(alignment)) { errno = EINVAL; return NULL; }
  void *p = KL_ALIGNED(alignment, size);
  if (p != NULL) KL_COUNT_CALL(KL_CALL_ALIGNED_ALLOC);
  return p;
}
kl_public void *keel_aligned_alloc(size_t alignment, size_t size) { return kl_aligned_alloc(alignment, size); }

kl_public int keel_posix_memalign(void **out, size_t alignment, size_t size) { return kl_posix_memalign(out, alignment, size); }

int kl_posix_memalign(void **out, size_t alignment, size_t size) {
  if (!kl_is_pow2(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
  int err = errno;
  void *p = KL_ALIGNED(alignment, size);
  errno = err;    /* posix_memalign reports through its result, not errno */
  if (p == NULL) return ENOMEM;
  KL_COUNT_CALL(KL_CALL_POSIX_MEMALIGN);
  *out = p;
  return 0;
}

/* ---- first-class heaps: allocation (lifecycle in heap.c) ----------------- */

/* A heap of this thread, or its default heap (keel_heap_default). */
static bool heap_usable(const kl_heap_t *heap, const char *who) { return kl_heap_owned_here(heap, true, who); }

kl_public void *keel_heap_malloc(keel_heap_t *h, size_t size) {
  kl_heap_t *heap = (kl_heap_t *)h;
  if (!heap_usable(heap, "keel_heap_malloc")) { errno = EINVAL; return NULL; }
  return KL_DBG_FINISH(heap_malloc(heap, KL_DBG_SIZE(size)), size, false);
}

kl_public void *keel_heap_calloc(keel_heap_t *h, size_t count, size_t size) {
  kl_heap_t *heap = (kl_heap_t *)h;
  if (!heap_usable(heap, "keel_heap_calloc")) { errno = EINVAL; return NULL; }
  size_t total;
  if (kl_mul_overflow(count, size, &total)) { errno = ENOMEM; return NULL; }
  if (KL_DBG_SIZE(total) > KL_MEDIUM_MAX)
    return KL_DBG_FINISH(kl_malloc_generic(heap, KL_DBG_SIZE(total), 0, true), total, true);
  void *p = heap_malloc(heap, KL_DBG_SIZE(total));
  if (p != NULL) memset(p, 0, KL_DBG_SIZE(total));
  return KL_DBG_FINISH(p, total, true);
}

kl_public void *keel_heap_aligned_alloc(keel_heap_t *h, size_t alignment, size_t size) {
  kl_heap_t *heap = (kl_heap_t *)h;
  if (!heap_usable(heap, "keel_heap_aligned_alloc")) { errno = EINVAL; return NULL; }
  if (!kl_is_pow2(alignment)) { errno = EINVAL; return NULL; }
  size_t n = KL_DBG_SIZE(size);
  return KL_DBG_FINISH(alignment <= 16 ? heap_malloc(heap, n) : kl_malloc_generic(heap, n, alignment, false), size, false);
}

/* Like realloc, but a block that must move is allocated from `h`. */
kl_public void *keel_heap_realloc(keel_heap_t *h, void *p, size_t size) {
  kl_heap_t *heap = (kl_heap_t *)h;
  if (!heap_usable(heap, "keel_heap_realloc")) { errno = EINVAL; return NULL; }
  KL_COUNT_CALL(KL_CALL_REALLOC);
#if KL_DEBUG
  /* Debug build: always move, so the canary and fill checks run. */
  if (p == NULL) { void *q = keel_heap_malloc(h, size); if (q != NULL) KL_COUNT(realloc_allocs); return q; }
  size_t old = kl_dbg_usable(p, "keel_heap_realloc");
  if (size == 0) { kl_dbg_free(p, "keel_heap_realloc"); KL_COUNT(realloc_frees); return NULL; }
  void *q = keel_heap_malloc(h, size);
  if (q == NULL) return NULL;
  memcpy(q, p, old < size ? old : size);
  kl_dbg_free(p, "keel_heap_realloc");
  KL_COUNT(realloc_allocs);
  KL_COUNT(realloc_frees);
  return q;
#else
  return realloc_in(heap, p, size, "keel_heap_realloc");
#endif
}
