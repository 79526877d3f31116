/* free.c — the free fast path, local and cross-thread.
 *
 * Fast path budget (x86-64, gcc -O2), a block freed by its owner thread
 * into the segment of its last free (kl_heap_s.seg_cache, the common case):
 *   TLS load of the heap, xor with the cached segment (one operation is
 *   both the "in this segment?" test and the offset in it: kl_cached_live_page); the
 *   page from the cached page map (shift, load), interior-pointer test
 *   (subtract, multiply, compare: kl_page_has_block), double-free mark
 *   (compare, store: the mark is the page descriptor's address, already in
 *   a register), push on local_free, count, and one decrement-and-branch on
 *   used that also catches a page parked full (KL_USED_FULL) — 25
 *   instructions with the return, no atomics; a page that empties as its
 *   class's only one (a block allocated and freed in a loop) takes one
 *   call, once, and is then pinned (kl_page_pin) so that its later frees
 *   are these same 25. free is this same code, inline (override.c). The
 *   cache answers what the
 *   segment map and the owner test would (the segment is keel's, live, and
 *   this thread's: see kl_heap_s); any other pointer takes free_lookup,
 *   which asks the map (shift, bounds test, byte load, compare) and then
 *   the owner test, and caches the segment when the thread owns it.
 *   The interior test and the mark, and the map on a miss, are what let the
 *   default build reject every pointer keel did not hand out, or already
 *   took back, before it touches a free list (KL_FREE_CHECKS=0 compiles
 *   the first two out).
 * A block from another thread's page goes to this thread's foreign cache
 * (below), or when that cannot take it costs one CAS (free_not_owner).
 * Huge blocks go back to the OS (or the segment cache) from any thread. */
#include <errno.h>
#include "internal/internal.h"
#include "keel.h"

/* The page emptied, or was parked full. The heap comes first: free's fast
 * path keeps the block in the first argument register for free_lookup, and
 * a page passed there cost it a register move. */
static kl_noinline void free_local_slow(kl_heap_t *heap, kl_page_t *page) {
  if (kl_page_in_full(page)) kl_heap_page_from_full(heap, page);
  if (page->used == 0) kl_page_retire(heap, page);
}

/* Push the n blocks first..last, linked already, onto the page's remote
 * list. Release so the owner's acquire exchange sees the links. If bit 0
 * was set the owner parked the page as full; we cleared the bit with our
 * CAS, so we alone tell its heap.
 * The page is read only before the CAS: once the blocks are on the list
 * the owner may take them, free the page and its segment (which may be
 * unmapped), so the owner heap is loaded first. Relaxed: heap structs are
 * never unmapped, and a stale one (the segment changed hands meanwhile)
 * gets a harmless extra rescan; the new owner collects at adoption. */
static void remote_push(kl_page_t *page, kl_block_t *first, kl_block_t *last, uintptr_t n) {
  kl_heap_t *heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
  uintptr_t tf = kl_load_relaxed(&page->xthread_free);
  do {
    kl_block_set_next(page, last, (kl_block_t *)(tf & KL_XF_PTR));
  } while (!kl_cas_weak(&page->xthread_free, &tf,
                        (uintptr_t)first | ((tf & ~KL_XF_PTR & ~(uintptr_t)1) + n * KL_XF_ONE), memory_order_release));
  /* Release pairs with the owner's acquire of has_delayed. */
  if ((tf & 1) && heap != NULL) kl_store_release(&heap->has_delayed, 1);
}

#if KL_FOREIGN
/* ---- foreign caches ------------------------------------------------------
 * Where a block another thread's page owns goes when this thread frees it:
 * a per-class list in this thread's heap, which its own mallocs of that
 * class take from (page.c) before any page. A server thread that frees
 * what others made and allocates the same sizes then reuses blocks hot in
 * its own cache, with no CAS on the owner's page and no miss when the
 * owner would have popped them (larson: the one pattern where returning
 * every block to its owner cost more than jemalloc's thread caches). The
 * blocks stay counted in their pages' `used`, so no page can be freed
 * under them. A full list goes back to the owners at once, each run of
 * blocks from one page with one CAS (a consumer thread that only frees
 * gets batching from this); so do all lists at thread exit and in
 * malloc_trim. */
/* Send a heap-that-only-frees' run (foreign_run_add, below) to its page:
 * linked and counted already. */
static void run_send(kl_page_t *run) {
  remote_push(run->next, run->free, run->local_free, run->capacity);
  run->free = NULL;
}

void kl_foreign_flush(kl_heap_t *heap, unsigned c) {
  if (heap->frees_only) {
    if (heap->foreign[c].free != NULL) run_send(&heap->foreign[c]);
    return;
  }
  kl_block_t *b = heap->foreign[c].free;
  heap->foreign[c].free = NULL;
  /* Room for KL_FOREIGN_BYTES of the class, at least 8 blocks. Computed
   * here, once per flush: frees count the room down, mallocs up. */
  uint32_t cap = (uint32_t)(KL_FOREIGN_BYTES / kl_class_size[c]);
  heap->foreign[c].used = cap < 8 ? 8 : cap;
  while (b != NULL) {
    /* A run of blocks of one page: relink it with the page's link
     * encoding, then one push. */
    kl_page_t *page = kl_segment_page_of((kl_segment_t *)kl_align_down((uintptr_t)b, KL_SEGMENT_SIZE), b);
    kl_block_t *first = b, *last = b, *nx = b->next;
    uintptr_t n = 1;
    while (nx != NULL && kl_page_has_block(page, (size_t)((uint8_t *)nx - page->start))) {
      kl_block_t *after = nx->next;
      kl_block_set_next(page, last, nx);
      last = nx; nx = after; n++;
    }
    remote_push(page, first, last, n);
    b = nx;
  }
}

/* A heap that only frees (a consumer) keeps, per class, one run of blocks
 * of one page rather than a list: its blocks are never reused here, only
 * batched. Each block is linked with its page's encoding as it is freed,
 * while its line is in this core's cache; the run goes back with one CAS
 * when a block of another page comes, or when it holds KL_FOREIGN_BATCH
 * blocks or KL_FOREIGN_BYTES. The list flushed above is walked instead:
 * a cache miss per block, each freed long before, in a chain of dependent
 * loads (kbench xmalloc: 68% of the flush's samples sat on that load).
 * The run's fields in the class's descriptor: `free` the newest block,
 * `local_free` the oldest (whose link the push sets), `next` the page,
 * `capacity` the count; `used` stays 0, so free's inline push never
 * takes a block (free_remote_other does). */
static void foreign_run_add(kl_heap_t *heap, unsigned c, kl_page_t *page, kl_block_t *b) {
  kl_page_t *run = &heap->foreign[c];
  if (run->free != NULL) {
    /* Room for one more: a product, not a division, on every such free. */
    if (run->next == page && run->capacity < KL_FOREIGN_BATCH &&
        (size_t)(run->capacity + 1) * kl_class_size[c] <= KL_FOREIGN_BYTES) {
      kl_block_set_next(page, b, run->free);
      run->free = b;
      run->capacity++;
      return;
    }
    run_send(run);
    kl_stats_sample(heap);
  }
  kl_block_set_next(page, b, NULL);
  run->free = run->local_free = b;
  run->next = page;
  run->capacity = 1;
}

void kl_foreign_flush_all(kl_heap_t *heap) {
  for (unsigned c = 0; c < KL_FOREIGN_CLASSES; c++)
    if (heap->foreign[c].free != NULL) kl_foreign_flush(heap, c);
}

/* Keep b in the class's cache; the caller made sure there is room. */
kl_inline void foreign_push(kl_heap_t *heap, unsigned c, kl_block_t *b) {
  b->next = heap->foreign[c].free;
  heap->foreign[c].free = b;
  heap->foreign[c].used--;   /* the room */
}

#endif

/* The rest of a free of another thread's block, out of line so that its
 * common case (room in the foreign cache, inline in kl_free_at) saves no
 * registers: count the free, then push the block to its page, or keep it
 * after sending a full cache back; a flush is also when a thread that
 * lives on its cache publishes its bytes in use (stats.c).
 * A thread whose first call is a free (a consumer that only frees what
 * others made) sets up its heap here, as malloc would. With the heap come
 * the foreign caches, so its frees reach the owners a run of blocks per
 * CAS rather than a CAS each, and the exit hook that flushes them; the
 * consumer then keeps pace with its producer (kbench xmalloc 1 60:
 * user+sys 0.43 -> 0.30 s, peak RSS 6.4 -> 3.8 MB). Its caches only batch
 * until its first small malloc (frees_only: page.c's foreign_pop). No heap
 * after the thread's exit hook ran (kl_heap_exited: the C library frees
 * its per-thread buffers later, and nothing would flush that heap), nor
 * when none can be had (out of memory): the free is then counted
 * process-wide and pushed alone. */
static kl_noinline void free_remote_other(kl_heap_t *heap, kl_page_t *page, kl_block_t *b) {
  unsigned c = page->class_idx;
  if (heap == &kl_heap_empty) {
    if (kl_heap_exited || (heap = kl_heap_init_thread()) == NULL) {
      kl_stats_count_orphan_free(c);
      remote_push(page, b, b, 1);
      return;
    }
    heap->frees_only = true;
  }
#if KL_FOREIGN
  if (page->foreign_ok) {
    heap->counters.frees[c]++;
    if (heap->frees_only) { foreign_run_add(heap, c, page, b); return; }
    if (heap->foreign[c].used == 0) { kl_foreign_flush(heap, c); kl_stats_sample(heap); }
    foreign_push(heap, c, b);
    return;
  }
#endif
  kl_stats_count_free_remote(heap, c);   /* not kept: counted toward a sample */
  remote_push(page, b, b, 1);
}

/* Not the owner, and the block is not kept in this thread's foreign cache
 * (kl_free_at tried that, the common case): a huge block goes back to the
 * OS; any other is pushed onto its page's remote list, or kept after a
 * flush (free_remote_other). */
static kl_noinline void free_not_owner(kl_segment_t *seg, kl_page_t *page, kl_block_t *b) {
  if (seg->kind == KL_SEG_HUGE) { kl_segment_huge_release(seg); return; }
  free_remote_other(kl_heap_get(), page, b);
}

static kl_noinline void free_bad(const void *p, const char *what) {
  kl_error_bad_pointer("free", p, what);
}

/* Is b, of a page another thread may own, a block to take back? The checks
 * of the default build (KL_FREE_CHECKS): a carved block's start, not
 * already freed; then it is marked freed. */
kl_inline bool free_check(kl_page_t *page, kl_block_t *b) {
#if KL_FREE_CHECKS
  if (kl_unlikely(!kl_page_has_block(page, (size_t)((uint8_t *)b - page->start)))) {
    free_bad(b, "not the start of a keel block (interior or stale pointer)");
    return false;
  }
  uintptr_t mark = kl_block_mark(page);
  if (kl_unlikely(kl_block_freed(b) == mark)) { free_bad(b, "double free"); return false; }
  kl_block_set_freed(b, mark);
#else
  (void)page; (void)b;
#endif
  return true;
}

/* The owner's free: push on local_free, count on `heap` (the page's). */
kl_inline void free_local(kl_heap_t *heap, kl_page_t *page, kl_block_t *b) {
  kl_block_set_next(page, b, page->local_free);
  page->local_free = b;
  heap->counters.frees[page->class_idx]++;
  /* Zero: the page emptied; negative: it is parked full (KL_USED_FULL).
   * The only page of its class, once it emptied, is pinned (kl_page_pin):
   * its `used` stays above zero, so a block allocated and freed in a loop
   * never takes this branch. */
  if (kl_unlikely(kl_dec_le0(&page->used))) free_local_slow(heap, page);
}

kl_inline void kl_free_at(kl_segment_t *seg, void *p) {
  kl_page_t *page = kl_segment_page_of(seg, p);
  kl_block_t *b = (kl_block_t *)p;
  if (!free_check(page, b)) return;
  kl_heap_t *heap = kl_heap_get();
  if (kl_likely(kl_load_relaxed(&seg->thread_id) == kl_prim_thread_id())) {
    /* The owner heap from the page: a first-class heap's, or the default
     * heap's (relaxed: only we write it). A default heap's segment becomes
     * its free cache (kl_heap_s.seg_cache), so the next free into it skips
     * the segment map and this test. (A huge block's segment has no owner,
     * thread_id 0: it never gets here.) */
    kl_heap_t *owner = atomic_load_explicit(&page->heap, memory_order_relaxed);
    if (owner == heap) kl_heap_set_seg_cache(heap, seg);
    free_local(owner, page, b);
    return;
  }
#if KL_FOREIGN
  /* Another thread's block: kept in this thread's foreign cache while it
   * has room, unless the page says no (foreign_ok: the block is too big,
   * or its page belongs to a first-class heap). A thread can live on the
   * cache alone (a server thread reusing blocks others made: larson), so
   * this is inline here. It publishes no statistics sample: what it keeps
   * it reuses (allocs follow frees) or sends back in a flush, which
   * samples. Neither a huge block's page nor the empty heap passes the
   * test: foreign_ok is 0 on the one, every room is 0 in the other. */
  unsigned c = page->class_idx;
  if (kl_likely(page->foreign_ok && heap->foreign[c].used != 0)) {
    heap->counters.frees[c]++;
    foreign_push(heap, c, b);
    return;
  }
#endif
  free_not_owner(seg, page, b);
}

static kl_noinline void free_unusual(void *p, unsigned v) {
  if (v == 2) { kl_free_at((kl_segment_t *)(((uintptr_t)p & ~(uintptr_t)(KL_SEGMENT_SIZE - 1)) - KL_SEGMENT_SIZE), p); return; }
  if (p != NULL) free_bad(p, "not allocated by keel, or already freed");
}

/* Any pointer: the segment map says whether keel made it and where its
 * segment starts. */
static kl_noinline KL_HOT void free_lookup(void *p) {
  unsigned v = kl_segmap_byte(p);
  if (kl_unlikely(v != 1)) { free_unusual(p, v); return; }   /* NULL, foreign, or a 4 MiB-aligned huge block */
  kl_free_at((kl_segment_t *)((uintptr_t)p & ~(uintptr_t)(KL_SEGMENT_SIZE - 1)), p);
}

/* The fast path: a live block in the segment of this thread's last own
 * free is a local free into the thread's default heap; the segment map and
 * the owner test are already answered (kl_heap_s.seg_cache). Anything
 * else, a double free or a bad pointer included, takes free_lookup, which
 * reports what it is. Inline in kl_free and in override.c's free. */
kl_inline void free_fast(void *p) {
  kl_heap_t *heap = kl_heap_get();
#if KL_FREE_CHECKS
  kl_page_t *page = kl_cached_live_page(heap, p);
  if (kl_likely(page != NULL)) {
    kl_block_set_freed((kl_block_t *)p, kl_block_mark(page));
    free_local(heap, page, (kl_block_t *)p);
    return;
  }
#else
  /* No checks: the cached segment's page, if p is in it (not NULL's). */
  size_t off = (uintptr_t)p ^ (uintptr_t)heap->seg_cache;
  if (kl_likely(off < KL_SEGMENT_SIZE)) {
    kl_page_t *page = heap->seg_cache_map[off >> KL_SMALL_PAGE_SHIFT];
    if (kl_likely(page != &kl_page_empty)) { free_local(heap, page, (kl_block_t *)p); return; }
  }
#endif
  free_lookup(p);
}

void kl_free(void *p) { free_fast(p); }

kl_public void keel_free(void *p) { KL_FREE(p, "keel_free"); }
kl_public void keel_free_sized(void *p, size_t size) {
#if KL_CHECKED
  if (p != NULL && size > kl_usable_size(p, "keel_free_sized"))
    kl_error_bad_pointer("keel_free_sized", p, "size larger than the block");
#endif
  (void)size;
  if (p != NULL) KL_COUNT_CALL(KL_CALL_FREE_SIZED);   /* as free_sized (override.c) */
  KL_FREE(p, "keel_free_sized");
}
