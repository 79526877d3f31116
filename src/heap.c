/* heap.c — the per-thread heap: page queues, the direct table, thread start
 * and thread exit.
 *
 * Invariants:
 *  - pages_direct[i] is the first page of the class of size i*16, or the
 *    static empty page when that queue is empty: the malloc fast path never
 *    sees NULL and needs no "initialized?" test; or, while the thread
 *    lives on other threads' blocks, the class's foreign cache, which is
 *    shaped as a page for that (kl_malloc_foreign, page.c);
 *  - a page is in exactly one of queues[class] or full (kl_page_in_full says which);
 *  - heap structs come from OS chunks and are recycled through a lock-free
 *    stack, never unmapped: remote frees may write has_delayed through a
 *    stale pointer at any time. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include "internal/internal.h"

const kl_page_t kl_page_empty;  /* free == NULL: every lookup misses; block_limit 0: holds no block */
kl_page_t *const kl_page_map_empty[KL_MAX_PAGES] = { [0 ... KL_MAX_PAGES - 1] = (kl_page_t *)&kl_page_empty };
kl_heap_t kl_heap_empty = {
  .pages_direct = { [0 ... KL_DIRECT_COUNT - 1] = (kl_page_t *)&kl_page_empty },
  .seg_cache = KL_SEG_NONE,
  .seg_cache_map = kl_page_map_empty,
};
__thread kl_heap_t *kl_heap_tls __attribute__((tls_model("initial-exec"))) = &kl_heap_empty;
__thread bool kl_heap_exited __attribute__((tls_model("initial-exec")));

/* ---- queues ------------------------------------------------------------ */

/* Point the direct sizes of class c (up to KL_DIRECT_MAX) at pg. */
void kl_heap_direct_set(kl_heap_t *heap, unsigned c, kl_page_t *pg) {
  size_t lo = c == 0 ? 0 : kl_class_size[c - 1] / 16 + 1;
  size_t hi = kl_class_size[c] / 16;
  for (size_t i = lo; i <= hi; i++) heap->pages_direct[i] = pg;
}

/* Point them back at the class queue's first page (or the empty page). */
void kl_heap_direct_update(kl_heap_t *heap, unsigned c) {
  if (kl_class_size[c] > KL_DIRECT_MAX) return;
  kl_page_t *pg = heap->queues[c].first;
  kl_heap_direct_set(heap, c, pg != NULL ? pg : (kl_page_t *)&kl_page_empty);
}

static void q_push_front(kl_page_queue_t *q, kl_page_t *page) {
  page->prev = NULL;
  page->next = q->first;
  if (q->first) q->first->prev = page; else q->last = page;
  q->first = page;
}
static void q_push_back(kl_page_queue_t *q, kl_page_t *page) {
  page->next = NULL;
  page->prev = q->last;
  if (q->last) q->last->next = page; else q->first = page;
  q->last = page;
}
static void q_remove(kl_page_queue_t *q, kl_page_t *page) {
  if (page->prev) page->prev->next = page->next; else q->first = page->next;
  if (page->next) page->next->prev = page->prev; else q->last = page->prev;
  page->next = page->prev = NULL;
}

void kl_heap_queue_push_front(kl_heap_t *heap, kl_page_t *page) {
  kl_page_queue_t *q = &heap->queues[page->class_idx];
  if (q->first != NULL) kl_page_unpin(q->first);   /* no longer the only page */
  q_push_front(q, page);
  kl_heap_direct_update(heap, page->class_idx);
}

void kl_heap_queue_remove(kl_heap_t *heap, kl_page_t *page) {
  if (kl_page_in_full(page)) { q_remove(&heap->full, page); page->used &= ~KL_USED_FULL; return; }
  bool was_first = heap->queues[page->class_idx].first == page;
  kl_page_unpin(page);
  q_remove(&heap->queues[page->class_idx], page);
  if (was_first) kl_heap_direct_update(heap, page->class_idx);
}

void kl_heap_queue_to_front(kl_heap_t *heap, kl_page_t *page) {
  q_remove(&heap->queues[page->class_idx], page);
  kl_heap_queue_push_front(heap, page);
}

/* Park a page with no free block. From now on the first remote free into
 * it must tell us: set bit 0 of xthread_free. If a remote free slipped in
 * before the bit (the old value has blocks), nudge ourselves instead. The
 * fetch_or and the remote CAS are RMWs on one atomic, so one of the two
 * always sees the other: no wake-up is lost. acq_rel: acquire for the
 * blocks we may see, release so the bit is ordered after our list moves. */
void kl_heap_page_to_full(kl_heap_t *heap, kl_page_t *page) {
  kl_heap_queue_remove(heap, page);
  q_push_front(&heap->full, page);
  page->used |= KL_USED_FULL;
  uintptr_t old = atomic_fetch_or_explicit(&page->xthread_free, 1, memory_order_acq_rel);
  if (old > 1) kl_store_relaxed(&heap->has_delayed, 1);
}

/* A parked page got a block back. It goes to the back of its queue: at the
 * front, with one free block, the next malloc would empty it again and take
 * the slow path, and the page would bounce between the two lists once per
 * block (larson-style random frees did that on 1 call in 4). At the back it
 * gathers frees while the pages before it serve. */
void kl_heap_page_from_full(kl_heap_t *heap, kl_page_t *page) {
  q_remove(&heap->full, page);
  page->used &= ~KL_USED_FULL;
  kl_page_queue_t *q = &heap->queues[page->class_idx];
  if (q->first != NULL) kl_page_unpin(q->first);   /* no longer the only page */
  q_push_back(q, page);
  if (q->first == page) kl_heap_direct_update(heap, page->class_idx);
}

/* Take back parked pages that remote frees announced. */
void kl_heap_collect_delayed(kl_heap_t *heap) {
  /* Acquire pairs with the release store in remote_push (free.c). */
  if (kl_exchange_acquire(&heap->has_delayed, 0) == 0) return;
  kl_page_t *page = heap->full.first;
  while (page != NULL) {
    kl_page_t *next = page->next;
    if (kl_load_relaxed(&page->xthread_free) > 1) {
      kl_page_collect(page);
      kl_heap_page_from_full(heap, page);
      if (page->used == 0) kl_page_retire(heap, page);
    }
    page = next;
  }
}

/* ---- heap structs: carved from OS chunks, recycled, never unmapped ----- */

/* The pool is a lock-free stack (Treiber). Its head word packs the top
 * heap's address (64-byte aligned and below 2^47, as the segment map
 * assumes: 41 bits) with a 23-bit tag that every pop bumps, so a pop that
 * read a `pool_next` which changed under it fails its CAS (the ABA case:
 * the top was popped, used and pushed back meanwhile). Heap structs are
 * never unmapped, so reading a stale top's `pool_next` is safe.
 *
 * An earlier version emptied the whole stack with one exchange and pushed
 * the rest back: a thread starting inside that window found the pool empty
 * and mapped a fresh chunk, so threads starting and exiting at once made
 * the pool, and RSS, grow without bound. */
static _Atomic(uint64_t) heap_pool;
#define POOL_PTR_BITS 41
static kl_heap_t *pool_ptr(uint64_t w) { return (kl_heap_t *)(uintptr_t)((w & ((1ull << POOL_PTR_BITS) - 1)) << 6); }
static uint64_t pool_word(const kl_heap_t *h, uint64_t tag) { return (uint64_t)(uintptr_t)h >> 6 | tag << POOL_PTR_BITS; }

static void pool_push(kl_heap_t *heap) {
  uint64_t old = kl_load_relaxed(&heap_pool);
  /* Release: the next taker sees the link (and the heap's reset state). */
  do { __atomic_store_n(&heap->pool_next, pool_ptr(old), __ATOMIC_RELAXED); }
  while (!kl_cas_weak(&heap_pool, &old, pool_word(heap, old >> POOL_PTR_BITS), memory_order_release));
}

/* Fresh structs are carved one at a time from the current chunk, under a
 * spin lock held for a few steps (thread start, never a fast path). A
 * chunk holds 16 structs, but only the carved ones are written: linking
 * all 16 up front touched every page of the chunk, about 15 page faults
 * (60 KiB of resident memory) in every process, threaded or not. */
static _Atomic(int) carve_lock;
static uint8_t *carve_next, *carve_end;   /* under carve_lock */

/* Fork takes the lock first, so a child never inherits it held, nor the
 * two pointers half updated. */
static void carve_acquire(void) { kl_lock(&carve_lock); }
static void carve_release(void) { kl_unlock(&carve_lock); }
void kl_heap_atfork_init(void) { kl_prim_atfork(carve_acquire, carve_release, carve_release); }

static kl_heap_t *heap_take(void) {
  /* Acquire (the load and the CAS): we read the top's pool_next and then
   * own the struct, both written before a release push. */
  uint64_t old = atomic_load_explicit(&heap_pool, memory_order_acquire);
  while (pool_ptr(old) != NULL) {
    kl_heap_t *top = pool_ptr(old);
    /* May be stale (top taken meanwhile): then the tag differs and the CAS fails. */
    kl_heap_t *next = __atomic_load_n(&top->pool_next, __ATOMIC_RELAXED);
    uint64_t tag = ((old >> POOL_PTR_BITS) + 1) & ((1ull << (64 - POOL_PTR_BITS)) - 1);
    if (kl_cas_weak(&heap_pool, &old, pool_word(next, tag), memory_order_acquire)) return top;
  }
  size_t hs = kl_align_up(sizeof(kl_heap_t), 64);
  kl_lock(&carve_lock);
  if ((size_t)(carve_end - carve_next) < hs) {
    size_t chunk = kl_align_up(hs * 16, kl_os.page_size);
    uint8_t *mem = kl_prim_alloc_aligned(chunk, kl_os.page_size, 0);
    if (mem == NULL) { kl_unlock(&carve_lock); return NULL; }
    kl_stats_mapped((ptrdiff_t)chunk);
    carve_next = mem;
    carve_end = mem + chunk;
  }
  kl_heap_t *heap = (kl_heap_t *)carve_next;
  carve_next += hs;
  kl_unlock(&carve_lock);
  kl_stats_heap_made(heap);
  return heap;
}

kl_heap_t *kl_heap_init_thread(void) {
  if (!kl_process_init()) return NULL;
  kl_heap_t *heap = heap_take();
  if (heap == NULL) return NULL;
  memset(heap, 0, offsetof(kl_heap_t, all_next));   /* counters stay: see types.h */
  /* Atomic, not in the memset: a remote free holding a stale pointer to
   * this recycled struct may set it at any time (a harmless extra rescan). */
  kl_store_relaxed(&heap->has_delayed, 0);
  atomic_fetch_add_explicit(&kl_os_stats.threads, 1, memory_order_relaxed);
  for (size_t i = 0; i < KL_DIRECT_COUNT; i++) heap->pages_direct[i] = (kl_page_t *)&kl_page_empty;
  kl_heap_set_seg_cache(heap, KL_SEG_NONE);
  heap->thread_id = kl_prim_thread_id();
  kl_segment_lock(heap);   /* the purger may be looking at the struct's last life */
  heap->seg_live = true;
  kl_segment_unlock(heap);
  kl_heap_tls = heap;
  /* After kl_heap_tls is set: if the C library allocates while registering
   * (glibc does for high key numbers), that allocation finds this heap. */
  kl_prim_thread_register(heap);
  kl_report_start();   /* once per process; a safe point: this heap is ready */
  return heap;
}

/* ---- thread exit ------------------------------------------------------- */

static void abandon_queue(kl_page_queue_t *q) {
  kl_page_t *page = q->first;
  while (page != NULL) {
    kl_page_t *next = page->next;
    page->next = page->prev = NULL;
    page->used &= ~KL_USED_FULL;
    kl_page_unpin(page);
    kl_page_collect(page);
    atomic_store_explicit(&page->heap, NULL, memory_order_relaxed);
    if (page->used == 0 && kl_holes_release(page)) kl_segment_page_free(page);
    page = next;
  }
  q->first = q->last = NULL;
}

/* The thread is exiting (pthread key destructor). Empty pages go back to
 * their segments, segments still holding blocks are abandoned for other
 * threads to adopt, and the heap struct is recycled. If the thread
 * allocates again afterwards (a later destructor), it simply gets a fresh
 * heap, and this runs again for that one. */
static void abandon_heap(kl_heap_t *heap) {
  kl_segment_lock(heap);   /* the purger looks at live heaps' segments */
  heap->seg_live = false;
  for (unsigned c = 0; c < KL_CLASS_COUNT; c++) abandon_queue(&heap->queues[c]);
  abandon_queue(&heap->full);
  kl_segment_huge_sweep(heap, false, true);
  kl_segment_purge(heap, true);   /* nobody will come back for these soon */
  kl_segment_t *seg = heap->segments;
  while (seg != NULL) {
    kl_segment_t *next = seg->next;
    heap->counters.segments_abandoned++;
    kl_segment_abandon(seg);
    seg = next;
  }
  heap->segments = NULL;
  heap->free_segs[0] = heap->free_segs[1] = NULL;
  kl_heap_set_seg_cache(heap, KL_SEG_NONE);
  heap->purge_next = 0;
  kl_segment_unlock(heap);
  kl_stats_sample(heap);
  kl_store_relaxed(&heap->has_delayed, 0);
}

void kl_heap_thread_done(void *arg) {
  kl_heap_t *heap = arg;
  if (heap == NULL || heap == &kl_heap_empty) return;
  /* First, while this thread still has a heap: the blocks it kept of
   * other threads' pages go back to them (free.c). */
  kl_foreign_flush_all(heap);
  if (kl_heap_tls == heap) kl_heap_tls = &kl_heap_empty;
  kl_heap_exited = true;
  /* The thread's first-class heaps die with it: their blocks live on in
   * abandoned segments; the handles fail from now on (thread_id 0). The
   * structs are not recycled, since the program may still hold them. */
  for (kl_heap_t *u = heap->users; u != NULL; u = u->user_next) {
    abandon_heap(u);
    u->thread_id = 0;
    u->is_user = false;
  }
  heap->users = NULL;
  abandon_heap(heap);
  pool_push(heap);
}

bool kl_heap_is_valid(const kl_heap_t *heap) {
  for (unsigned c = 0; c < KL_CLASS_COUNT; c++) {
    const kl_page_t *prev = NULL;
    for (const kl_page_t *p = heap->queues[c].first; p; prev = p, p = p->next) {
      if (p->class_idx != c || kl_page_in_full(p) || p->prev != prev || !p->in_use) return false;
      if (p->pinned && !kl_page_is_sole(p)) return false;
      if (kl_load_relaxed(&p->heap) != heap || !kl_page_is_valid(p)) return false;
    }
    if (heap->queues[c].last != prev) return false;
    if (kl_class_size[c] <= KL_DIRECT_MAX) {
      const kl_page_t *want = heap->queues[c].first ? heap->queues[c].first : &kl_page_empty;
      const kl_page_t *got = heap->pages_direct[kl_class_size[c] / 16];
      if (got != want && !(KL_FOREIGN && c < KL_FOREIGN_CLASSES && got == &heap->foreign[c])) return false;
    }
  }
  for (const kl_page_t *p = heap->full.first; p; p = p->next) {
    if (!kl_page_in_full(p) || p->pinned || !kl_page_is_valid(p)) return false;
  }
  /* Free pages' state: the purger may be changing it. The lock is not
   * the heap's state, hence the cast. */
  kl_heap_t *locked = (kl_heap_t *)heap;
  bool ok = true;
  kl_segment_lock(locked);
  for (const kl_segment_t *s = heap->segments; s && ok; s = s->next) ok = s->heap == heap && kl_segment_is_valid(s);
  kl_segment_unlock(locked);
  return ok;
}

/* ---- first-class heaps: lifecycle ---------------------------------------- */
#include "keel.h"

static kl_heap_t *default_heap(void) {
  kl_heap_t *def = kl_heap_get();
  return def != &kl_heap_empty ? def : kl_heap_init_thread();
}

/* heap is a live heap the calling thread made, or (if allowed) the
 * thread's default heap; else the error is reported. */
bool kl_heap_owned_here(const kl_heap_t *heap, bool allow_default, const char *who) {
  if (heap != NULL && heap->is_user && heap->thread_id == kl_prim_thread_id()) return true;
  if (allow_default && heap != NULL && heap == kl_heap_get() && heap != &kl_heap_empty) return true;
  kl_error_bad_pointer(who, heap, allow_default || heap == NULL || heap != kl_heap_get()
      ? "not a live heap of this thread (a heap belongs to the thread that made it)"
      : "a thread's default heap lives as long as the thread (it cannot be destroyed or deleted)");
  return false;
}
static bool owned_here(const kl_heap_t *heap, const char *who) { return kl_heap_owned_here(heap, false, who); }

static void users_unlink(kl_heap_t *heap) {
  kl_heap_t *parent = heap->parent;
  if (heap->user_prev) heap->user_prev->user_next = heap->user_next; else parent->users = heap->user_next;
  if (heap->user_next) heap->user_next->user_prev = heap->user_prev;
  heap->user_next = heap->user_prev = NULL;
}

kl_public keel_heap_t *keel_heap_new(void) {
  kl_heap_t *def = default_heap();
  if (def == NULL) { errno = ENOMEM; return NULL; }
  kl_heap_t *heap = heap_take();
  if (heap == NULL) { errno = ENOMEM; return NULL; }
  memset(heap, 0, offsetof(kl_heap_t, all_next));
  kl_store_relaxed(&heap->has_delayed, 0);   /* see kl_heap_init_thread */
  for (size_t i = 0; i < KL_DIRECT_COUNT; i++) heap->pages_direct[i] = (kl_page_t *)&kl_page_empty;
  kl_heap_set_seg_cache(heap, KL_SEG_NONE);   /* unused: free's cache is the default heap's */
  heap->thread_id = def->thread_id;
  heap->is_user = true;
  heap->parent = def;
  heap->user_next = def->users;
  if (def->users) def->users->user_prev = heap;
  def->users = heap;
  return (keel_heap_t *)heap;
}

kl_public keel_heap_t *keel_heap_default(void) { return (keel_heap_t *)default_heap(); }

static void destroy_queue(kl_heap_t *heap, kl_page_queue_t *q) {
  kl_page_t *page = q->first;
  while (page != NULL) {
    kl_page_t *next = page->next;
    /* Count the blocks that die with the page as freed (statistics). */
    kl_page_collect(page);
    heap->counters.frees[page->class_idx] += kl_page_used(page);
    kl_page_unpin(page);
    page->next = page->prev = NULL;
    kl_segment_page_free(page);
    page = next;
  }
  q->first = q->last = NULL;
}

/* Every page goes back to its segment (and empty segments to the cache)
 * without looking at a single block: O(pages). */
kl_public void keel_heap_destroy(keel_heap_t *h) {
  kl_heap_t *heap = (kl_heap_t *)h;
  if (!owned_here(heap, "keel_heap_destroy")) return;
  for (unsigned c = 0; c < KL_CLASS_COUNT; c++) destroy_queue(heap, &heap->queues[c]);
  destroy_queue(heap, &heap->full);
  kl_segment_huge_sweep(heap, true, false);
  kl_segment_purge(heap, false);
  /* Each segment went back with its last page. */
  kl_assert(heap->segments == NULL);
  users_unlink(heap);
  heap->thread_id = 0;            /* a stale handle now fails owned_here */
  heap->is_user = false;
  pool_push(heap);
}

/* Live blocks stay valid: pages and segments move to the default heap. */
kl_public void keel_heap_delete(keel_heap_t *h) {
  kl_heap_t *heap = (kl_heap_t *)h;
  if (!owned_here(heap, "keel_heap_delete")) return;
  kl_heap_t *def = heap->parent;
  for (unsigned c = 0; c < KL_CLASS_COUNT; c++) {
    kl_page_t *page;
    while ((page = heap->queues[c].first) != NULL) {
      kl_heap_queue_remove(heap, page);
      atomic_store_explicit(&page->heap, def, memory_order_relaxed);
      kl_heap_queue_push_front(def, page);
    }
  }
  kl_page_t *page;
  while ((page = heap->full.first) != NULL) {
    q_remove(&heap->full, page);
    atomic_store_explicit(&page->heap, def, memory_order_relaxed);
    q_push_front(&def->full, page);   /* stays parked; its notify bit now reaches def */
  }
  kl_store_relaxed(&def->has_delayed, 1);   /* a notice may have gone to the old heap */
  kl_segment_lock(def);   /* its segment list grows */
  while (heap->segments != NULL) kl_segment_transfer(heap->segments, def);
  if (heap->purge_next && (def->purge_next == 0 || heap->purge_next < def->purge_next)) def->purge_next = heap->purge_next;
  kl_segment_unlock(def);
  kl_segment_huge_sweep(heap, false, true);
  users_unlink(heap);
  heap->thread_id = 0;
  heap->is_user = false;
  pool_push(heap);
}

kl_public bool keel_heap_contains(const keel_heap_t *h, const void *p) {
  const kl_heap_t *heap = (const kl_heap_t *)h;
  kl_segment_t *seg = kl_segmap_lookup(p);
  if (heap == NULL || seg == NULL) return false;
  kl_page_t *page = kl_segment_page_of(seg, p);
  if (seg->kind == KL_SEG_HUGE) {
    /* A default heap does not track its huge blocks (any thread may free
     * them): every live plain huge block counts as a default heap's. */
    int state = kl_load_relaxed(&seg->huge_state);
    kl_heap_t *owner = kl_load_relaxed(&seg->huge_heap);
    bool mine = heap->is_user ? owner == heap && state == 0 : owner == NULL && state == 2;
    return mine && p == page->start;
  }
  size_t off = (size_t)((const uint8_t *)p - page->start);
  if (!page->in_use || kl_load_relaxed(&page->heap) != heap) return false;
  if (!kl_page_has_block(page, off)) return false;
  return kl_block_freed((const kl_block_t *)p) != kl_block_mark(page) && !kl_holes_contain(page, p);
}

static bool visit_queue(kl_page_queue_t *q, bool (*visit)(void *, size_t, void *), void *arg) {
  for (kl_page_t *page = q->first; page != NULL; page = page->next) {
    kl_page_collect(page);
    /* Mark free blocks in a bitmap (a 64 KiB page has at most 4096 blocks),
     * then visit the carved blocks that are not marked. */
    uint64_t freemap[((size_t)1 << KL_SMALL_PAGE_SHIFT) / 16 / 64] = { 0 };
    for (kl_block_t *b = page->free; b != NULL; b = kl_block_next(page, b)) {
      size_t i = (size_t)((uint8_t *)b - page->start) / page->block_size;
      freemap[i / 64] |= (uint64_t)1 << (i % 64);
    }
    for (uint32_t i = 0; i < page->capacity; i++) {
      if (freemap[i / 64] & ((uint64_t)1 << (i % 64))) continue;
      /* Freed but in no list of the page: in another thread's foreign
       * cache (free.c). The mark says so. */
      kl_block_t *b = (kl_block_t *)(page->start + (size_t)i * page->block_size);
      if (kl_holes_contain(page, b)) continue;   /* free, its memory given back (holes.c) */
      if (KL_FOREIGN && kl_block_freed(b) == kl_block_mark(page)) continue;
      if (!visit(b, page->block_size, arg)) return false;
    }
  }
  return true;
}

kl_public bool keel_heap_visit(keel_heap_t *h, bool (*visit)(void *block, size_t size, void *arg), void *arg) {
  kl_heap_t *heap = (kl_heap_t *)h;
  if (!kl_heap_owned_here(heap, true, "keel_heap_visit") || visit == NULL) return true;
  kl_segment_huge_sweep(heap, false, false);
  for (unsigned c = 0; c < KL_CLASS_COUNT; c++) if (!visit_queue(&heap->queues[c], visit, arg)) return false;
  if (!visit_queue(&heap->full, visit, arg)) return false;
  for (kl_segment_t *seg = heap->huge; seg != NULL; seg = seg->next) {
    if (kl_load_acquire(&seg->huge_state) != 0) continue;
    if (!visit(seg->pages[0].start, seg->pages[0].block_size, arg)) return false;
  }
  return true;
}
