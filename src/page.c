/* page.c — the one slow path of allocation.
 *
 * kl_malloc_generic runs when the fast path finds no free block: it
 * initializes the thread on its first call, takes in remote frees that were
 * announced for parked pages, then finds a page of the size class with a
 * free block — by collecting its local and remote frees, by carving more
 * of it, or by taking a fresh page from a segment — and pops one block.
 *
 * Costs: collecting walks the remote-free list once (each block is counted
 * once); carving touches KL_EXTEND_BYTES at a time (but at least 4 blocks
 * below 4 KiB, and one block from 4 KiB up); a page with nothing left
 * moves to the heap's full list, so no page is scanned twice without a
 * free in between. */
#include <errno.h>
#include <string.h>
#include "internal/internal.h"

/* The first page's blocks start after the segment header and, in the
 * secure build, the guard page after it (segment.c). */
static size_t first_page_skip(void) { return KL_SEGMENT_HEADER + (KL_SECURE ? kl_os.page_size : 0); }

size_t kl_page_area_size(uint32_t page_shift, uint32_t index) {
  size_t psize = (size_t)1 << page_shift;
  if (index == 0) psize -= first_page_skip();
  if (KL_SECURE) psize -= kl_os.page_size;   /* the guard page at the end of each page */
  return psize;
}

uint8_t *kl_page_area(const kl_segment_t *seg, const kl_page_t *page, size_t *size) {
  uint8_t *start = (uint8_t *)seg + ((size_t)page->index << seg->page_shift);
  if (page->index == 0) start += first_page_skip();
  *size = kl_page_area_size(seg->page_shift, page->index);
  return start;
}

void kl_page_init(kl_page_t *page, size_t block_size, unsigned class_idx, size_t area) {
  page->block_size = block_size;
  page->class_idx = (uint8_t)class_idx;
  page->reserved = (uint32_t)(area / block_size);
  page->capacity = 0;
  __atomic_store_n(&page->block_limit, 0, __ATOMIC_RELAXED);
  page->used = 0;
  page->pinned = 0;
  page->holes_strikes = page->holes_idle = 0;
  page->free = page->local_free = NULL;
  page->div_magic = kl_div_magic(block_size);
#if KL_SECURE
  page->list_key = (uintptr_t)kl_prim_random() & ~(uintptr_t)15;
#endif
  kl_store_relaxed(&page->xthread_free, 0);
}

/* A clean page that a class carves past its first KL_POPULATE_BYTES is
 * busy: the chunks of that size that the carve [lo, hi) enters are faulted
 * in by one call each (kl_prim_populate) rather than a fault per 4 KiB as
 * the links and the program's data are written. Chunks are aligned, so the
 * one holding lo was entered by the carve before. The first chunk faults
 * as it is touched, so a class with a few blocks holds no more than
 * before. bench memeff (200 MB of pages filled whole): user+sys 0.137 ->
 * 0.128 s (glibc 0.119); the faults still count as minor faults. Chunks
 * of 32 KiB (the first one lazy) measured 0.135 s; the page's rest at
 * once, 0.123 s but alloc-test's RSS 4.2 -> 5.3 MB.
 * Except for blocks of KL_POPULATE_EAGER bytes or more: the first chunk
 * holds at most 16 of them, and a block that is used at all is mostly
 * written, so touching saved little memory and cost a fault per 4 KiB
 * the block spans. sqlite's page buffers (4368 bytes) write their header
 * at +4096, in the next OS page: over 3 runs perf put 680 samples on
 * that one store against tcmalloc's 68, and 929 on page_extend's links.
 * sqlite (bench), 9 alternating runs: user+sys 0.880 -> 0.851 s
 * (tcmalloc 0.847), peak RSS 37.5 -> 37.7 MB; memeff (5 runs) 0.558 ->
 * 0.517 s; alloc-test, sh8, tight, larson, realloc, gcc: RSS and time
 * even. From 256 bytes: tight's RSS 1.6 -> 1.8 MB, xmalloc's 3.3 -> 3.4. */
static void populate_ahead(kl_page_t *page, uint8_t *lo, uint8_t *hi) {
  uintptr_t from = kl_align_up((uintptr_t)lo, KL_POPULATE_BYTES);
  if (page->block_size < KL_POPULATE_EAGER) {
    uintptr_t first = kl_align_up((uintptr_t)page->start + 1, KL_POPULATE_BYTES);   /* past the first chunk */
    if (from < first) from = first;
  }
  uintptr_t to = kl_align_up((uintptr_t)hi, KL_POPULATE_BYTES);
  uintptr_t end = kl_align_up((uintptr_t)page->start + (size_t)page->reserved * page->block_size, kl_os.page_size);
  if (to > end) to = end;
  if (from < to && !kl_prim_populate((void *)from, to - from)) page->populate = 0;
}

/* Carve the next few blocks into the free list, in address order. */
static void page_extend(kl_page_t *page) {
  size_t bs = page->block_size;
  /* Blocks of 4 KiB (an OS page) or more are carved one at a time:
   * carving writes a link into each block, so a batch would touch (fault
   * in) blocks that a program freeing and reallocating one block never
   * needs; the freed one comes back through kl_page_collect before the
   * next is carved. */
  uint32_t n = bs >= KL_EXTEND_BYTES ? 1 : (uint32_t)(KL_EXTEND_BYTES / bs);
  if (n < 4 && bs < KL_EXTEND_BYTES) n = 4;
  if (n > page->reserved - page->capacity) n = page->reserved - page->capacity;
  uint8_t *first = page->start + (size_t)page->capacity * bs;
  uint8_t *p = first;
  if (page->populate) populate_ahead(page, first, first + (size_t)n * bs);
#if KL_SECURE
  /* Secure build: hand the new blocks out in a random order, so the
   * distance between two allocations tells an attacker nothing. */
  kl_block_t *head = page->free;
  uint32_t order[KL_EXTEND_BYTES / 16];
  uint64_t r = kl_prim_random();
  for (uint32_t i = 0; i < n; i++) order[i] = i;
  for (uint32_t i = n; i > 1; i--) {
    r ^= r << 13; r ^= r >> 7; r ^= r << 17;
    uint32_t j = (uint32_t)(r % i), t = order[i - 1];
    order[i - 1] = order[j]; order[j] = t;
  }
  for (uint32_t i = 0; i < n; i++) {
    kl_block_t *b = (kl_block_t *)(first + (size_t)order[i] * bs);
    kl_block_set_next(page, b, head);
    head = b;
  }
  page->free = head;
  (void)p;
#else
  /* Carved blocks carry the freed mark, as every block on a free list
   * does (holes.c finds free blocks by it; a free of a block never handed
   * out is then a double free). */
  uintptr_t mark = kl_block_mark(page);
  for (uint32_t i = 1; i < n; i++, p += bs) {
    kl_block_set_next(page, (kl_block_t *)p, (kl_block_t *)(p + bs));
    ((kl_block_t *)p)->freed = mark;
  }
  kl_block_set_next(page, (kl_block_t *)p, page->free);
  ((kl_block_t *)p)->freed = mark;
  page->free = (kl_block_t *)first;
#endif
  page->capacity += n;
  /* Relaxed: see kl_page_has_block. bs * div_magic wraps to e. */
  __atomic_store_n(&page->block_limit, (uint64_t)page->capacity * (uint64_t)(bs * page->div_magic), __ATOMIC_RELAXED);
}

/* Move the remote frees, then the owner's own, into `free`. The remote list
 * comes with its length, so when `free` is empty (the usual case: this runs
 * when it ran dry) it becomes the free list without a walk. The owner's
 * list, when it has to be appended, is walked instead: its blocks are the
 * ones this thread touched last. */
void kl_page_collect(kl_page_t *page) {
  if (kl_load_relaxed(&page->xthread_free) != 0) {
    /* Acquire pairs with the release CAS of each remote free: the `next`
     * links they wrote are visible. Exchanging to 0 also clears the
     * "parked, tell me" bit, since the page is about to be usable again. */
    uintptr_t tf = kl_exchange_acquire(&page->xthread_free, 0);
    kl_block_t *head = (kl_block_t *)(tf & KL_XF_PTR);
    if (head != NULL) {
      uint32_t n = (uint32_t)(tf >> KL_XF_COUNT_SHIFT);
      if (page->free != NULL) {
        kl_block_t *tail = head, *nx;
        while ((nx = kl_block_next(page, tail)) != NULL) tail = nx;
        kl_block_set_next(page, tail, page->free);
      }
      page->free = head;
      kl_assert(n != 0 && kl_page_used(page) >= n);
      page->used -= n;
    }
  }
  if (page->local_free != NULL) {
    if (page->free == NULL) page->free = page->local_free;
    else {
      kl_block_t *tail = page->local_free, *n;
      while ((n = kl_block_next(page, tail)) != NULL) tail = n;
      kl_block_set_next(page, tail, page->free);
      page->free = page->local_free;
    }
    page->local_free = NULL;
  }
}

/* A page whose last block came back. Keep it, pinned, if it is the only
 * page of its class (a program that allocates and frees one block in a
 * loop would otherwise take and return a page every time); else return it. */
void kl_page_retire(kl_heap_t *heap, kl_page_t *page) {
  kl_assert(kl_page_used(page) == 0);
  if (kl_page_in_full(page)) kl_heap_page_from_full(heap, page);
  if (kl_page_is_sole(page)) { kl_page_pin(page); return; }
  if (page->holes != 0 && !kl_holes_release(page)) return;   /* a late double free: see holes.c */
  kl_heap_queue_remove(heap, page);
  kl_segment_page_free(page);
  kl_segment_purge(heap, false);   /* pages retired earlier may be due now */
}

/* An empty page that another class of the same kind keeps as its only one
 * (kl_page_retire), taken out of that class for class c; NULL if there is
 * none. Its memory is written already, where the segment's free page may
 * be clean: an array that grows through the classes (python's lists, the
 * realloc workload's strings, the demo's logs) would otherwise leave a page
 * behind in every class it passed, and fault in the next class's page
 * anew. The page stays in use: the segment sees no change. */
static kl_page_t *page_steal(kl_heap_t *heap, unsigned c, size_t bs) {
  bool small = bs <= KL_SMALL_MAX;
  for (unsigned x = 0; x < KL_CLASS_COUNT; x++) {
    kl_page_t *page = heap->queues[x].first;
    /* Sole (first with no next) and empty; used == 0 also means no remote
     * free is pending and no block waits in a foreign cache. */
    if (page == NULL || page->next != NULL || kl_page_used(page) != 0 || page->holes != 0 || x == c) continue;
    if ((kl_class_size[x] <= KL_SMALL_MAX) != small) continue;
    if (page->index == 0 && bs > kl_page_area_size(small ? KL_SMALL_PAGE_SHIFT : KL_MEDIUM_PAGE_SHIFT, 0)) continue;
    kl_heap_queue_remove(heap, page);
    atomic_fetch_sub_explicit(&kl_os_stats.pages[x], 1, memory_order_relaxed);
    return page;
  }
  return NULL;
}

static kl_page_t *page_fresh(kl_heap_t *heap, unsigned c) {
  size_t bs = kl_class_size[c];
  kl_segment_purge(heap, false);
  kl_holes_sweep(heap, false);   /* the heap grows: idle sparse pages give their free OS pages back */
  kl_segkind_t kind = bs <= KL_SMALL_MAX ? KL_SEG_SMALL : KL_SEG_MEDIUM;
  /* Written memory first: a free page not yet purged, else, for a realloc
   * that grows a block into this class, another class's empty page, and
   * only then a page that may fault in. Only for a growing realloc: the
   * classes it leaves behind stay idle, while a malloc may take the page of
   * a class the program is still using. Where every class keeps allocating
   * now and then (alloc-test), each such theft made its victim take a page
   * soon, and the pages' written extents ratcheted up to the biggest class
   * that passed through them (peak RSS +18 to +24%); and a block just
   * freed came back at once as another size, so a double free of it went
   * unseen (tests/hardening/death.c). */
  kl_page_t *page = kl_segment_page_alloc(heap, kind, bs, true);
  if (page == NULL && heap->growing) page = page_steal(heap, c, bs);
  bool dirty = page != NULL;
  if (page == NULL) page = kl_segment_page_alloc(heap, kind, bs, false);
  if (page == NULL) return NULL;
  kl_segment_t *seg = (kl_segment_t *)kl_align_down((uintptr_t)page, KL_SEGMENT_SIZE);
  size_t area;
  page->start = kl_page_area(seg, page, &area);
  page->start_off = (size_t)(page->start - (uint8_t *)seg);
  kl_page_init(page, bs, c, area);
  page->tail_dirty = dirty && kind == KL_SEG_MEDIUM;
  /* Not in the secure build (guard pages), the debug build (it writes the
   * whole area below), with transparent huge pages asked for, nor with
   * KEEL_POPULATE=0. */
  page->populate = !dirty && kind == KL_SEG_SMALL && !KL_SECURE && !KL_DEBUG && kl_option(KL_OPT_HUGE_PAGES) == 0 &&
                   kl_option(KL_OPT_POPULATE) != 0;
#if KL_DEBUG
  memset(page->start, 0, area);   /* no old fill pattern may look like a freed block */
#endif
  /* Relaxed: read by remote frees only to decide whom to nudge. */
  atomic_store_explicit(&page->heap, heap, memory_order_relaxed);
  /* keel_heap_destroy frees a first-class heap's pages whole: a block of
   * one must not wait in another thread's foreign cache. */
  page->foreign_ok = KL_FOREIGN && !heap->is_user && c < KL_FOREIGN_CLASSES;
  atomic_fetch_add_explicit(&kl_os_stats.pages[c], 1, memory_order_relaxed);
  page_extend(page);
  kl_heap_queue_push_front(heap, page);
  return page;
}

/* Find a page of class c with a free block. Before taking a fresh page,
 * adopt abandoned segments once: their pages join our queues and are
 * scanned like our own, so dead threads' half-empty pages fill up first. */
static kl_page_t *page_find(kl_heap_t *heap, unsigned c) {
  kl_page_queue_t *q = &heap->queues[c];
  for (int round = 0; round < 2; round++) {
    kl_page_t *page = q->first;
    while (page != NULL) {
      kl_page_t *next = page->next;
      if (page->free == NULL) kl_page_collect(page);
      /* Holes first: a page never carves past its capacity while some of
       * its carved blocks are in holes (holes.c counts on it). */
      while (page->free == NULL && page->holes != 0 && kl_holes_fill(page)) {}
      if (page->free == NULL && page->capacity < page->reserved) page_extend(page);
      if (page->free != NULL) {
        if (page != q->first) kl_heap_queue_to_front(heap, page);
        return page;
      }
      kl_heap_page_to_full(heap, page);
      page = next;
    }
    /* A first-class heap never adopts: destroy would free blocks that are
     * not its own. Its thread's default heap does the adopting. */
    if (round == 0 && (heap->is_user || !kl_segment_reclaim(heap))) break;
  }
  return page_fresh(heap, c);
}

/* A medium class's page with a free block at hand (no carving, no cold
 * block brought back) in class c or one of the KL_MEDIUM_SHARE above it.
 * Each class keeping the most blocks it ever held at once made a program
 * with a few live blocks of many medium sizes hold several times its
 * live bytes (bench alloc-test: 13 classes of 8-64 KiB); a bigger class's
 * free block is memory already written. Not for a realloc that grows a
 * block: it asked for its room already, and a block twice that left the
 * next class up short (bench realloc: +10% time, +3% RSS). NULL if none. */
static kl_page_t *page_shared(kl_heap_t *heap, unsigned c) {
  for (unsigned x = c; x <= c + KL_MEDIUM_SHARE && x < KL_LARGE_CLASS; x++) {
    for (kl_page_t *page = heap->queues[x].first; page != NULL; page = page->next) {
      if (page->free == NULL) kl_page_collect(page);
      if (page->free != NULL) return page;
    }
  }
  return NULL;
}

#if KL_FOREIGN
/* The pop, as malloc's fast path makes it when the cache is installed. */
kl_inline void foreign_take(kl_heap_t *heap, unsigned c, kl_block_t *b) {
  heap->foreign[c].free = b->next;
  heap->foreign[c].used++;   /* the room */
  kl_block_set_freed(b, 0);
  heap->counters.allocs[c]++;
}

/* The thread's heap came from a free, and this is its first small malloc
 * that finds a block in its cache: what it freed so far goes back to the
 * owners instead. A thread handed one block among other threads' blocks
 * (cache-scratch) would otherwise take that block, and every block it then
 * allocates and frees in a loop would be it, in a cache line its
 * neighbours write: false-sharing/4t ran 2.5x slower. A consumer that
 * never allocates keeps the batching. */
static kl_noinline void foreign_first_malloc(kl_heap_t *heap) {
  kl_foreign_flush_all(heap);   /* runs, while frees_only says so */
  heap->frees_only = false;
}

static kl_block_t *foreign_pop(kl_heap_t *heap, unsigned c) {
  kl_block_t *b = heap->foreign[c].free;
  if (b == NULL) return NULL;
  if (kl_unlikely(heap->frees_only)) { foreign_first_malloc(heap); return NULL; }
  foreign_take(heap, c, b);
  return b;
}

static kl_noinline void *malloc_foreign_miss(size_t size, kl_heap_t *heap, bool cached) {
  if (cached) foreign_first_malloc(heap);   /* frees_only: see there */
  return kl_malloc_generic(heap, size, 0, false);
}

/* The fast path's miss for sizes up to KL_DIRECT_MAX: a block from the
 * foreign cache (free.c) before the page slow path. It is hot in this
 * core's cache, since this thread freed it; the owner's page sees no
 * atomic from us. A server thread that frees what others made lives on
 * its cache, so the cache then takes the class's place in pages_direct:
 * shaped as a page (kl_heap_s.foreign), it is popped by malloc's fast path
 * itself, until it runs dry and the miss lands here again, which puts the
 * class's page back. kbench larson 1 10 (callgrind): 84% of mallocs came
 * here, each a failed fast path and this call. Everything else is
 * malloc_foreign_miss. */
KL_HOT void *kl_malloc_foreign(size_t size, kl_heap_t *heap) {
  size_t i = (size + 15) >> 4;
  unsigned c = kl_direct_class[i];
  kl_page_t *fc = &heap->foreign[c];
  kl_block_t *b = fc->free;
  if (kl_likely(b != NULL && !heap->frees_only)) {
    if (heap->pages_direct[i] != fc) kl_heap_direct_set(heap, c, fc);
    foreign_take(heap, c, b);
    return b;
  }
  if (b == NULL) {
    /* No foreign block. The class's page: if the cache that stood in for
     * it ran dry, the page is back and may have free blocks; else its
     * list ran dry, and this thread's own frees into it, if any, become
     * that list whole (kl_page_collect's common case) without the slow
     * path. A class with a few live blocks (glibc's simple bench frees the
     * block of 32 steps back, over 16 classes) runs its list dry every
     * few calls. */
    if (heap->pages_direct[i] == fc) kl_heap_direct_update(heap, c);
    kl_page_t *page = heap->pages_direct[i];
    kl_block_t *own = page->free;
    if (own == NULL && (own = page->local_free) != NULL) page->local_free = NULL;
    if (own != NULL) {
      kl_page_pop(page, own);
      heap->counters.direct_allocs[i]++;
      return own;
    }
  }
  return malloc_foreign_miss(size, heap, b != NULL);
}
#endif

void *kl_malloc_generic(kl_heap_t *heap, size_t size, size_t align, bool zero) {
  if (kl_unlikely(heap == &kl_heap_empty)) {
    heap = kl_heap_init_thread();
    if (heap == NULL) { errno = ENOMEM; return NULL; }
  }
  /* Every 64th slow call publishes this heap's bytes in use (peak tracking). */
  if ((++heap->counters.slow_calls & 63) == 0) kl_stats_sample(heap);
#if KL_DEBUG
  /* Debug build: walk every structure on every slow-path entry. */
  if (!kl_heap_is_valid(heap)) kl_error_bad_pointer("malloc", heap, "heap structures are corrupt (invariant walk failed)");
#elif KL_CHECKED
  /* The walk is O(heap); every 256th call keeps big checked runs bounded. */
  if ((heap->counters.slow_calls & 255) == 1) kl_assert(kl_heap_is_valid(heap));
#endif
  if (kl_unlikely(kl_load_relaxed(&heap->has_delayed) != 0)) kl_heap_collect_delayed(heap);
  unsigned c;
  if (align > 16) c = align <= KL_ALIGNED_CLASS_MAX ? kl_aligned_class(size, align) : KL_CLASS_COUNT;
  else if (size <= KL_MEDIUM_MAX) c = kl_size_class(size);
  /* calloc's large blocks stay huge: fresh OS memory needs no clearing,
   * where a page's block would be cleared whole. */
  else c = size <= KL_LARGE_MAX && !zero ? KL_LARGE_CLASS : KL_CLASS_COUNT;
  if (c >= KL_CLASS_COUNT) {
    void *p = kl_segment_huge_alloc(size, align < 16 ? 16 : align, zero);
    if (p != NULL && heap->is_user) kl_segment_huge_attach(heap, p);
    return p;
  }
  kl_block_t *b;
#if KL_FOREIGN
  /* A block this thread freed into its foreign cache first (see
   * kl_malloc_foreign; aligned requests come here directly, and so do the
   * classes above 1 KiB, whose caches only this pops: kbench sh8 2 80,
   * where a neighbour frees half of every size up to 4 KiB, user+sys
   * 0.589 -> 0.561 s once those sizes were cached too, as each block's
   * lines stay in the core that freed it). */
  if (c < KL_FOREIGN_CLASSES && (b = foreign_pop(heap, c)) != NULL) {
    if (zero) memset(b, 0, size);
    return b;
  }
#endif
  kl_page_t *page = NULL;
  if (kl_class_size[c] > KL_SMALL_MAX) {
    /* A medium page is busy rather than idle: its free blocks are stamped
     * here and go back once cold (holes.c). The clock read is small next
     * to the 8 KiB and more that the block's user will write. */
    kl_holes_cold_sweep(heap, false);
    if (align <= 16 && !heap->growing) page = page_shared(heap, c);
  }
  if (page == NULL) page = page_find(heap, c);
  if (page == NULL) { errno = ENOMEM; return NULL; }
  b = page->free;
  kl_page_pop(page, b);
  heap->counters.allocs[page->class_idx]++;
  if (zero) memset(b, 0, size);
  /* A safe point: the heap is consistent, so starting the purger thread
   * (which allocates) cannot disturb this call. Relaxed hint check. */
  if (kl_unlikely((heap->counters.slow_calls & 15) == 0)) kl_segment_purger_poll();
  return b;
}

/* Every block of the list is a carved block of the page (checked with
 * plain division, not kl_page_has_block, so the walk also checks that);
 * counts them into *n, which never passes the capacity. */
static bool list_is_valid(const kl_page_t *page, const kl_block_t *b, uint32_t *n) {
  for (; b; b = kl_block_next(page, b)) {
    size_t off = (size_t)((const uint8_t *)b - page->start);
    if (off >= (size_t)page->capacity * page->block_size || off % page->block_size) return false;
    if (++*n > page->capacity) return false;
  }
  return true;
}

bool kl_page_is_valid(const kl_page_t *page) {
  if (!page->in_use) return true;
  if (page->capacity > page->reserved || kl_page_used(page) > page->capacity) return false;
  uint32_t n = 0;
  if (!list_is_valid(page, page->free, &n) || !list_is_valid(page, page->local_free, &n)) return false;
  return n + kl_page_used(page) + kl_holes_blocks(page) == page->capacity;
}
