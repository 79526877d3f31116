/* holes.c — giving back the free OS pages inside pages that still hold
 * live blocks.
 *
 * A slab page holds blocks of one size. A program that fills memory with
 * small blocks, frees most of them at random and then allocates other
 * sizes (bench memeff: fill, free 90%, allocate larger blocks) leaves its
 * small pages sparse: one live block in ten keeps every page, and the new
 * sizes take new pages, so resident memory is the old peak plus the new
 * data. The page cannot go back whole, but each 4 KiB OS page in it whose
 * blocks are all free can: such an OS page is a *hole*. A page's holes
 * are a 16-bit mask (kl_page_s.holes, one bit per OS page of a 64 KiB
 * page), given back with madvise; the free blocks that overlap a hole
 * leave the page's free list (their links are gone with the memory) and
 * are in no list, counted neither in `used` nor on a list: the checked
 * build's page walk counts them from the mask (kl_holes_blocks).
 *
 * When: kl_holes_sweep runs from the slow path that takes a fresh page
 * (the heap grows: memory is wanted while sparse pages sit idle), at most
 * once per KEEL_PURGE_DELAY, and from malloc_trim. A page is punched when
 * it is not its class's current page (the queue's first), at most a
 * quarter of its blocks are live, and it was not allocated from or freed
 * into between two sweeps (kl_page_s.purge_at holds a signature of its
 * lists and count while it is in use, and the time its holes were made
 * while it has some). So pages a program keeps working on are left alone,
 * and the madvise and the later faults are paid only for memory that sat
 * idle. A page whose holes were filled again within KL_HOLES_QUICK (a
 * program that leaves pages idle and comes back, round after round) must
 * sit idle twice as long before its next punch, up to 2^KL_HOLES_STRIKES
 * sweeps.
 *
 * Refill: when a page's free list runs dry in page_find, its lowest run
 * of holes comes back first (kl_holes_fill): the blocks overlapping the
 * run are linked again, in address order, which faults the OS pages in
 * as they are written.
 *
 * A double free of a block whose header lies in a hole cannot be caught
 * at once (its freed mark went with the memory, free reads zero), so it
 * is caught when the hole is refilled or the page empties: a hole's
 * memory reads zero until a program writes it, and nothing but a free of
 * a block keel holds (or a write after free) writes it. Both check the
 * headers in the holes that are resident again (kl_prim_resident, so
 * checking faults nothing in), report the block, and count it as in use
 * so that nothing is handed out twice. A block whose header lies outside
 * the hole (it straddles into one) keeps its mark: a second free of it is
 * caught at once, as anywhere.
 *
 * Not in the secure build (its lists are keyed and shuffled; its pages
 * have guards) nor the debug build (its fill patterns are checked when a
 * block is handed out), and not for blocks over 4 KiB, which then overlap
 * at most two OS pages, so a block meets at most one maximal run of holes.
 *
 * Cold blocks. A medium page (blocks over 8 KiB) is busy as a rule, never
 * idle, and holds few blocks: there the unit is the free block itself.
 * Every block of a class that a program once held at the same time stays
 * written: a program that keeps ten blocks of 8-64 KiB alive, replaced at
 * random (bench alloc-test), touched the most it ever held of each of 13
 * classes, 6x its live bytes. kl_holes_cold_sweep (at most once per
 * KL_COLD_DELAYS times KEEL_PURGE_DELAY, from the slow path of a medium
 * class, and from malloc_trim) stamps every free block of the heap's medium pages with
 * its count of sweeps, in the block's third word; a block that still
 * carries the previous sweep's stamp was free all the while: it is cold.
 * It leaves the free list for the page's cold list (kl_page_s.cold, its
 * length in `holes`), and its OS pages past its first go back. Its
 * header stays, with its freed mark, so a double free of it is caught
 * at once. When the free list runs dry, one cold block comes back
 * (kl_holes_fill) before the page carves a new one. A stamp that a
 * program leaves in a block it gets and frees again makes a warm block
 * look cold: that costs faults, never correctness. */
#include <string.h>
#include "internal/internal.h"

#if KL_HOLES

#define OS_PAGE ((size_t)4096)
/* Cold sweeps come at most once per this many KEEL_PURGE_DELAYs, so a
 * medium block goes cold after 4 to 8 delays free: at one delay, blocks
 * that a program freed and took again within tens of milliseconds were
 * given back and faulted in again (kbench alloc-test 4 200: 4,086 OS
 * pages given back, 9,700 faults against mimalloc's 4,735). Medians of 7
 * alternating runs, user+sys / peak RSS, 1 -> 4 delays: alloc-test 4t
 * 0.720 -> 0.632 s (mimalloc 0.631) / 12.1 -> 12.1 MB (19.7); 1t 0.166 ->
 * 0.154 s / 4.2 -> 4.4 MB (6.7); realloc 1t 0.152 -> 0.144 s. 2 and 10
 * delays: alloc-test 4t 0.671 and 0.618 s, 12.1 and 12.8 MB. */
#define KL_COLD_DELAYS 4
#define OS_PAGES_PER_PAGE ((size_t)1 << (KL_SMALL_PAGE_SHIFT - 12))   /* 16: the mask's bits */

/* The page's OS-page-aligned base (the page's own start in the segment;
 * the first page's blocks start after the header). */
static uint8_t *page_base(const kl_page_t *page) {
  return (uint8_t *)kl_align_down((uintptr_t)page, KL_SEGMENT_SIZE) + ((size_t)page->index << KL_SMALL_PAGE_SHIFT);
}

/* The carved blocks first..last that overlap OS pages k0..k1-1. */
static void run_blocks(const kl_page_t *page, unsigned k0, unsigned k1, uint32_t *first, uint32_t *last) {
  size_t rel = (size_t)(page->start - page_base(page));   /* k0 * 4 KiB >= rel: see punch */
  size_t lo = k0 * OS_PAGE - rel, hi = k1 * OS_PAGE - rel;
  size_t end = (size_t)page->capacity * page->block_size;
  if (hi > end) hi = end;
  *first = (uint32_t)(lo / page->block_size);
  *last = (uint32_t)((hi - 1) / page->block_size);
}

/* The maximal run of holes starting at the lowest set bit at or above k. */
static bool next_run(uint16_t mask, unsigned k, unsigned *k0, unsigned *k1) {
  while (k < OS_PAGES_PER_PAGE && !(mask & (1u << k))) k++;
  if (k == OS_PAGES_PER_PAGE) return false;
  *k0 = k;
  while (k < OS_PAGES_PER_PAGE && (mask & (1u << k))) k++;
  *k1 = k;
  return true;
}

/* A medium page: its `holes` counts cold blocks (the comment above). */
static bool is_medium(const kl_page_t *page) { return page->block_size > KL_SMALL_MAX; }

/* The OS pages of block b past its header (next, freed mark, stamp). Every
 * medium block has some: it spans over 8 KiB. */
static size_t cold_range(const kl_page_t *page, const kl_block_t *b, uint8_t **lo) {
  uintptr_t a = kl_align_up((uintptr_t)b + 3 * sizeof(uintptr_t), OS_PAGE);
  uintptr_t z = kl_align_down((uintptr_t)b + page->block_size, OS_PAGE);
  *lo = (uint8_t *)a;
  return z - a;
}

static bool cold_fill(kl_page_t *page) {
  kl_block_t *b = page->cold;
  if (b == NULL) return false;
  uint8_t *lo;
  size_t n = cold_range(page, b, &lo);
  page->cold = b->next;
  page->holes--;
  ((uintptr_t *)b)[2] = 0;   /* a fresh stamp is due: it must stay free a whole sweep again */
  b->next = page->free;      /* raw links: no holes in the secure build */
  page->free = b;
  kl_stats_purged(-(ptrdiff_t)n);
  return true;
}

uint32_t kl_holes_blocks(const kl_page_t *page) {
  if (is_medium(page)) return page->holes;
  uint32_t n = 0, first, last;
  unsigned k0, k1;
  for (unsigned k = 0; next_run(page->holes, k, &k0, &k1); k = k1) {
    run_blocks(page, k0, k1, &first, &last);
    n += last - first + 1;
  }
  return n;
}

bool kl_holes_contain(const kl_page_t *page, const void *b) {
  if (page->holes == 0 || is_medium(page)) return false;   /* a cold block keeps its mark */
  size_t off = (size_t)((const uint8_t *)b - page_base(page));
  unsigned a = (unsigned)(off / OS_PAGE), z = (unsigned)((off + page->block_size - 1) / OS_PAGE);
  return ((page->holes >> a) & 1) || (z < OS_PAGES_PER_PAGE && ((page->holes >> z) & 1));
}

/* Which OS pages of the run k0..k1 are resident again (written, or read,
 * since they were given back); false if none is, or the OS cannot say. */
static bool run_resident(const kl_page_t *page, unsigned k0, unsigned k1, uint8_t *resident) {
  if (!kl_prim_resident(page_base(page) + k0 * OS_PAGE, (k1 - k0) * OS_PAGE, resident)) return false;
  for (unsigned k = 0; k < k1 - k0; k++) if (resident[k]) return true;
  return false;
}

/* Bring back the run k0..k1: its blocks go onto the free list in address
 * order, marked freed, and the memory counts as committed again. A block
 * whose header lies in a resident OS page of the run and is not all zero
 * was written since the run was given back: a double free (or a write
 * after free). It is reported, and stays out of the list, counted in use:
 * the free that wrote it had counted it back, and it may be in a list or
 * in the program's hands now. */
static void run_fill(kl_page_t *page, unsigned k0, unsigned k1) {
  uint8_t *base = page_base(page);
  uint8_t resident[OS_PAGES_PER_PAGE];
  bool check = run_resident(page, k0, k1, resident);
  uint32_t first, last;
  run_blocks(page, k0, k1, &first, &last);
  kl_block_t *head = page->free;
  for (uint32_t i = last + 1; i-- > first; ) {
    kl_block_t *b = (kl_block_t *)(page->start + (size_t)i * page->block_size);
    size_t k = (size_t)((uint8_t *)b - base) / OS_PAGE;
    /* A header before the run lies in an OS page that kept its contents:
     * the block kept its mark, and free caught any second free of it. */
    if (check && k >= k0 && resident[k - k0] && (b->next != NULL || b->freed != 0)) {
      kl_error_bad_pointer("free", b, "double free (found later: keel had given the block's memory back)");
      page->used++;
      continue;
    }
    kl_block_set_next(page, b, head);
    b->freed = kl_block_mark(page);
    head = b;
  }
  page->free = head;
  for (unsigned k = k0; k < k1; k++) page->holes &= (uint16_t)~(1u << k);
  kl_stats_purged(-(ptrdiff_t)((k1 - k0) * OS_PAGE));
}

bool kl_holes_fill(kl_page_t *page) {
  if (is_medium(page)) return cold_fill(page);
  unsigned k0, k1;
  if (!next_run(page->holes, 0, &k0, &k1)) return false;
  run_fill(page, k0, k1);
  if (page->holes == 0) {
    /* The last hole is filled. One that lived less than KL_HOLES_QUICK
     * was not worth its madvise and faults: the page must now sit idle
     * for twice as many sweeps before the next punch; one that lived
     * longer takes a strike back. */
    uint64_t age = kl_prim_clock_ms() - page->purge_at;
    if (age < KL_HOLES_QUICK) { if (page->holes_strikes < KL_HOLES_STRIKES) page->holes_strikes++; }
    else if (page->holes_strikes != 0) page->holes_strikes--;
    page->purge_at = 0;
  }
  return true;
}

bool kl_holes_release(kl_page_t *page) {
  /* Cold blocks kept their marks, so no double free hides in them; the
   * page goes back to its segment accounted whole (segment.c reads
   * `holes` as a mask). */
  if (is_medium(page)) { while (cold_fill(page)) {} return true; }
  uint32_t before = page->used;
  uint8_t resident[OS_PAGES_PER_PAGE];
  /* Only OS pages written since can hold a double free: fill the runs
   * that have one (which checks them) and leave the rest untouched. */
  if (!kl_prim_resident(page_base(page), (size_t)1 << KL_SMALL_PAGE_SHIFT, resident)) return true;
  unsigned k0, k1;
  for (unsigned k = 0; next_run(page->holes, k, &k0, &k1); k = k1) {
    bool written = false;
    for (unsigned j = k0; j < k1; j++) written |= resident[j] != 0;
    if (written) run_fill(page, k0, k1);
  }
  return page->used == before;   /* else a block counted free is in use after all: keep the page */
}

/* Give back the holes of a page: every OS page whose carved blocks are all
 * free (and that lies wholly in the page's block area). Free blocks are
 * found by their mark, in address order, rather than by walking the list
 * (a cache miss per block): every block on the page's lists carries it
 * (page_extend marks carved blocks too), live blocks do not. A block
 * freed by another thread into its foreign cache (free.c) carries it as
 * well, but is on none of the page's lists and counts as used: when the
 * marks outnumber the free blocks, some are away, and the page waits.
 * The scan reads the second word of live blocks too, which other threads
 * may be writing (their data, or a foreign cache's mark): any value but
 * the mark means live, and the count check catches a block that changed
 * hands meanwhile, so the race is harmless and not reported (kl_no_tsan). */
static kl_no_tsan void punch(kl_heap_t *heap, kl_page_t *page, kl_purge_batch_t *bt) {
  kl_page_collect(page);
  size_t bs = page->block_size, end = (size_t)page->capacity * bs;
  uintptr_t mark = kl_block_mark(page);
  uint64_t freemap[((size_t)1 << KL_SMALL_PAGE_SHIFT) / 16 / 64] = { 0 };
  uint32_t nfree = 0;
  for (uint32_t i = 0; i < page->capacity; i++) {
    /* A plain read: ThreadSanitizer still reports atomic ones here. */
    if (((const volatile kl_block_t *)(page->start + (size_t)i * bs))->freed != mark) continue;
    freemap[i / 64] |= (uint64_t)1 << (i % 64);
    nfree++;
  }
  if (nfree != page->capacity - kl_page_used(page)) return;
  uint8_t *base = page_base(page);
  size_t rel = (size_t)(page->start - base);
  uint16_t mask = 0;
  for (unsigned k = 0; k < OS_PAGES_PER_PAGE; k++) {
    if (k * OS_PAGE < rel || k * OS_PAGE - rel >= end) continue;   /* header, or nothing carved */
    uint32_t first, last, i;
    run_blocks(page, k, k + 1, &first, &last);
    for (i = first; i <= last && (freemap[i / 64] >> (i % 64) & 1); i++) {}
    if (i > last) mask |= (uint16_t)(1u << k);
  }
  if (mask == 0) return;
  page->holes = mask;
  /* The free list again, in address order, without the blocks that
   * overlap a hole (their links go with the memory). */
  kl_block_t *head = NULL;
  for (uint32_t i = page->capacity; i-- > 0; ) {
    if (!(freemap[i / 64] >> (i % 64) & 1)) continue;
    kl_block_t *b = (kl_block_t *)(page->start + (size_t)i * bs);
    if (kl_holes_contain(page, b)) continue;
    kl_block_set_next(page, b, head);
    head = b;
  }
  page->free = head;
  unsigned k0, k1;
  for (unsigned k = 0; next_run(mask, k, &k0, &k1); k = k1) {
    kl_purge_batch_add(bt, base + k0 * OS_PAGE, (k1 - k0) * OS_PAGE, (k1 - k0) * OS_PAGE);
    heap->counters.holes_purged += k1 - k0;
  }
}

/* A signature of what an allocation or a free changes on a page: its list
 * heads and its count. Odd, so never 0 (a page's purge_at is 0 when it is
 * handed out). */
static uint64_t idle_sig(const kl_page_t *page) {
  return (((uint64_t)(uintptr_t)page->free << 16) ^ ((uint64_t)(uintptr_t)page->local_free << 40) ^ page->used) | 1;
}

/* Whether a sweep runs now: never for a first-class heap, nor with OS
 * pages other than 4 KiB or huge pages asked for; at most once per
 * KEEL_PURGE_DELAY unless forced, *next being when this kind of sweep is
 * due again. */
static bool sweep_due(const kl_heap_t *heap, uint64_t *next, bool force, uint64_t *now, unsigned delays) {
  if (heap->is_user || kl_os.page_size != OS_PAGE || kl_option(KL_OPT_HUGE_PAGES) != 0) return false;
  *now = kl_prim_clock_ms();
  if (!force && *now < *next) return false;
  *next = *now + (uint64_t)kl_option(KL_OPT_PURGE_DELAY) * delays;
  return true;
}

void kl_holes_sweep(kl_heap_t *heap, bool force) {
  uint64_t now;
  if (!sweep_due(heap, &heap->holes_next, force, &now, 1)) return;
  /* The runs go out together (kl_purge_batch_t): their blocks left the
   * lists at once, and nothing touches them until the owner fills them
   * again, which it cannot do before its sweep returns. */
  kl_purge_batch_t bt;
  bt.n = bt.bytes = 0;
  for (unsigned c = 0; c < KL_CLASS_COUNT && kl_class_size[c] <= OS_PAGE; c++) {
    kl_page_queue_t *q = &heap->queues[c];
    if (q->first == NULL) continue;
    for (kl_page_t *page = q->first->next; page != NULL; page = page->next) {
      if (page->holes != 0) continue;   /* purge_at: when they were made */
      uint32_t used = kl_page_used(page);
      if (used * 4 > page->capacity || (size_t)page->capacity * page->block_size < 4 * OS_PAGE) {
        page->purge_at = 0;
        continue;
      }
      /* Punch a page seen idle at 2^strikes sweeps in a row after the
       * first (kl_page_s.holes_strikes). A page punched without a hole
       * (its free blocks are scattered, or some wait in a foreign cache)
       * keeps the signature with bit 1 flipped, and is not scanned again
       * until it changes. */
      uint64_t sig = idle_sig(page);
      if (!force) {
        if (page->purge_at == (sig ^ 2)) continue;
        if (page->purge_at != sig) { page->purge_at = sig; page->holes_idle = 0; continue; }
        if (++page->holes_idle < (1u << page->holes_strikes)) continue;
      }
      punch(heap, page, &bt);
      page->holes_idle = 0;
      page->purge_at = page->holes != 0 ? now : idle_sig(page) ^ 2;
    }
  }
  kl_purge_batch_flush(&bt);
}

/* A stamp: never a block's freed mark (the page's address, below 2^47). */
static uintptr_t cold_stamp(const kl_page_t *page, uint32_t epoch) {
  return kl_block_mark(page) + 1 + ((uintptr_t)(epoch & 0xffff) << 48);
}

void kl_holes_cold_sweep(kl_heap_t *heap, bool force) {
  uint64_t now;
  if (!sweep_due(heap, &heap->cold_next, force, &now, KL_COLD_DELAYS)) return;
  uint32_t epoch = ++heap->cold_epoch;
  kl_purge_batch_t bt;   /* as in kl_holes_sweep: the blocks are off every list first */
  bt.n = bt.bytes = 0;
  for (unsigned c = KL_CLASS_COUNT; c-- > 0 && kl_class_size[c] > KL_SMALL_MAX; ) {
    for (kl_page_t *page = heap->queues[c].first; page != NULL; page = page->next) {
      if (page->tail_dirty) {
        /* The page came dirty from another class, which may have carved
         * further (bench alloc-test: pages of 2 blocks resident whole).
         * What lies past the carved blocks goes back now; a carve that
         * comes later faults it in as on a clean page. Not counted as
         * purged: a page in use counts whole, as a clean one does. */
        page->tail_dirty = 0;
        size_t area;
        uint8_t *start = kl_page_area((kl_segment_t *)kl_align_down((uintptr_t)page, KL_SEGMENT_SIZE), page, &area);
        uintptr_t lo = kl_align_up((uintptr_t)page->start + (size_t)page->capacity * page->block_size, OS_PAGE);
        uintptr_t hi = kl_align_down((uintptr_t)start + area, OS_PAGE);
        if (hi > lo) kl_purge_batch_add(&bt, (void *)lo, hi - lo, 0);
      }
      kl_page_collect(page);
      uintptr_t was = cold_stamp(page, epoch - 1), now_stamp = cold_stamp(page, epoch);
      kl_block_t **link = &page->free;   /* raw links: no holes in the secure build */
      for (kl_block_t *b = page->free, *next; b != NULL; b = next) {
        next = b->next;
        uintptr_t *stamp = &((uintptr_t *)b)[2];
        if (!force && *stamp != was) { *stamp = now_stamp; link = &b->next; continue; }
        *link = next;
        b->next = page->cold;
        page->cold = b;
        page->holes++;
        uint8_t *lo;
        size_t n = cold_range(page, b, &lo);
        kl_purge_batch_add(&bt, lo, n, n);
        heap->counters.holes_purged += n / OS_PAGE;
      }
    }
  }
  kl_purge_batch_flush(&bt);
}

#endif
