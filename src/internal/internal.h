/* internal.h — kl_* prototypes, grouped by the file that owns them, and the
 * few inline helpers the fast paths share. */
#ifndef KL_INTERNAL_H
#define KL_INTERNAL_H
#include "bits.h"
#include "atomic.h"
#include "types.h"
#include "prim.h"

/* ---- spin locks, each held for a few steps off the fast paths: the
 * abandoned-segment list and the cache purge passes (segment.c). Acquire:
 * the holder's writes are visible; release publishes ours. */
kl_inline void kl_lock(_Atomic(int) *lock) {
  for (unsigned spins = 0; atomic_exchange_explicit(lock, 1, memory_order_acquire) != 0; ) {
    while (kl_load_relaxed(lock) != 0) {
      /* The holder is not done after a while: it was preempted; let it run. */
      if (++spins % 64 == 0) kl_prim_yield(); else kl_spin_pause();
    }
  }
}
kl_inline void kl_unlock(_Atomic(int) *lock) { kl_store_release(lock, 0); }

/* ---- heap.c */
extern __thread kl_heap_t *kl_heap_tls __attribute__((tls_model("initial-exec"))) kl_hidden;
extern kl_heap_t kl_heap_empty kl_hidden;
extern const kl_page_t kl_page_empty kl_hidden;
extern kl_page_t *const kl_page_map_empty[KL_MAX_PAGES] kl_hidden;   /* every entry: kl_page_empty */
kl_inline kl_heap_t *kl_heap_get(void) { return kl_heap_tls; }
/* Point free's segment cache (kl_heap_s.seg_cache) at seg, or KL_SEG_NONE. */
kl_inline void kl_heap_set_seg_cache(kl_heap_t *heap, kl_segment_t *seg) {
  heap->seg_cache = seg;
  heap->seg_cache_map = seg == KL_SEG_NONE ? kl_page_map_empty : seg->page_map;
}
/* Set once the thread's exit hook has run: a free after it (the C library
 * frees its per-thread buffers after the key destructors) must not set up
 * a heap that nothing would tear down again (free.c). */
extern __thread bool kl_heap_exited __attribute__((tls_model("initial-exec"))) kl_hidden;
kl_hidden kl_heap_t *kl_heap_init_thread(void);       /* NULL if out of memory */
kl_hidden void kl_heap_thread_done(void *heap);
kl_hidden void kl_heap_atfork_init(void);             /* once, at process start */
kl_hidden void kl_heap_collect_delayed(kl_heap_t *heap);
kl_hidden void kl_heap_queue_push_front(kl_heap_t *heap, kl_page_t *page);
kl_hidden void kl_heap_direct_set(kl_heap_t *heap, unsigned c, kl_page_t *pg);
kl_hidden void kl_heap_direct_update(kl_heap_t *heap, unsigned c);   /* back to the queue's first page */
kl_hidden void kl_heap_queue_remove(kl_heap_t *heap, kl_page_t *page);
kl_hidden void kl_heap_queue_to_front(kl_heap_t *heap, kl_page_t *page);
kl_hidden void kl_heap_page_to_full(kl_heap_t *heap, kl_page_t *page);
kl_hidden void kl_heap_page_from_full(kl_heap_t *heap, kl_page_t *page);
kl_hidden bool kl_heap_is_valid(const kl_heap_t *heap);
kl_hidden bool kl_heap_owned_here(const kl_heap_t *heap, bool allow_default, const char *who);

/* ---- bins.c */
extern const uint32_t kl_class_size[KL_CLASS_COUNT] kl_hidden;
kl_inline unsigned kl_size_class(size_t size) {
  if (size <= 128) return size <= 16 ? 0 : (unsigned)((size - 1) >> 4);
  size_t s = size - 1;
  unsigned b = kl_bsr(s);                      /* 7 .. 16 */
  if (b < 10 || b > 12) return (b < 10 ? 8 + (b - 7) * 4 : 35 + (b - 13) * 4) + (unsigned)((s >> (b - 2)) & 3);
  /* Five classes: the top three bits after the leading one, 0..7, map
   * to 9/8, 5/4, 3/2, 3/2, 7/4, 7/4, 2, 2 (a nibble each). */
  return 20 + (b - 10) * 5 + ((0x44332210u >> (((s >> (b - 3)) & 7) * 4)) & 15);
}
kl_hidden unsigned kl_aligned_class(size_t size, size_t align); /* KL_CLASS_COUNT if none */
extern const uint8_t kl_direct_class[KL_DIRECT_COUNT] kl_hidden;  /* kl_size_class(16 * i) */
kl_hidden bool kl_class_tables_ok(void);   /* checked build, at start-up: both tables agree with kl_size_class */

/* ---- segmap.c: one byte per 4 MiB unit: 0 none, 1 segment start, 2 start one unit back */
#define KL_MAP_UNITS ((uintptr_t)1 << (KL_ADDR_BITS - KL_SEGMENT_SHIFT))
extern _Atomic(uint8_t) kl_segmap[KL_MAP_UNITS] kl_hidden;
kl_hidden void kl_segmap_set(const kl_segment_t *seg, uintptr_t block_unit_back);
kl_hidden void kl_segmap_clear(const kl_segment_t *seg, uintptr_t block_unit_back);
/* The map's byte for p: 1 for the start unit of a segment (the common case,
 * then the segment is p masked), 2 one unit further, 0 not keel's. Relaxed:
 * whoever frees p obtained it after the allocation that set the byte,
 * through the program's own synchronization. */
kl_inline unsigned kl_segmap_byte(const void *p) {
  uintptr_t u = (uintptr_t)p >> KL_SEGMENT_SHIFT;
  return kl_likely(u < KL_MAP_UNITS) ? kl_load_relaxed(&kl_segmap[u]) : 0;
}
/* The segment holding the block that starts at p, or NULL. */
kl_inline kl_segment_t *kl_segmap_lookup(const void *p) {
  unsigned v = kl_segmap_byte(p);
  uintptr_t unit = (uintptr_t)p & ~(uintptr_t)(KL_SEGMENT_SIZE - 1);
  if (kl_likely(v == 1)) return (kl_segment_t *)unit;
  if (v == 2) return (kl_segment_t *)(unit - KL_SEGMENT_SIZE);
  return NULL;
}

/* Is off (= p - page->start) the start of a carved block? One multiply and
 * one compare do what "off < capacity * block_size and off % block_size ==
 * 0" would (Lemire's divisibility test, extended to bound the index). With
 * d = block_size and m = div_magic = floor(2^64 / d) + 1, d * m = 2^64 + e
 * for some e in 1..d, so modulo 2^64:
 *  - off = k * d (a block start) gives off * m = k * e, which grows with k:
 *    below block_limit = capacity * e exactly when k < capacity;
 *  - off = k * d + r with 0 < r < d gives r * m + k * e >= m, which is
 *    above any block_limit (at most the page's bytes) as long as off is far
 *    below 2^64 / d: offsets reach 4 MiB, block sizes 128 KiB;
 *  - an off that wrapped (p below start, by less than 2^64 / d) lands
 *    near 2^64, above it too.
 * A huge block's page has m = 1 and block_limit = 1: off == 0 only.
 * block_limit only grows, and a thread freeing a block reads a value that
 * already covered the block when it was handed out, so a stale read is
 * harmless; relaxed atomic accesses make that race defined. */
kl_inline uint64_t kl_div_magic(size_t d) {
  return UINT64_MAX / d + 1 + ((d & (d - 1)) == 0);   /* a power of two would give e = 0 */
}
kl_inline bool kl_page_has_block(const kl_page_t *page, size_t off) {
  return off * page->div_magic < __atomic_load_n(&page->block_limit, __ATOMIC_RELAXED);
}
/* The same test by the page's owner, the only thread that writes
 * block_limit: a plain load, which the compiler folds into the compare. */
kl_inline bool kl_page_has_block_owned(const kl_page_t *page, size_t off) {
  return off * page->div_magic < page->block_limit;
}

/* A freed block's mark (kl_block_s): the address of its page's descriptor.
 * Free has it in a register already, and no program holds it by accident:
 * it lies in the segment header, where no block starts. */
kl_inline uintptr_t kl_block_mark(const kl_page_t *page) { return (uintptr_t)page; }
/* The mark is read and written by threads other than the page's owner: a
 * foreign cache (free.c) marks and unmarks blocks of other threads' pages
 * while their owners' holes sweeps and heap walks read the marks. Relaxed
 * atomics (plain moves on x86): each reader copes with either value. */
kl_inline uintptr_t kl_block_freed(const kl_block_t *b) { return __atomic_load_n(&b->freed, __ATOMIC_RELAXED); }
kl_inline void kl_block_set_freed(kl_block_t *b, uintptr_t v) { __atomic_store_n(&b->freed, v, __ATOMIC_RELAXED); }

/* The page of p when p is a live block in the segment of this thread's
 * last own free (kl_heap_s.seg_cache), with no segment map and no call;
 * NULL otherwise, which is no verdict: the caller takes its full path
 * (free_lookup, kl_checked_page), which reports what p is.
 * Segments are 4 MiB-aligned, so p ^ seg_cache is below 4 MiB exactly when
 * p lies in that segment, and is then p's offset in it: one xor is both the
 * test and the offset that finds the page (seg_cache_map) and the offset
 * in the page. With no segment cached (KL_SEG_NONE, 1), pointers below
 * 4 MiB (NULL among them) pass the test, and kl_page_map_empty's page,
 * which holds no block, turns them away. The owner is the only writer of
 * block_limit: a plain load (kl_page_has_block_owned). */
kl_inline kl_page_t *kl_cached_live_page(kl_heap_t *heap, const void *p) {
  size_t off = (uintptr_t)p ^ (uintptr_t)heap->seg_cache;
  if (off >= KL_SEGMENT_SIZE) return NULL;
  kl_page_t *page = heap->seg_cache_map[off >> KL_SMALL_PAGE_SHIFT];
  if (!kl_page_has_block_owned(page, off - page->start_off)) return NULL;
  if (((const kl_block_t *)p)->freed == kl_block_mark(page)) return NULL;
  return page;
}

/* ---- free-list links. The secure build stores each link XOR the page's
 * list_key: a link overwritten by an overflow decodes to an address outside
 * the page, which is reported instead of followed. */
#if KL_SECURE
kl_hidden void kl_error_corrupt(const kl_page_t *page, const void *block);
kl_inline kl_block_t *kl_block_next(const kl_page_t *page, const kl_block_t *b) {
  kl_block_t *n = (kl_block_t *)((uintptr_t)b->next ^ page->list_key);
  size_t off = (size_t)((uint8_t *)n - page->start);
  if (kl_unlikely(n != NULL && !kl_page_has_block(page, off)))
    kl_error_corrupt(page, b);
  return n;
}
kl_inline void kl_block_set_next(const kl_page_t *page, kl_block_t *b, kl_block_t *n) {
  b->next = (kl_block_t *)((uintptr_t)n ^ page->list_key);
}
#else
#define kl_block_next(page, b)        ((void)(page), (b)->next)
#define kl_block_set_next(page, b, n) ((void)(page), (b)->next = (n))
#endif

/* Hand out b, the head of page's free list: unlink it, clear its freed
 * mark, count it in used. Every malloc path's pop (the caller counts the
 * allocation in its own statistics slot).
 * The next head is prefetched: the next malloc of the class loads its link
 * at once, and where blocks come back in random order (a server's
 * requests) that load was the fast path's one stall: perf put 80% of
 * malloc's samples of kbench larson 2 on the instruction after it. One
 * instruction (a prefetch of the NULL that ends a list is dropped):
 * larson 2t -4%, 4t -2%; sh8 2t -3%, 4t -11%; python -5%; tight, sqlite,
 * alloc-test, xmalloc within noise (medians of 7-11 alternating runs). */
kl_inline void kl_page_pop(kl_page_t *page, kl_block_t *b) {
  kl_block_t *nx = kl_block_next(page, b);
  __builtin_prefetch(nx, 1);   /* for writing: the pop clears its mark */
  page->free = nx;
  kl_block_set_freed(b, 0);
  page->used++;
}

/* ---- debug.c: the debug build's checks wrap the API entry points */
#if KL_DEBUG
kl_hidden void *kl_dbg_malloc(size_t size);
kl_hidden void *kl_dbg_calloc(size_t count, size_t size);
kl_hidden void *kl_dbg_realloc(void *p, size_t size, const char *who);
kl_hidden void *kl_dbg_aligned(size_t align, size_t size);
kl_hidden void  kl_dbg_free(void *p, const char *who);
kl_hidden size_t kl_dbg_usable(const void *p, const char *who);
kl_hidden size_t kl_dbg_size(size_t size);                 /* bytes to ask for */
kl_hidden void *kl_dbg_finish(void *p, size_t size, bool zero);
#define KL_MALLOC(n)          kl_dbg_malloc(n)
#define KL_CALLOC(c, n)       kl_dbg_calloc(c, n)
#define KL_REALLOC(p, n, who) kl_dbg_realloc(p, n, who)
#define KL_ALIGNED(a, n)      kl_dbg_aligned(a, n)
#define KL_FREE(p, who)       kl_dbg_free(p, who)
#define KL_USABLE(p, who)     kl_dbg_usable(p, who)
#define KL_DBG_SIZE(n)        kl_dbg_size(n)
#define KL_DBG_FINISH(p, n, z) kl_dbg_finish(p, n, z)
#else
#define KL_MALLOC(n)          kl_malloc(n)
#define KL_CALLOC(c, n)       kl_calloc(c, n)
#define KL_REALLOC(p, n, who) kl_realloc(p, n, who)
#define KL_ALIGNED(a, n)      kl_aligned(a, n)
#define KL_FREE(p, who)       kl_free(p)
#define KL_USABLE(p, who)     kl_usable_size(p, who)
#define KL_DBG_SIZE(n)        (n)
#define KL_DBG_FINISH(p, n, z) (p)
#endif

/* ---- segment.c */
kl_inline kl_page_t *kl_segment_page_of(kl_segment_t *seg, const void *p) {
  /* p lies in [seg, seg + 4 MiB) for small and medium segments; a huge
   * block may start one unit further, but every entry of its map is pages[0]. */
  return seg->page_map[((uintptr_t)p >> KL_SMALL_PAGE_SHIFT) & (KL_MAX_PAGES - 1)];
}
kl_hidden kl_page_t *kl_segment_page_alloc(kl_heap_t *heap, kl_segkind_t kind, size_t block_size, bool dirty_only);
kl_hidden bool kl_segment_page_free(kl_page_t *page);   /* true: it freed the segment too */
kl_hidden void *kl_segment_huge_alloc(size_t size, size_t align, bool zero);
kl_hidden void kl_segment_huge_free(kl_segment_t *seg);
kl_hidden void *kl_segment_huge_realloc(kl_segment_t *seg, size_t size);
kl_hidden void kl_segment_abandon(kl_segment_t *seg);
kl_hidden void kl_segment_huge_attach(kl_heap_t *heap, void *block);
kl_hidden void kl_segment_huge_release(kl_segment_t *seg);
kl_hidden void kl_segment_huge_sweep(kl_heap_t *heap, bool destroy, bool detach);
kl_hidden void kl_segment_transfer(kl_segment_t *seg, kl_heap_t *to);
kl_hidden void kl_segment_atfork_init(void);   /* once, at process start */
kl_hidden bool kl_segment_reclaim(kl_heap_t *heap);
kl_hidden bool kl_segment_is_valid(const kl_segment_t *seg);
kl_hidden void kl_segment_purge(kl_heap_t *heap, bool force);
kl_hidden void kl_segment_lock(kl_heap_t *heap);     /* the owner's, reentrant: see kl_heap_s.seg_lock */
kl_hidden void kl_segment_unlock(kl_heap_t *heap);
/* Ranges to give back together (segment.c's purge passes, holes.c's sweeps). */
typedef struct { kl_prim_range_t r[KL_PURGE_BATCH]; size_t n, bytes; } kl_purge_batch_t;
kl_hidden void kl_purge_batch_add(kl_purge_batch_t *b, void *addr, size_t size, size_t counted);
kl_hidden void kl_purge_batch_flush(kl_purge_batch_t *b);
kl_hidden void kl_segment_cache_purge(void);    /* malloc_trim: purge every cached segment now */
kl_hidden void kl_segment_purger_poll(void);     /* start the purger thread if wanted (safe points only) */

/* ---- pool.c: dirty pages of freed huge blocks, made into new ones */
/* A mapping of `size` bytes (a multiple of KL_SEGMENT_SIZE) on a segment
 * boundary, made of freed huge blocks' pages; its first *dirty bytes hold
 * old contents, the rest is zero. NULL if the pool is empty. Counted in the
 * mapped statistic. */
kl_hidden void *kl_pool_take(size_t size, size_t *dirty);
kl_hidden void kl_pool_give(void *addr, size_t size);
kl_hidden bool kl_pool_take_at(void *addr, size_t size);          /* the front of the run at addr, if it has size bytes */
kl_hidden bool kl_pool_purge(bool all);                         /* true if it unmapped anything */
kl_hidden void kl_pool_atfork_init(void);

/* ---- page.c: the slow path */
kl_hidden void *kl_malloc_generic(kl_heap_t *heap, size_t size, size_t align, bool zero);
kl_hidden void kl_page_collect(kl_page_t *page);
kl_hidden void kl_page_retire(kl_heap_t *heap, kl_page_t *page);
/* Blocks handed out and not back: `used` less the parked bit and the pin. */
kl_inline uint32_t kl_page_used(const kl_page_t *page) { return (page->used & ~KL_USED_FULL) - page->pinned; }
kl_inline bool kl_page_in_full(const kl_page_t *page) { return (page->used & KL_USED_FULL) != 0; }
/* A page in its class queue (not parked as full) that is the queue's only
 * page: kl_page_retire keeps (pins) such a page when it empties. */
kl_inline bool kl_page_is_sole(const kl_page_t *page) {
  return ((uintptr_t)page->prev | (uintptr_t)page->next) == 0;
}
/* The pin: an emptied page kept as its class's only one counts one block
 * more in `used`, so that free's decrement never reaches zero on it again
 * and takes no branch for it. A program that allocates and frees one
 * block in a loop empties that page on every free (and one with a few
 * live blocks per class, every few frees): without the pin, each such
 * free tested the page's queue links (6 instructions, and a branch that
 * mispredicts). Only a sole page of a queue is pinned (heap.c unpins the
 * first page of a queue another page joins, and a page that leaves its
 * queue); kl_page_used leaves the pin out. */
kl_inline void kl_page_pin(kl_page_t *page) {
  if (!page->pinned) { page->pinned = 1; page->used++; }
}
kl_inline void kl_page_unpin(kl_page_t *page) {
  page->used -= page->pinned;
  page->pinned = 0;
}
kl_hidden void kl_page_init(kl_page_t *page, size_t block_size, unsigned class_idx, size_t area);
kl_hidden uint8_t *kl_page_area(const kl_segment_t *seg, const kl_page_t *page, size_t *size);
kl_hidden size_t kl_page_area_size(uint32_t page_shift, uint32_t index);   /* kl_page_area's size */
kl_hidden bool kl_page_is_valid(const kl_page_t *page);

/* ---- holes.c: free OS pages inside pages in use, given back */
#if KL_HOLES
kl_hidden void kl_holes_sweep(kl_heap_t *heap, bool force);   /* rate-limited unless force */
kl_hidden bool kl_holes_fill(kl_page_t *page);      /* bring back the lowest run; false if none */
kl_hidden bool kl_holes_release(kl_page_t *page);   /* an emptied page's holes checked; false: keep the page */
kl_hidden uint32_t kl_holes_blocks(const kl_page_t *page);          /* blocks in no list for them */
kl_hidden bool kl_holes_contain(const kl_page_t *page, const void *b);
kl_hidden void kl_holes_cold_sweep(kl_heap_t *heap, bool force);   /* medium pages; rate-limited unless force */
#else
#define kl_holes_cold_sweep(heap, force) ((void)(heap), (void)(force))
#define kl_holes_sweep(heap, force) ((void)(heap), (void)(force))
#define kl_holes_fill(page)         ((void)(page), false)
#define kl_holes_release(page)      ((void)(page), true)
#define kl_holes_blocks(page)       ((void)(page), (uint32_t)0)
#define kl_holes_contain(page, b)   ((void)(page), (void)(b), false)
#endif

/* ---- alloc.c / free.c */
kl_hidden void *kl_malloc(size_t size);
kl_hidden void *kl_calloc(size_t count, size_t size);
kl_hidden void *kl_realloc(void *p, size_t size, const char *who);
kl_hidden void *kl_aligned(size_t align, size_t size);
kl_hidden void *kl_aligned_alloc(size_t align, size_t size);          /* EINVAL unless a power of two */
kl_hidden int   kl_posix_memalign(void **out, size_t align, size_t size);
kl_hidden void  kl_free(void *p);
kl_hidden size_t kl_usable_size(const void *p, const char *who);
kl_hidden kl_page_t *kl_checked_page(const void *p, kl_segment_t **seg_out, const char *who);
#if KL_FOREIGN
kl_hidden void kl_foreign_flush(kl_heap_t *heap, unsigned c);   /* back to the owners' pages */
kl_hidden void *kl_malloc_foreign(size_t size, kl_heap_t *heap);
kl_hidden void kl_foreign_flush_all(kl_heap_t *heap);
#else
#define kl_foreign_flush_all(heap) ((void)(heap))
#endif

/* ---- init.c */
kl_hidden bool kl_process_init(void);   /* idempotent; false if unusable */
extern kl_prim_info_t kl_os kl_hidden;

/* ---- options.c */
typedef enum { KL_OPT_ON_ERROR_WARN, KL_OPT_VERBOSE, KL_OPT_SHOW_STATS, KL_OPT_PURGE_DELAY,
               KL_OPT_HUGE_PAGES, KL_OPT_PURGE_THREAD, KL_OPT_REPORT_INTERVAL, KL_OPT_POPULATE, KL_OPT_COUNT } kl_option_t;
kl_hidden void kl_options_init(void);
kl_hidden long kl_option(kl_option_t opt);

/* ---- error.c: all messages start with "keel: " */
kl_hidden void kl_error_bad_pointer(const char *who, const void *p, const char *what);
kl_hidden void kl_message(const char *fmt, ...);

/* ---- stats.c */
typedef struct kl_os_stats_s {   /* process-wide, touched on slow paths only */
  _Atomic(size_t) mapped, purged, committed_peak, os_calls;
  _Atomic(size_t) huge_live, huge_allocs, huge_frees, huge_bytes_live, huge_bytes_total, huge_bytes_freed;
  _Atomic(size_t) pages[KL_CLASS_COUNT];
  _Atomic(size_t) orphan_frees[KL_CLASS_COUNT];  /* frees by threads without a heap */
  _Atomic(size_t) threads;
  _Atomic(ptrdiff_t) in_use_sampled;
  _Atomic(size_t) in_use_peak;
} kl_os_stats_t;
extern kl_os_stats_t kl_os_stats kl_hidden;
kl_hidden void kl_stats_mapped(ptrdiff_t delta);
kl_hidden void kl_stats_purged(ptrdiff_t delta);
kl_hidden void kl_stats_heap_made(kl_heap_t *heap);
kl_hidden kl_heap_t *kl_stats_heaps(void);   /* every heap struct ever made, linked by all_next */
kl_hidden void kl_stats_sample(kl_heap_t *heap);
kl_hidden void kl_stats_count_orphan_free(unsigned class_idx);   /* by a thread without a heap */
/* A free of another thread's block, by this thread's heap (stats.c says
 * why it samples). Inline: free.c's remote path is a fast path too. */
kl_inline void kl_stats_count_free_remote(kl_heap_t *heap, unsigned c) {
  heap->counters.frees[c]++;
  if (kl_unlikely((++heap->counters.remote_frees & 255) == 0)) kl_stats_sample(heap);
}
/* One more in a kl_counters_t field of the calling thread's heap (plain
 * increment, owner only); skipped while the thread has none (its first call
 * failed). For the entries other than malloc and free, never their fast paths. */
#define KL_COUNT(field) do { kl_heap_t *h_ = kl_heap_get(); if (h_ != &kl_heap_empty) h_->counters.field++; } while (0)
#define KL_COUNT_CALL(which) KL_COUNT(calls[which])

/* ---- report.c */
kl_hidden void kl_report_start(void);   /* KEEL_REPORT: start sampling (safe point only) */
#endif
