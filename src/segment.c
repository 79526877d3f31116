/* segment.c — memory from the OS in 4 MiB-aligned segments.
 *
 * Owns: taking segments from the OS or the cache and giving them back;
 * handing out pages of small and medium segments to a heap; huge blocks (one
 * per segment, sized to fit); abandoning a dead thread's segments and
 * adopting them into a live heap.
 *
 * Invariants:
 *  - a small/medium segment is on its heap's `segments` list while owned,
 *    and on `free_segs[kind]` iff it has a page not in use;
 *  - a segment is in the segment map iff it is live (owned, abandoned or a
 *    huge block); cached segments are unmapped from it, so a stale free into
 *    one is reported as a bad free;
 *  - a huge segment has no owner (thread_id 0): any thread frees it.
 * Global state: the cache, an array of atomic slots (lock-free), and the
 * abandoned list, a FIFO under a spin lock taken only at thread exit and
 * when a heap runs out of pages (see "abandon and reclaim"). */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include "internal/internal.h"

/* Freed 4 MiB segments (small, medium, or a huge block that fit in one),
 * each purged after KEEL_PURGE_DELAY. Bigger huge mappings go to the pool
 * (pool.c) instead. */
static _Atomic(kl_segment_t *) cache[KL_SEGMENT_CACHE];
enum { PURGER_NONE, PURGER_WANTED, PURGER_RUNNING };
static _Atomic(int) purger;

/* ---- OS and cache ------------------------------------------------------ */

/* Give the pages of cached segments that sat unused for KEEL_PURGE_DELAY
 * back to the OS. Runs on every cache operation (segment-sized events, so
 * the clock read is noise); a segment stays mapped, so reuse costs only the
 * page faults. A slot is taken out while it is purged so no taker sees it
 * half done. */
static size_t purgeable(const kl_segment_t *s) { return s->mapped_size - kl_os.page_size; }

/* Give back a cached segment's pages: the written ones (dirty_end) are all
 * that can be resident. It counts as purgeable(s) bytes all the same, since
 * what was never written was not resident either. */
static void purge_written(kl_segment_t *s) {
  if (s->dirty_end > s->mapped_size) s->dirty_end = s->mapped_size;
  if (s->dirty_end > kl_os.page_size) kl_prim_purge((uint8_t *)s + kl_os.page_size, s->dirty_end - kl_os.page_size);
  s->dirty_end = kl_os.page_size;   /* the header's page stays */
}

/* Passes over the cache take a segment out of its slot to look at it, so
 * they are serialized: a pass that finds another running skips (purging is
 * opportunistic), but malloc_trim's purge-all waits for it, or a segment the
 * other pass held out of its slot would stay resident past malloc_trim (the
 * heaps test saw 4 MiB still committed 1 run in 3). The lock is held across
 * madvise calls; the passes on allocation paths (segment_take, _give) only
 * try it, so no allocation ever waits on it. A forked child, where no other
 * thread runs, starts with it free (segment_atfork_child). */
static _Atomic(int) purge_lock;

/* A pass gives back the cached segments whose delay ran out, or with
 * `early` all of them; `all` (malloc_trim) also waits for another pass and
 * empties the huge-block pool. */
static void cache_purge(bool all, bool early) {
  if (all) kl_lock(&purge_lock);
  else if (atomic_exchange_explicit(&purge_lock, 1, memory_order_acquire) != 0) return;
  uint64_t now = all || early ? UINT64_MAX : kl_prim_clock_ms();
  for (int i = 0; i < KL_SEGMENT_CACHE; i++) {
    kl_segment_t *s = kl_load_relaxed(&cache[i]);
    if (s == NULL) continue;
    /* Acquire: we read the header fields the giver wrote (purge_at). */
    s = kl_exchange_acquire(&cache[i], NULL);
    if (s == NULL) continue;
    if (!s->is_purged && s->purge_at <= now) {
      purge_written(s);
      s->is_purged = true;
      kl_stats_purged((ptrdiff_t)purgeable(s));
    }
    kl_segment_t *expect = NULL;
    if (!atomic_compare_exchange_strong_explicit(&cache[i], &expect, s,
            memory_order_release, memory_order_relaxed)) {
      if (s->is_purged) kl_stats_purged(-(ptrdiff_t)purgeable(s));
      kl_stats_mapped(-(ptrdiff_t)s->mapped_size);
      kl_prim_free(s, s->mapped_size);          /* slot refilled meanwhile */
    }
  }
  kl_unlock(&purge_lock);
  if (!early || all) kl_pool_purge(all);
}
static void cache_purge_expired(bool all) { cache_purge(all, false); }

void kl_segment_cache_purge(void) { cache_purge_expired(true); }

/* The OS refused memory: unmap every cached segment (address space, not
 * just pages, is what runs out under `ulimit -v`), so a retry can succeed.
 * Returns whether anything was released. */
__attribute__((unused)) static bool cache_release(void) {
  bool any = kl_pool_purge(true);
  for (int i = 0; i < KL_SEGMENT_CACHE; i++) {
    kl_segment_t *s = kl_exchange_acquire(&cache[i], NULL);
    if (s == NULL) continue;
    if (s->is_purged) kl_stats_purged(-(ptrdiff_t)purgeable(s));
    kl_stats_mapped(-(ptrdiff_t)s->mapped_size);
    kl_prim_free(s, s->mapped_size);
    any = true;
  }
  return any;
}

/* Map from the OS; on failure give the cache back and try once more. */
__attribute__((unused)) static void *os_alloc_aligned(size_t size, size_t align, size_t offset) {
  void *p = kl_prim_alloc_aligned(size, align, offset);
  if (p == NULL && cache_release()) p = kl_prim_alloc_aligned(size, align, offset);
  if (p == NULL && kl_option(KL_OPT_VERBOSE))
    kl_message("keel: the OS refused %zu bytes of address space (malloc returns NULL)\n", size);
  return p;
}

/* ---- the heaps' segment lock (kl_heap_s.seg_lock) ---------------------
 * The owner takes it around every change to its segment list and to the
 * state of free pages (allocation, freeing and purging of pages, adoption,
 * abandonment), reentrantly: those nest. Uncontended but for the purger's
 * brief looks, and never on a fast path. Acquire/release: the purger sees
 * the owner's changes, and the owner the purger's. */
void kl_segment_lock(kl_heap_t *heap) {
  if (heap->seg_depth++ != 0) return;
  kl_lock(&heap->seg_lock);
  kl_store_relaxed(&heap->seg_busy, 1);   /* relaxed: read under the lock */
}
void kl_segment_unlock(kl_heap_t *heap) {
  if (--heap->seg_depth == 0) kl_unlock(&heap->seg_lock);
}

static void purge_locked(kl_heap_t *heap, bool force);

/* A thread that freed its blocks and went quiet (a server worker between
 * requests, a program that freed everything and sleeps) keeps its free
 * pages dirty: they are purged on its own slow paths, after the delay and
 * beyond KL_PURGE_KEEP, and it makes none. The purger gives them back
 * instead: a live default heap whose owner took its segment lock neither
 * since the purger's last look nor during it has all its free pages
 * purged. Free pages only: nothing the owner touches without the lock.
 * tests/core/idle.c: a thread that frees 200 MB of blocks and waits falls
 * from 148 MB resident to within 2 MB of its start in 40 ms (it kept
 * 39 MB before this pass). */
static void heaps_purge_idle(void) {
  for (kl_heap_t *h = kl_stats_heaps(); h != NULL; h = h->all_next) {
    int free_lock = 0;
    if (kl_load_relaxed(&h->seg_lock) != 0 ||
        !atomic_compare_exchange_strong_explicit(&h->seg_lock, &free_lock, 2, memory_order_acquire, memory_order_relaxed)) continue;
    bool idle = atomic_exchange_explicit(&h->seg_busy, 0, memory_order_relaxed) == 0;
    if (h->seg_live && idle && h->purge_next != 0) purge_locked(h, true);
    kl_unlock(&h->seg_lock);
  }
}

/* The purger: a helper thread that gives idle cached segments back to the
 * OS when the program itself stops calling keel (everything freed, then
 * sleeping), and the free pages of heaps gone quiet (heaps_purge_idle).
 * The cache's slots are atomic; a heap's pages it looks at under the
 * heap's seg_lock. Started once the process holds two segments (small
 * programs never get one), unless KEEL_PURGE_THREAD=0 or
 * KEEL_PURGE_DELAY=0 (then purging is immediate anyway). */
static void *purger_main(void *arg) {
  (void)arg;
  for (;;) {
    long delay = kl_option(KL_OPT_PURGE_DELAY);
    kl_prim_sleep_ms((unsigned)(delay < 10 ? 10 : delay));
    cache_purge_expired(false);
    heaps_purge_idle();
  }
  return NULL;
}

static void purger_after_fork(void) {   /* the thread did not survive fork */
  if (kl_load_relaxed(&purger) == PURGER_RUNNING) kl_store_relaxed(&purger, PURGER_WANTED);
}

/* A process that has mapped a second segment's worth is worth a purger
 * thread (kl_segment_purger_poll starts it from a safe point). Relaxed: a hint. */
static void want_purger(void) {
  if (kl_load_relaxed(&kl_os_stats.mapped) >= 2 * KL_SEGMENT_SIZE && kl_load_relaxed(&purger) == PURGER_NONE)
    kl_store_relaxed(&purger, PURGER_WANTED);
}

void kl_segment_purger_poll(void) {
  if (kl_load_relaxed(&purger) != PURGER_WANTED) return;
  int want = PURGER_WANTED;
  if (!atomic_compare_exchange_strong_explicit(&purger, &want, PURGER_RUNNING, memory_order_relaxed, memory_order_relaxed)) return;
  if (!kl_option(KL_OPT_PURGE_THREAD) || kl_option(KL_OPT_PURGE_DELAY) == 0) return;   /* stays RUNNING: never again */
  static _Atomic(int) atfork_done;
  if (!atomic_exchange_explicit(&atfork_done, 1, memory_order_relaxed)) kl_prim_atfork_child(purger_after_fork);
  if (!kl_prim_thread_start(purger_main, NULL) && kl_option(KL_OPT_VERBOSE))
    kl_message("keel: could not start the purger thread\n");
}

#if KL_SECURE
/* Secure build: no cache (a segment's guard pages depend on its kind) and
 * a random address for every segment, so heap addresses are not guessable. */
static kl_segment_t *segment_take(size_t *dirty, bool *pooled) {
  if (pooled) *pooled = false;
  uint64_t r = kl_prim_random();
  void *hint = (void *)(uintptr_t)(((r % ((uint64_t)1 << 23)) + ((uint64_t)1 << 20)) << KL_SEGMENT_SHIFT);
  kl_segment_t *s = kl_prim_alloc_aligned_hint(KL_SEGMENT_SIZE, KL_SEGMENT_SIZE, hint);
  if (s == NULL) return NULL;
  kl_stats_mapped((ptrdiff_t)KL_SEGMENT_SIZE);
  *dirty = 0;
  return s;
}
static void segment_give(kl_segment_t *seg, size_t mapped) {
  kl_prim_free(seg, mapped);
  kl_stats_mapped(-(ptrdiff_t)mapped);
}
#define KL_GUARD kl_os.page_size
#else
#define KL_GUARD ((size_t)0)
/* A segment from the cache, else (if `pooled` is given, for a huge block)
 * from the pool's freed huge mappings (*pooled set), else a fresh one from
 * the OS. Small and medium segments skip the pool: its pages are resident,
 * and pages a heap has not used yet should not be. *dirty: how many bytes
 * from its start may hold old contents (0: fresh, all zero). */
static kl_segment_t *segment_take(size_t *dirty, bool *pooled) {
  if (pooled) *pooled = false;
  cache_purge_expired(false);
  for (int i = 0; i < KL_SEGMENT_CACHE; i++) {
    if (kl_load_relaxed(&cache[i]) == NULL) continue;
    /* Acquire pairs with the release in segment_give: we see the header the
     * last owner wrote, which we are about to reset anyway. */
    kl_segment_t *s = kl_exchange_acquire(&cache[i], NULL);
    if (s != NULL) {
      if (s->is_purged) kl_stats_purged(-(ptrdiff_t)purgeable(s));
      *dirty = s->dirty_end;
      return s;
    }
  }
  kl_segment_t *s = pooled ? kl_pool_take(KL_SEGMENT_SIZE, dirty) : NULL;
  if (s != NULL) { *pooled = true; return s; }
  s = os_alloc_aligned(KL_SEGMENT_SIZE, KL_SEGMENT_SIZE, 0);
  if (s == NULL) return NULL;
  kl_stats_mapped((ptrdiff_t)KL_SEGMENT_SIZE);
  if (kl_option(KL_OPT_HUGE_PAGES)) kl_prim_hugepage(s, KL_SEGMENT_SIZE);
  want_purger();
  *dirty = 0;
  return s;
}

/* A 4 MiB segment goes to the cache (purged after the delay) or, when the
 * cache is full, to the pool, where a bigger huge mapping goes at once. */
static void segment_give(kl_segment_t *seg, size_t mapped) {
  if (mapped != KL_SEGMENT_SIZE) { kl_pool_give(seg, mapped); return; }
  seg->mapped_size = mapped;
  long delay = kl_option(KL_OPT_PURGE_DELAY);
  seg->is_purged = delay == 0;
  if (seg->is_purged) {
    purge_written(seg);
    kl_stats_purged((ptrdiff_t)purgeable(seg));
  }
  else { seg->purge_at = kl_prim_clock_ms() + (uint64_t)delay; cache_purge_expired(false); }
  for (int i = 0; i < KL_SEGMENT_CACHE; i++) {
    kl_segment_t *expect = NULL;
    if (kl_load_relaxed(&cache[i]) == NULL &&
        atomic_compare_exchange_strong_explicit(&cache[i], &expect, seg,
            memory_order_release, memory_order_relaxed)) return;
  }
  /* Cache full: the pool takes it (as a run it serves huge blocks, and 4 MiB
   * of it the next segment_take that finds the cache empty). */
  if (seg->is_purged) kl_stats_purged(-(ptrdiff_t)purgeable(seg));
  kl_pool_give(seg, mapped);
}
#endif

/* ---- small and medium segments ----------------------------------------- */

static void free_list_add(kl_heap_t *heap, kl_segment_t *seg) {
  kl_segment_t **head = &heap->free_segs[seg->kind];
  seg->fprev = NULL; seg->fnext = *head;
  if (*head) (*head)->fprev = seg;
  *head = seg; seg->in_free_list = true;
}
static void free_list_remove(kl_heap_t *heap, kl_segment_t *seg) {
  if (!seg->in_free_list) return;
  if (seg->fprev) seg->fprev->fnext = seg->fnext; else heap->free_segs[seg->kind] = seg->fnext;
  if (seg->fnext) seg->fnext->fprev = seg->fprev;
  seg->fnext = seg->fprev = NULL; seg->in_free_list = false;
}
static void owned_add(kl_heap_t *heap, kl_segment_t *seg) {
  seg->heap = heap; seg->prev = NULL; seg->next = heap->segments;
  if (heap->segments) heap->segments->prev = seg;
  heap->segments = seg;
}
static void owned_remove(kl_heap_t *heap, kl_segment_t *seg) {
  if (seg->prev) seg->prev->next = seg->next; else heap->segments = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  seg->next = seg->prev = NULL;
}

static void page_map_init(kl_segment_t *seg) {
  unsigned per = seg->kind == KL_SEG_HUGE ? KL_MAX_PAGES : 1u << (seg->page_shift - KL_SMALL_PAGE_SHIFT);
  for (unsigned i = 0; i < KL_MAX_PAGES; i++) seg->page_map[i] = &seg->pages[i / per];
}

static kl_segment_t *segment_new(kl_heap_t *heap, kl_segkind_t kind) {
  size_t dirty;
  kl_segment_t *seg = segment_take(&dirty, NULL);
  if (seg == NULL) return NULL;
  bool is_zero = dirty == 0;
  if (!is_zero) memset(seg, 0, sizeof(*seg));
  seg->dirty_end = KL_SEGMENT_SIZE;   /* pages anywhere may be written */
  seg->kind = kind;
  seg->page_shift = kind == KL_SEG_SMALL ? KL_SMALL_PAGE_SHIFT : KL_MEDIUM_PAGE_SHIFT;
  seg->page_count = (uint32_t)(KL_SEGMENT_SIZE >> seg->page_shift);
  seg->mapped_size = KL_SEGMENT_SIZE;
  seg->is_zero = is_zero;
  for (uint32_t i = 0; i < seg->page_count; i++) seg->pages[i].index = (uint8_t)i;
  page_map_init(seg);
#if KL_SECURE
  /* Guard pages: one between the header and the first blocks, one at the
   * end of every page, so a linear overflow faults instead of spilling. */
  kl_prim_protect((uint8_t *)seg + KL_SEGMENT_HEADER, KL_GUARD);
  for (uint32_t i = 0; i < seg->page_count; i++)
    kl_prim_protect((uint8_t *)seg + ((size_t)(i + 1) << seg->page_shift) - KL_GUARD, KL_GUARD);
#endif
  /* Relaxed: only this thread compares against its own id (see types.h). */
  kl_store_relaxed(&seg->thread_id, heap->thread_id);
  owned_add(heap, seg);
  free_list_add(heap, seg);
  kl_segmap_set(seg, 0);
  return seg;
}

/* The bytes of a free page's holes (holes.c), counted as given back. */
static size_t holes_bytes(const kl_page_t *page) { return (size_t)__builtin_popcount(page->holes) << 12; }

static void segment_free(kl_heap_t *heap, kl_segment_t *seg) {
  if (heap->seg_cache == seg) kl_heap_set_seg_cache(heap, KL_SEG_NONE);   /* see kl_heap_s */
  for (uint32_t i = 0; i < seg->page_count; i++) {   /* the segment is accounted whole again */
    if (seg->pages[i].holes != 0) { kl_stats_purged(-(ptrdiff_t)holes_bytes(&seg->pages[i])); seg->pages[i].holes = 0; }
    if (!seg->pages[i].is_purged) continue;
    size_t size;
    kl_page_area(seg, &seg->pages[i], &size);
    kl_stats_purged(-(ptrdiff_t)size);
  }
  free_list_remove(heap, seg);
  owned_remove(heap, seg);
  kl_segmap_clear(seg, 0);
  segment_give(seg, seg->mapped_size);
}

/* The first segment on the heap's free list with a free page that holds
 * blocks of block_size: the first page, which the header shortens, does
 * not hold the large class's. With dirty_only, the first with a dirty free
 * page, wherever it is on the list: a new segment goes to the front, and
 * the dirty pages behind it sat out their delay, were purged, and faulted
 * in again when taken clean (sqlite3 bench workload: 189 -> 177 pages
 * purged). A short walk: one step per segment with a free page, on the
 * page slow path. */
static kl_segment_t *free_seg_for(kl_heap_t *heap, kl_segkind_t kind, bool skip_first, bool dirty_only) {
  kl_segment_t *seg = heap->free_segs[kind];
  while (seg != NULL && ((skip_first && seg->used_pages == seg->page_count - 1 && !seg->pages[0].in_use) ||
                         (dirty_only && seg->dirty_pages == 0)))
    seg = seg->fnext;
  return seg;
}

/* A free page of a segment of the heap, for blocks of block_size; with
 * dirty_only, only a page still written (freed, not yet purged: no page
 * faults), else NULL. */
static kl_page_t *page_alloc_locked(kl_heap_t *heap, kl_segkind_t kind, size_t block_size, bool dirty_only);
kl_page_t *kl_segment_page_alloc(kl_heap_t *heap, kl_segkind_t kind, size_t block_size, bool dirty_only) {
  kl_segment_lock(heap);
  kl_page_t *page = page_alloc_locked(heap, kind, block_size, dirty_only);
  kl_segment_unlock(heap);
  return page;
}
static kl_page_t *page_alloc_locked(kl_heap_t *heap, kl_segkind_t kind, size_t block_size, bool dirty_only) {
  bool skip_first = block_size > kl_page_area_size(kind == KL_SEG_SMALL ? KL_SMALL_PAGE_SHIFT : KL_MEDIUM_PAGE_SHIFT, 0);
  kl_segment_t *seg = free_seg_for(heap, kind, skip_first, dirty_only);
  if (seg == NULL) {
    if (dirty_only) return NULL;
    if (!heap->is_user) kl_segment_reclaim(heap);   /* see page_find */
    seg = free_seg_for(heap, kind, skip_first, false);
    if (seg == NULL) seg = segment_new(heap, kind);
    if (seg == NULL) return NULL;
  }
  /* A dirty free page if the segment has one (no faults), else any: the
   * first free one, without a scan of all 64 descriptors (8 KiB) when the
   * segment has no dirty page (bench memeff maps 200 MB of pages: 4.4M
   * instructions here, two scans per page). */
  kl_page_t *page = NULL;
  for (uint32_t i = skip_first; i < seg->page_count; i++) {
    if (seg->pages[i].in_use) continue;
    if (page == NULL || (page->purge_at == 0 && seg->pages[i].purge_at != 0)) page = &seg->pages[i];
    if (page->purge_at != 0 || seg->dirty_pages == 0) break;
  }
  kl_assert(page != NULL);
  if (dirty_only && page->purge_at == 0) return NULL;
  page->in_use = 1;
  if (page->purge_at != 0) seg->dirty_pages--;
  page->purge_at = 0;          /* reused dirty: no purge needed */
  if (page->holes != 0) { kl_stats_purged(-(ptrdiff_t)holes_bytes(page)); page->holes = 0; }
  if (page->is_purged) {
    size_t size;
    kl_page_area(seg, page, &size);
    kl_stats_purged(-(ptrdiff_t)size);
    page->is_purged = false;
  }
  if (++seg->used_pages == seg->page_count) free_list_remove(heap, seg);
  return page;
}

/* Ranges given back together: one system call per KL_PURGE_BATCH
 * (kl_prim_purge_ranges), a range that continues the last one merged into
 * it. `counted` is what the range adds to the purged statistic. */
void kl_purge_batch_add(kl_purge_batch_t *b, void *addr, size_t size, size_t counted) {
  b->bytes += counted;
  if (b->n != 0 && (uint8_t *)b->r[b->n - 1].addr + b->r[b->n - 1].size == addr) { b->r[b->n - 1].size += size; return; }
  if (b->n == KL_PURGE_BATCH) kl_purge_batch_flush(b);
  b->r[b->n++] = (kl_prim_range_t){ addr, size };
}
void kl_purge_batch_flush(kl_purge_batch_t *b) {
  if (b->n == 0) return;
  kl_prim_purge_ranges(b->r, b->n);
  kl_stats_purged((ptrdiff_t)b->bytes);
  b->n = b->bytes = 0;
}

/* Give a free page back, now (b NULL) or with the batch b. */
static void page_purge(kl_segment_t *seg, kl_page_t *page, kl_purge_batch_t *b) {
  size_t size;
  uint8_t *area = kl_page_area(seg, page, &size);
  size_t counted = size - holes_bytes(page);   /* the holes were counted when they were made */
  if (page->purge_at != 0) seg->dirty_pages--;
  page->purge_at = 0;
  page->is_purged = true;
  page->holes = 0;
  if (b == NULL) { kl_prim_purge(area, size); kl_stats_purged((ptrdiff_t)counted); return; }
  kl_purge_batch_add(b, area, size, counted);
}

/* A page's last block is back. Its memory is dirty: give it to the OS after
 * KEEL_PURGE_DELAY unless it is reused first (reuse of a dirty page is
 * cheaper than a fault per 4 KiB). kl_segment_purge does the giving. */
static bool page_free_locked(kl_page_t *page);
bool kl_segment_page_free(kl_page_t *page) {
  /* An abandoned segment (heap NULL) is on no heap's list: no lock. */
  kl_heap_t *heap = ((kl_segment_t *)kl_align_down((uintptr_t)page, KL_SEGMENT_SIZE))->heap;
  if (heap == NULL) return page_free_locked(page);
  kl_segment_lock(heap);
  bool seg_freed = page_free_locked(page);
  kl_segment_unlock(heap);
  return seg_freed;
}
static bool page_free_locked(kl_page_t *page) {
  kl_segment_t *seg = (kl_segment_t *)kl_align_down((uintptr_t)page, KL_SEGMENT_SIZE);
  kl_heap_t *heap = seg->heap;
  uint8_t index = page->index;
  atomic_fetch_sub_explicit(&kl_os_stats.pages[page->class_idx], 1, memory_order_relaxed);
  /* A page's holes (holes.c) stay marked while it is free: they count as
   * given back until the page is purged whole or reused. */
  uint16_t holes = page->holes;
  memset(page, 0, sizeof(*page));
  page->index = index;
  page->holes = holes;
  seg->is_zero = false;
  if (--seg->used_pages == 0) { segment_free(heap, seg); return true; }
  if (!seg->in_free_list) free_list_add(heap, seg);
  long delay = kl_option(KL_OPT_PURGE_DELAY);
  if (delay == 0) { page_purge(seg, page, NULL); return false; }
  page->purge_at = kl_prim_clock_ms() + (uint64_t)delay;
  seg->dirty_pages++;
  if (heap != NULL && (heap->purge_next == 0 || page->purge_at < heap->purge_next)) heap->purge_next = page->purge_at;
  return false;
}

/* Give back the free pages of the heap's segments whose delay ran out (all
 * of them if `force`), except that up to KL_PURGE_KEEP bytes of them stay
 * dirty: a program whose pages come and go (a size class emptying and
 * filling again, strings growing through the classes) would otherwise pay
 * an madvise and a page fault per 4 KiB on every round trip (the realloc
 * workload made 218 madvise calls and 2.6 times mimalloc's faults), while a
 * few pages are noise next to a baseline. Called from the slow path of page
 * allocation, at thread exit and by malloc_trim (both `force`); cheap when
 * nothing is due. */
void kl_segment_purge(kl_heap_t *heap, bool force) {
  kl_segment_lock(heap);   /* purge_next too: the purger writes it */
  purge_locked(heap, force);
  kl_segment_unlock(heap);
}
static void purge_locked(kl_heap_t *heap, bool force) {
  if (heap->purge_next == 0) return;
  uint64_t now = kl_prim_clock_ms();
  if (!force && now < heap->purge_next) return;
  size_t dirty = 0;
  if (!force) {
    for (kl_segment_t *seg = heap->segments; seg != NULL; seg = seg->next) {
      if (seg->in_free_list) dirty += (size_t)seg->dirty_pages << seg->page_shift;
    }
  }
  uint64_t next = 0;
  kl_purge_batch_t batch;
  batch.n = batch.bytes = 0;
  for (kl_segment_t *seg = heap->segments; seg != NULL && (force || dirty > KL_PURGE_KEEP); seg = seg->next) {
    if (!seg->in_free_list) continue;           /* no free page at all */
    for (uint32_t i = 0; i < seg->page_count; i++) {
      kl_page_t *page = &seg->pages[i];
      if (page->in_use || page->purge_at == 0) continue;
      if (force || (page->purge_at <= now && dirty > KL_PURGE_KEEP)) {
        page_purge(seg, page, &batch);
        heap->counters.pages_purged++;
        dirty -= force ? 0 : (size_t)1 << seg->page_shift;
      }
      else if (next == 0 || page->purge_at < next) next = page->purge_at;
    }
  }
  kl_purge_batch_flush(&batch);
  /* 0 when what is left fits the allowance: the next page freed re-arms it. */
  heap->purge_next = !force && dirty <= KL_PURGE_KEEP ? 0 : next;
}

/* ---- huge blocks -------------------------------------------------------- */

/* Are a program's huge blocks written whole? Each freed huge block of
 * 256 KiB or more votes (huge_dense_vote): its last 16 OS pages all
 * resident says yes (+1, up to 4), else no (-2, down to -4). From a score
 * of 2, a huge block's fresh pages, but for those last 16, are faulted in
 * by one call when it is handed out (huge_populate; kl_prim_populate: 1.03
 * us a page here against 1.40 us touched, bench/faultcost.c): a program that
 * writes its big buffers whole pays less for its faults (bench large/1t:
 * user+sys 0.088 -> 0.077 s, tcmalloc 0.081), and one that leaves them
 * sparse keeps them sparse after at most two blocks. The last 16 pages
 * are left to the program, so that the vote sees its writes, not ours.
 * Not for calloc, whose fresh pages need no write: a sparse table is the
 * common case there. Relaxed: a heuristic. */
static _Atomic(int) huge_dense;
#define HUGE_SAMPLE ((size_t)16)

static void huge_dense_vote(kl_segment_t *seg) {
  if (KL_SECURE || KL_DEBUG || kl_os.page_size != 4096) return;   /* the debug build fills blocks whole */
  kl_page_t *page = &seg->pages[0];
  size_t span = HUGE_SAMPLE * kl_os.page_size;
  if (page->block_size < 4 * span) return;
  uint8_t vec[HUGE_SAMPLE];
  uint8_t *at = (uint8_t *)kl_align_down((uintptr_t)page->start + page->block_size - span, kl_os.page_size);
  bool dense = kl_prim_resident(at, span, vec);
  for (size_t i = 0; dense && i < HUGE_SAMPLE; i++) dense = vec[i] != 0;
  int v = atomic_load_explicit(&huge_dense, memory_order_relaxed);
  v = dense ? (v < 4 ? v + 1 : 4) : (v > -2 ? v - 2 : -4);
  atomic_store_explicit(&huge_dense, v, memory_order_relaxed);
}

/* [from, block end - the sampled pages): faulted in, if blocks are dense. */
static void huge_populate(uintptr_t from, uint8_t *block, size_t size) {
  if (KL_SECURE || KL_DEBUG || atomic_load_explicit(&huge_dense, memory_order_relaxed) < 2 || kl_option(KL_OPT_HUGE_PAGES) != 0 ||
      kl_option(KL_OPT_POPULATE) == 0) return;
  size_t span = HUGE_SAMPLE * kl_os.page_size;
  if (size < 4 * span) return;
  uintptr_t lo = kl_align_up(from, kl_os.page_size);
  uintptr_t hi = kl_align_down((uintptr_t)block + size - span, kl_os.page_size);
  if (hi > lo) kl_prim_populate((void *)lo, hi - lo);
}

static void huge_set_block(kl_segment_t *seg, size_t block);

void *kl_segment_huge_alloc(size_t size, size_t align, bool zero) {
  if (size > KL_MAX_ALLOC || align > KL_MAX_ALLOC / 2) { errno = ENOMEM; return NULL; }
  /* The block sits after the header, on its alignment; a block aligned to
   * 4 MiB or more sits exactly one unit in, marked 2 in the segment map. */
  size_t off = align >= KL_SEGMENT_SIZE ? KL_SEGMENT_SIZE : kl_align_up(KL_SEGMENT_HEADER + KL_GUARD, align);
  size_t total = kl_align_up(off + (size ? size : 1), kl_os.page_size) + KL_GUARD;
  kl_segment_t *seg = NULL;
  size_t dirty = 0;                    /* [seg, seg + dirty) may hold old contents; the rest is zero */
  bool pooled = false;                 /* from pool.c, rather than the segment cache or the OS */
  if (total <= KL_SEGMENT_SIZE) {
    seg = segment_take(&dirty, &pooled);
    total = KL_SEGMENT_SIZE;
  } else {
    /* Whole segments, so that a freed mapping can be carved into new
     * blocks in place (each starts on a segment boundary); the tail past
     * the block is never touched, so it costs address space, not memory. */
    if (!KL_SECURE) total = kl_align_up(total, KL_SEGMENT_SIZE);
    if (off < KL_SEGMENT_SIZE) pooled = (seg = kl_pool_take(total, &dirty)) != NULL;
    if (seg == NULL) {
      size_t seg_align = align > KL_SEGMENT_SIZE ? align : KL_SEGMENT_SIZE;
#if KL_SECURE
      seg = kl_prim_alloc_aligned(total, seg_align, align > KL_SEGMENT_SIZE ? KL_SEGMENT_SIZE : 0);
#else
      seg = os_alloc_aligned(total, seg_align, align > KL_SEGMENT_SIZE ? KL_SEGMENT_SIZE : 0);
#endif
      if (seg) kl_stats_mapped((ptrdiff_t)total);
    }
    /* Fresh memory (all of it, or a pooled run's growth): the footprint
     * grows now, so the segments waiting out their delay in the cache
     * (freed blocks of up to 4 MiB, mostly) go back first rather than
     * stack on it. bench large/1t, 7 alternating rounds: peak RSS 141.2
     * -> 139.2 MB (mimalloc 140.3), time unchanged. */
    if (seg != NULL && dirty < total) cache_purge(false, true);
    want_purger();   /* the pool's idle runs need it */
  }
  if (seg == NULL) { errno = ENOMEM; return NULL; }
  /* Reused pages past the block's end would sit resident unused while it
   * lives: give them back now, but leave a block from the segment cache
   * room to double by realloc without faults (python's JSON buffers grow
   * so). Measured on bench large/1t: peak RSS 155 -> 142 MB, for 46,000 ->
   * 51,000 page faults. */
  size_t block_end = kl_align_up(off + (size ? size : 1), kl_os.page_size) + KL_GUARD;
  size_t extent = pooled ? block_end : 2 * block_end;
  if (dirty > extent + KL_PURGE_MIN_TAIL) {
    kl_prim_purge((uint8_t *)seg + extent, dirty - extent);
    dirty = extent;
  }
  /* A huge segment uses only the header fields and pages[0]: clear just those. */
  if (dirty != 0) memset(seg, 0, offsetof(kl_segment_t, pages) + sizeof(kl_page_t));
  seg->kind = KL_SEG_HUGE;
  seg->page_shift = KL_HUGE_PAGE_SHIFT;
  seg->page_count = 1;
  page_map_init(seg);
  seg->used_pages = 1;
  seg->mapped_size = total;
  seg->block_offset = off;
  seg->dirty_end = dirty;   /* huge_set_block extends it over the block */
  kl_store_relaxed(&seg->huge_heap, NULL);
  kl_store_relaxed(&seg->huge_state, 2);     /* plain until a heap attaches it */
  kl_page_t *page = &seg->pages[0];
  page->in_use = 1;
  page->start = (uint8_t *)seg + off;
  page->start_off = off;
  page->block_size = 0;
  huge_set_block(seg, block_end - KL_GUARD - off);   /* never 0: it divides */
#if KL_SECURE
  kl_prim_protect((uint8_t *)seg + KL_SEGMENT_HEADER, KL_GUARD);   /* off leaves room for it */
  kl_prim_protect(page->start + page->block_size, KL_GUARD);       /* right after the block */
#endif
  page->capacity = page->reserved = page->used = 1;
  kl_segmap_set(seg, off >= KL_SEGMENT_SIZE);
  atomic_fetch_add_explicit(&kl_os_stats.huge_live, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&kl_os_stats.huge_allocs, 1, memory_order_relaxed);
  size_t old = dirty > off ? dirty - off : 0;   /* bytes of the block with old contents */
#if KL_DEBUG
  memset(page->start, 0, old < page->block_size ? old : page->block_size);   /* old fill patterns (see debug.c) */
#endif
  if (zero) memset(page->start, 0, old < size ? old : size);
  else huge_populate((uintptr_t)seg + (dirty > off ? dirty : off), page->start, size);   /* the fresh part */
  ((kl_block_t *)page->start)->freed = 0;   /* a reused mapping may hold an old mark */
  return page->start;
}

void kl_segment_huge_free(kl_segment_t *seg) {
  huge_dense_vote(seg);
  kl_segmap_clear(seg, seg->block_offset >= KL_SEGMENT_SIZE);
  atomic_fetch_sub_explicit(&kl_os_stats.huge_live, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&kl_os_stats.huge_frees, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&kl_os_stats.huge_bytes_live, seg->pages[0].block_size, memory_order_relaxed);
  atomic_fetch_add_explicit(&kl_os_stats.huge_bytes_freed, seg->pages[0].block_size, memory_order_relaxed);
  segment_give(seg, seg->mapped_size);
}

/* The usable size of a huge block: what it asked for, rounded to OS pages.
 * A block in a 4 MiB cache-sized segment leaves the rest untouched. */
static void huge_set_block(kl_segment_t *seg, size_t block) {
  kl_page_t *page = &seg->pages[0];
  ptrdiff_t grew = (ptrdiff_t)block - (ptrdiff_t)page->block_size;
  /* Relaxed: statistics. */
  atomic_fetch_add_explicit(&kl_os_stats.huge_bytes_live, (size_t)grew, memory_order_relaxed);
  if (grew > 0) atomic_fetch_add_explicit(&kl_os_stats.huge_bytes_total, (size_t)grew, memory_order_relaxed);
  else atomic_fetch_add_explicit(&kl_os_stats.huge_bytes_freed, (size_t)-grew, memory_order_relaxed);
  page->block_size = block;
  size_t end = seg->block_offset + block + KL_GUARD;   /* the program may write it all */
  if (end > seg->dirty_end) seg->dirty_end = end;
  page->div_magic = 1;     /* with block_limit 1: only the block's start (kl_page_has_block) */
  __atomic_store_n(&page->block_limit, 1, __ATOMIC_RELAXED);
}

/* Resize a huge block without copying: within its mapping, by growing or
 * shrinking the mapping in place, or by moving it with mremap to a fresh
 * reservation. Mappings stay whole segments (see kl_segment_huge_alloc).
 * NULL when none works (the caller copies). */
void *kl_segment_huge_realloc(kl_segment_t *seg, size_t size) {
  size_t off = seg->block_offset, old = seg->mapped_size, mapped = old;
  if (size > KL_MAX_ALLOC || KL_SECURE) return NULL;   /* secure: guard pages stay put; copy */
  size_t need = kl_align_up(off + size, kl_os.page_size);
  size_t whole = kl_align_up(need, KL_SEGMENT_SIZE);
  if (need <= old) {
    /* A big tail goes to the pool (no system call), but never below 4 MiB:
     * a cache-sized segment can go back to the cache when freed. */
    if (need < old / 2 && whole < old) {
      kl_pool_give((uint8_t *)seg + whole, old - whole);   /* still counted as mapped, by the pool */
      seg->mapped_size = old = mapped = whole;
      if (seg->dirty_end > whole) seg->dirty_end = whole;
    }
  } else if (kl_pool_take_at((uint8_t *)seg + old, whole - old)) {
    /* Pooled pages right after the block: resident, and counted as mapped
     * already (old moves with mapped: no statistic changes). They may
     * hold old contents. */
    old = mapped = whole;
    seg->dirty_end = whole;
  } else if (kl_prim_resize_in_place(seg, old, whole)) {
    mapped = whole;
  } else {
    /* A heap's huge block is linked by address: copy instead of moving. */
    if (off >= KL_SEGMENT_SIZE || !kl_os.has_remap || kl_load_relaxed(&seg->huge_heap) != NULL) return NULL;
    /* Grow geometrically when moving, so a realloc loop moves O(log n) times. */
    size_t want = kl_align_up(need + need / 4, KL_SEGMENT_SIZE);
    void *target = kl_prim_alloc_aligned(want, KL_SEGMENT_SIZE, 0);
    if (target == NULL) return NULL;
    /* Out of the segment map first: once moved, the old range may be
     * mapped by anyone, and a free into it must not find a header there. */
    kl_segmap_clear(seg, 0);
    if (!kl_prim_move(seg, old, target, want)) {
      kl_segmap_set(seg, 0);
      kl_prim_free(target, want);
      return NULL;
    }
    seg = target;
    kl_segmap_set(seg, 0);
    page_map_init(seg);   /* it holds addresses inside the header, which moved */
    seg->pages[0].start = (uint8_t *)seg + off;
    mapped = want;
  }
  if (mapped != old) kl_stats_mapped((ptrdiff_t)mapped - (ptrdiff_t)old);
  seg->mapped_size = mapped;
  huge_set_block(seg, need - off);
  return seg->pages[0].start;
}

/* ---- huge blocks of first-class heaps ------------------------------------ */

static void huge_unlink(kl_heap_t *heap, kl_segment_t *seg) {
  if (seg->prev) seg->prev->next = seg->next; else heap->huge = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  seg->next = seg->prev = NULL;
  kl_store_relaxed(&seg->huge_heap, NULL);
}

void kl_segment_huge_attach(kl_heap_t *heap, void *block) {
  kl_segment_t *seg = kl_segmap_lookup(block);
  kl_store_relaxed(&seg->huge_heap, heap);
  kl_store_relaxed(&seg->huge_state, 0);
  seg->prev = NULL; seg->next = heap->huge;
  if (heap->huge) heap->huge->prev = seg;
  heap->huge = seg;
}

/* free() of a huge block, from any thread. A plain block is unmapped at
 * once. A heap's block is marked freed (0 -> 1, acq_rel so the owner's
 * sweep sees it and we see a concurrent detach) and unmapped by its owner:
 * now if we are the owner, else at the owner's next sweep.
 * The heap is read before the CAS: once the block is marked freed, the
 * owner's sweep may unmap it at once. NULL (a detach under way) or another
 * thread's heap both mean "not ours": that owner frees it. */
void kl_segment_huge_release(kl_segment_t *seg) {
  kl_heap_t *heap = kl_load_relaxed(&seg->huge_heap);
  int state = 0;
  if (atomic_compare_exchange_strong_explicit(&seg->huge_state, &state, 1,
        memory_order_acq_rel, memory_order_acquire)) {
    if (heap != NULL && heap->thread_id == kl_prim_thread_id()) {
      huge_unlink(heap, seg);
      kl_segment_huge_free(seg);
    }
    return;
  }
  kl_segment_huge_free(seg);     /* state 2: nobody else tracks it */
}

/* The owner's pass over its heap's huge blocks: reap those freed by other
 * threads; with `destroy` free all; with `detach` turn the live ones plain
 * (their blocks outlive the heap). */
void kl_segment_huge_sweep(kl_heap_t *heap, bool destroy, bool detach) {
  kl_segment_t *seg = heap->huge;
  while (seg != NULL) {
    kl_segment_t *next = seg->next;
    int state = kl_load_acquire(&seg->huge_state);
    if (destroy || state == 1) {
      huge_unlink(heap, seg);
      kl_segment_huge_free(seg);
    } else if (detach) {
      state = 0;
      huge_unlink(heap, seg);
      if (!atomic_compare_exchange_strong_explicit(&seg->huge_state, &state, 2,
            memory_order_acq_rel, memory_order_acquire))
        kl_segment_huge_free(seg);   /* freed by another thread meanwhile */
    }
    seg = next;
  }
}

/* Move an owned segment to another heap of the same thread. */
void kl_segment_transfer(kl_segment_t *seg, kl_heap_t *to) {
  kl_heap_t *from = seg->heap;
  bool had_free = seg->in_free_list;
  free_list_remove(from, seg);
  owned_remove(from, seg);
  owned_add(to, seg);
  if (had_free) free_list_add(to, seg);
}

/* ---- abandon and reclaim ------------------------------------------------- */

/* Abandoned segments wait in one FIFO list under a spin lock, taken only
 * at thread exit and when a heap runs out of pages, never on a fast path.
 * FIFO: the oldest segments, whose blocks other threads have most likely
 * freed by now, are adopted first, and get freed at adoption once empty.
 *
 * Why a lock: the lock-free stack it replaced could only be emptied whole
 * (single pops would read the `next` of a segment that another thread may
 * have adopted, emptied and unmapped meanwhile). While one thread held the
 * whole stack to cut its share, threads starting at that moment found it
 * empty and mapped new segments, which they abandoned in turn: with 8
 * threads starting and exiting at once, RSS grew tenfold over 20,000
 * threads. Fork takes the lock first (prepare) and releases it in both
 * processes, so the child never inherits it held. */
static _Atomic(int) abandoned_lock;
static kl_segment_t *abandoned_first, *abandoned_last;   /* under the lock */
static _Atomic(size_t) abandoned_count;   /* a hint read without the lock */

static void abandoned_acquire(void) { kl_lock(&abandoned_lock); }   /* the list as the last holder left it */
static void abandoned_release(void) { kl_unlock(&abandoned_lock); }  /* publishes the list */

/* No other thread runs in the child: a heap lock the purger held (2) is
 * free; one an owner held (1) stays held, since that heap was mid-change
 * when its thread vanished, and is never used again. */
static void segment_atfork_child(void) {
  kl_store_relaxed(&purge_lock, 0);
  for (kl_heap_t *h = kl_stats_heaps(); h != NULL; h = h->all_next)
    if (kl_load_relaxed(&h->seg_lock) == 2) kl_store_relaxed(&h->seg_lock, 0);
}

void kl_segment_atfork_init(void) {
  kl_prim_atfork(abandoned_acquire, abandoned_release, abandoned_release);
  kl_prim_atfork_child(segment_atfork_child);
  kl_pool_atfork_init();
}

/* Called by the dying heap after it retired its empty pages and took the
 * segment off its lists. From here on every free into the segment is
 * remote (thread_id 0) until some heap adopts it. */
void kl_segment_abandon(kl_segment_t *seg) {
  seg->heap = NULL;
  seg->in_free_list = false;
  seg->next = seg->prev = seg->fnext = seg->fprev = NULL;
  kl_store_relaxed(&seg->thread_id, 0);
  seg->abandoned_next = NULL;
  abandoned_acquire();   /* its release publishes the segment's page lists and counts */
  if (abandoned_last != NULL) abandoned_last->abandoned_next = seg; else abandoned_first = seg;
  abandoned_last = seg;
  kl_store_relaxed(&abandoned_count, kl_load_relaxed(&abandoned_count) + 1);
  abandoned_release();
}

static void adopt(kl_heap_t *heap, kl_segment_t *seg) {
  seg->abandoned_next = NULL;
  kl_store_relaxed(&seg->thread_id, heap->thread_id);
  owned_add(heap, seg);
  if (seg->used_pages < seg->page_count) free_list_add(heap, seg);
  heap->counters.segments_reclaimed++;
  for (uint32_t i = 0; i < seg->page_count; i++) {
    kl_page_t *page = &seg->pages[i];
    if (!page->in_use) continue;
    /* Relaxed: the heap pointer only steers a hint (has_delayed). */
    atomic_store_explicit(&page->heap, heap, memory_order_relaxed);
    page->used &= ~KL_USED_FULL;
    kl_page_collect(page);
    /* Every block came back meanwhile: free the page the normal way, so
     * its dirty memory is scheduled for purging like any other (a page
     * dropped here without a purge date stayed resident for good). */
    if (page->used != 0 || !kl_holes_release(page)) kl_heap_queue_push_front(heap, page);
    else if (kl_segment_page_free(page)) return;   /* that was the segment's last page */
  }
  if (seg->used_pages == 0) segment_free(heap, seg);   /* not expected: abandon frees empty segments */
}

/* Adopt up to KL_RECLAIM_MAX of the oldest abandoned segments. */
bool kl_segment_reclaim(kl_heap_t *heap) {
  if (kl_load_relaxed(&abandoned_count) == 0) return false;   /* a stale 0 only delays adoption */
  abandoned_acquire();
  kl_segment_t *list = abandoned_first, *last = NULL;
  size_t n = 0;
  for (kl_segment_t *s = list; s != NULL && n < KL_RECLAIM_MAX; s = s->abandoned_next) { last = s; n++; }
  if (last != NULL) {
    abandoned_first = last->abandoned_next;
    if (abandoned_first == NULL) abandoned_last = NULL;
    last->abandoned_next = NULL;
    kl_store_relaxed(&abandoned_count, kl_load_relaxed(&abandoned_count) - n);
  }
  abandoned_release();
  kl_segment_lock(heap);
  while (list != NULL) {
    kl_segment_t *seg = list;
    list = seg->abandoned_next;
    adopt(heap, seg);
  }
  kl_segment_unlock(heap);
  return last != NULL;
}

bool kl_segment_is_valid(const kl_segment_t *seg) {
  if (seg->kind == KL_SEG_HUGE) return seg->page_count == 1 && seg->pages[0].in_use;
  uint32_t used = 0, dirty = 0;
  for (uint32_t i = 0; i < seg->page_count; i++) {
    if (seg->pages[i].in_use) { used++; if (!kl_page_is_valid(&seg->pages[i])) return false; }
    else dirty += seg->pages[i].purge_at != 0;
  }
  return used == seg->used_pages && dirty == seg->dirty_pages && (seg->in_free_list == (used < seg->page_count));
}
