/* free.c — the free fast path, local and cross-thread.
 *
 * Fast path budget (x86-64, gcc -O2), a block freed by its owner thread:
 *   segment map lookup (shift, bounds test, byte load, compare), the page
 *   from the segment's page map (shift, mask, load), interior-pointer test
 *   (subtract, compare, multiply, compare), double-free mark (load, xor,
 *   compare, store), owner test against the TLS base, push on local_free,
 *   count (on the owner heap the page names), decrement used, two unlikely
 *   tests — 38 instructions, no atomics. The map lookup, the interior test
 *   and the mark (about 21 of them) are what let the default build reject
 *   every pointer keel did not hand out, or already took back, before it
 *   touches a free list (KL_FREE_CHECKS=0 compiles them out).
 * A block from another thread costs one CAS (kl_free_slow). Huge blocks go
 * back to the OS (or the segment cache) from any thread. */
#include <errno.h>
#include "internal/internal.h"
#include "keel.h"

static kl_noinline void free_local_slow(kl_page_t *page) {
  /* The only page of its class stays, as kl_page_retire would decide:
   * answered here, because a program that frees its one live block in a
   * loop comes here on every free. */
  if (page->used == 0 && !page->in_full && kl_page_is_sole(page)) return;
  kl_heap_t *heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
  if (page->used == 0) kl_page_retire(heap, page);
  else if (page->in_full) kl_heap_page_from_full(heap, page);
}

/* Not the owner: push onto the page's remote list and count it. Release so
 * the owner's acquire exchange sees b->next. If bit 0 was set the owner
 * parked the page as full; we cleared the bit with our CAS, so we alone
 * tell its heap. */
kl_noinline void kl_free_slow(kl_segment_t *seg, kl_page_t *page, kl_block_t *b) {
  if (seg->kind == KL_SEG_HUGE) { kl_segment_huge_release(seg); return; }
  kl_stats_count_free_remote(page->class_idx);
  uintptr_t tf = kl_load_relaxed(&page->xthread_free);
  do {
    kl_block_set_next(page, b, (kl_block_t *)(tf & KL_XF_PTR));
  } while (!kl_cas_weak(&page->xthread_free, &tf,
                        (uintptr_t)b | ((tf & ~KL_XF_PTR & ~(uintptr_t)1) + KL_XF_ONE), memory_order_release));
  if (tf & 1) {
    /* Relaxed load: heap structs are never unmapped, a stale one gets a
     * harmless extra rescan. Release store pairs with the owner's acquire. */
    kl_heap_t *heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
    if (heap != NULL) kl_store_release(&heap->has_delayed, 1);
  }
}

static kl_noinline void free_bad(const void *p, const char *what) {
  kl_error_bad_pointer("free", p, what);
}

kl_inline void kl_free_at(kl_segment_t *seg, void *p) {
  kl_page_t *page = kl_segment_page_of(seg, p);
  kl_block_t *b = (kl_block_t *)p;
#if KL_FREE_CHECKS
  size_t off = (size_t)((uint8_t *)p - page->start);
  if (kl_unlikely(off >= KL_CARVED(page) || off * page->div_magic >= page->div_magic)) {
    free_bad(p, "not the start of a keel block (interior or stale pointer)");
    return;
  }
  uintptr_t mark = page->free_key ^ (uintptr_t)b;
  if (kl_unlikely(b->freed == mark)) { free_bad(p, "double free"); return; }
  b->freed = mark;
#endif
  if (kl_likely(kl_load_relaxed(&seg->thread_id) == kl_prim_thread_id())) {
    kl_block_set_next(page, b, page->local_free);
    page->local_free = b;
    /* The owner heap from the page (its line is already read) rather than
     * from TLS: one load instead of two. Relaxed: only we write it. */
    atomic_load_explicit(&page->heap, memory_order_relaxed)->counters.frees[page->class_idx]++;
    if (kl_unlikely(--page->used == 0 || page->in_full)) free_local_slow(page);
  } else {
    kl_free_slow(seg, page, b);
  }
}

static kl_noinline void free_unusual(void *p, unsigned v) {
  if (v == 2) { kl_free_at((kl_segment_t *)(((uintptr_t)p & ~(uintptr_t)(KL_SEGMENT_SIZE - 1)) - KL_SEGMENT_SIZE), p); return; }
  if (p != NULL) free_bad(p, "not allocated by keel, or already freed");
}

void kl_free(void *p) {
  unsigned v = kl_segmap_byte(p);
  if (kl_unlikely(v != 1)) { free_unusual(p, v); return; }   /* NULL, foreign, or a 4 MiB-aligned huge block */
  kl_free_at((kl_segment_t *)((uintptr_t)p & ~(uintptr_t)(KL_SEGMENT_SIZE - 1)), p);
}

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
