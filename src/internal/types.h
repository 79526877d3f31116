/* types.h — every struct and every compile-time knob of the native core, in
 * one place. Sizes are chosen so that pointer -> segment is a mask, segment ->
 * page is a shift, and the fast paths read at most three cache lines. */
#ifndef KL_TYPES_H
#define KL_TYPES_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "atomic.h"

/* ---- knobs ---------------------------------------------------------------
 * Segment: 4 MiB, 4 MiB-aligned. Small pages (64 KiB) carry classes up to
 * 8 KiB (>= 8 blocks a page); medium pages (256 KiB) carry classes up to
 * 128 KiB (>= 2 blocks a page, 1 in a segment's first page, which the
 * header shortens), and one more class, KL_LARGE_CLASS, takes a whole
 * medium page (never the first) for one block of up to 256 KiB. Anything
 * larger, or aligned beyond what a class gives, is a huge block: one per
 * segment, sized to fit.
 * Why the large class: a block that grows past 128 KiB by realloc (an
 * array doubling) left medium pages behind that no huge block could use,
 * and took fresh memory for itself; from a medium page it reuses them
 * (kbench realloc 1 20, two sets of alternating runs: user+sys 0.25 ->
 * 0.20 s and 0.26 -> 0.23 s, page faults 9.8K -> 7.7K and 9.5K -> 8.4K).
 * sqlite and python unchanged; kbench large 1 2, whose 10 blocks of this
 * size now reuse pages on another schedule: peak RSS 142.6 -> 144.8 MB.
 * Why 256 KiB and not 512: every medium class in use holds at least one
 * page, and a program whose blocks move up through the classes (strings
 * grown by realloc) leaves half-used pages in each; halving the page cut
 * the realloc workload's peak RSS 25.8 -> 23.5 MB and its page faults
 * 10.5K -> 8.7K (kbench realloc 1 20, 7 alternating runs), others even. */
#define KL_SEGMENT_SHIFT      22
#define KL_SEGMENT_SIZE       ((size_t)1 << KL_SEGMENT_SHIFT)
#define KL_SMALL_PAGE_SHIFT   16
#define KL_MEDIUM_PAGE_SHIFT  18
#define KL_HUGE_PAGE_SHIFT    63                /* (p - segment) >> 63 == 0 */
#define KL_MAX_PAGES          (KL_SEGMENT_SIZE >> KL_SMALL_PAGE_SHIFT)   /* 64 */
#define KL_SEGMENT_HEADER     ((size_t)12288)   /* >= sizeof(kl_segment_t), 4 KiB multiple */
#define KL_SMALL_MAX          ((size_t)8192)
#define KL_MEDIUM_MAX         ((size_t)128 * 1024)
#define KL_DIRECT_MAX         ((size_t)1024)    /* sizes served by heap->pages_direct */
#define KL_DIRECT_COUNT       (KL_DIRECT_MAX / 16 + 1)
#define KL_CLASS_COUNT        52                /* 16 B .. 128 KiB (bins.c); then 256 KiB */
#define KL_POPULATE_BYTES     ((size_t)16 << 10) /* a clean small page past its first this many
                                                  * bytes is faulted in this many at a time (page.c) */
#define KL_POPULATE_EAGER     ((size_t)1024)    /* ... from its first byte, for blocks this big or bigger */
#define KL_MEDIUM_SHARE       4                 /* a medium request may take a free block up to 4 classes up (page.c) */
#define KL_LARGE_CLASS        51                /* 256 KiB: one block in a whole medium page */
/* Blocks up to this size take a class. The secure build's guard page at
 * the end of every page leaves no medium page room for 256 KiB. */
#define KL_LARGE_MAX          (KL_SECURE ? KL_MEDIUM_MAX : (size_t)256 * 1024)
#define KL_ALIGNED_CLASS_MAX  ((size_t)4096)    /* alignments a size class can give */
#define KL_EXTEND_BYTES       4096              /* carve a fresh page 4 KiB at a time */
#if defined(__x86_64__)
#define KL_ADDR_BITS          47                /* user space on x86-64 (4-level paging) */
#else
#define KL_ADDR_BITS          48
#endif
#define KL_SEGMENT_CACHE      8                 /* freed 4 MiB segments kept for reuse */
#define KL_PURGE_KEEP         ((size_t)4 << 20)  /* dirty free page bytes a heap keeps past the delay */
#define KL_PURGE_BATCH        64                /* ranges given back per system call (1 KiB of stack) */
#define KL_POOL_KEEP          ((size_t)128 << 20) /* most bytes pool.c keeps of freed huge blocks */
#define KL_POOL_RUNS          32                /* most runs (mappings) it keeps */
#define KL_PURGE_MIN_TAIL     ((size_t)64 << 10) /* unused reused bytes past a huge block worth an madvise */
#define KL_POOL_IDLE          100               /* purge delays it stays unused while huge blocks live */
#define KL_RECLAIM_MAX        8                 /* abandoned segments adopted per visit */
#define KL_MAX_ALLOC          ((size_t)PTRDIFF_MAX - 2 * KL_SEGMENT_SIZE)
#ifndef KL_SECURE           /* the secure build (libkeel-secure.so) */
#define KL_SECURE             0
#endif
#ifndef KL_DEBUG            /* the debug build (libkeel-debug.so) */
#define KL_DEBUG              0
#endif
#ifndef KL_FREE_CHECKS      /* reject foreign, interior and double frees (default on) */
#define KL_FREE_CHECKS        1
#endif
/* Foreign caches (free.c): a thread keeps small blocks it frees from other
 * threads' pages for its own next mallocs. Not in the secure build, whose
 * free lists are keyed per page and whose reuse order is randomized, nor
 * without the free checks, whose double-free mark tells keel_heap_visit
 * that a block waiting in some thread's cache is not live. */
#define KL_FOREIGN            (!KL_SECURE && KL_FREE_CHECKS)
/* Holes (holes.c): free OS pages inside sparse pages given back. Not in
 * the secure build (keyed, shuffled lists) nor the debug build (fill
 * patterns checked on reuse), and not without the freed mark, by which
 * it finds free blocks. */
#define KL_HOLES              (!KL_SECURE && !KL_DEBUG && KL_FREE_CHECKS)
#define KL_HOLES_QUICK        1000              /* ms: holes filled sooner were not worth making */
#define KL_HOLES_STRIKES      7                 /* at most 2^7 idle sweeps asked of a page */
#define KL_FOREIGN_CLASSES    35                /* classes 0..34: blocks of small pages (up to KL_SMALL_MAX) */
#define KL_FOREIGN_BYTES      ((size_t)64 << 10) /* most bytes kept per class, at least 8 blocks */
#define KL_FOREIGN_BATCH      256               /* most blocks per class in a heap that only frees */

typedef struct kl_block_s   kl_block_t;
typedef struct kl_page_s    kl_page_t;
typedef struct kl_segment_s kl_segment_t;
typedef struct kl_heap_s    kl_heap_t;

/* A free block. Every block is at least 16 bytes, so the second word can
 * mark it freed: free() stores the mark, the address of the block's page
 * descriptor (kl_block_mark), there and refuses a block that already
 * carries it (a double free); malloc clears it when it hands the block
 * out. A program cannot produce the mark by accident: the descriptor lies
 * in the segment header, where no block starts, so no pointer a program
 * got from keel points there. */
struct kl_block_s { kl_block_t *next; uintptr_t freed; };

/* xthread_free's fields (kl_page_s). A page holds at most 4096 blocks
 * (64 KiB / 16 B), so the count never reaches 2^16. */
#define KL_XF_COUNT_SHIFT 48
#define KL_XF_ONE         ((uintptr_t)1 << KL_XF_COUNT_SHIFT)
#define KL_XF_PTR         ((KL_XF_ONE - 1) & ~(uintptr_t)15)

#define KL_USED_FULL      ((uint32_t)1 << 31)   /* kl_page_s.used: parked in heap->full */

/* A page: blocks of one size. Two cache lines, split by who touches them:
 * the first is read by every free, local or remote, and written only when
 * the page is set up or grows; the second is the owner's working state. A
 * remote free thus reads a line the owner does not keep writing, and only
 * its CAS on xthread_free touches the owner's line. (On the 2-core machine
 * here the split measured neither faster nor slower; the line traffic it
 * avoids grows with the number of cores freeing into one page.)
 * Invariant: used == blocks handed out - local frees - collected remote
 * frees + pinned, so used == 0 means every block is back (no remote free
 * pending) and the page is not pinned (kl_page_pin).
 * Bit 31 of the field (KL_USED_FULL) says the page is parked in its heap's
 * full list: the field is then negative as an int32, and free's one
 * decrement-and-branch (kl_dec_le0) catches both a page that empties and a
 * parked page that got a block back. kl_page_used masks the bit off. */
struct __attribute__((aligned(64))) kl_page_s {
  /* ---- line 1: read-mostly. free() validates a pointer with start,
   * div_magic and block_limit: (p - start) * div_magic < block_limit iff p
   * starts a carved block (kl_page_has_block). */
  uint8_t    *start;            /* first block */
  size_t      start_off;        /* start - its segment: free's fast path has the offset in the segment */
  uint64_t    block_limit;      /* capacity * (block_size * div_magic); grows while other
                                 * threads read it: relaxed atomics */
  uint64_t    div_magic;        /* 2^64 / block_size + 1, rounded down (kl_div_magic) */
  uintptr_t   list_key;         /* secure build: free-list links are XORed with it */
  size_t      block_size;       /* huge: usable bytes of the one block */
  _Atomic(kl_heap_t *) heap;    /* owner heap; NULL while abandoned */
  uint8_t     in_use;           /* handed out by its segment */
  uint8_t     class_idx;
  uint8_t     index;            /* position in the segment */
  uint8_t     foreign_ok;       /* its blocks may wait in other threads' foreign caches
                                 * (free.c): small, and not a first-class heap's */
  /* holes.c (owner only; written by its sweeps, which visit idle pages): */
  uint8_t     holes_strikes;    /* holes filled again too soon */
  uint8_t     holes_idle;       /* sweeps in a row that found the page idle */
  uint8_t     tail_dirty;       /* medium page handed out dirty: past its carved blocks
                                 * may lie memory another class wrote (holes.c) */
  uint8_t     populate;         /* small page handed out clean: carving faults its memory
                                 * in ahead, a KL_POPULATE_BYTES chunk per call (page.c) */
  /* ---- line 2: the owner's (remote threads touch only xthread_free). */
  __attribute__((aligned(64)))
  kl_block_t *free;             /* allocation pops here (owner only) */
  kl_block_t *local_free;       /* the owner's frees (owner only) */
  uint32_t    used;             /* see invariant above (owner only) */
  bool        is_purged;        /* not in use, memory given back to the OS */
  uint8_t     pinned;           /* 1: counted once more in used (kl_page_pin) */
  uint16_t    holes;            /* OS pages given back while in use, one bit each; a
                                 * medium page: how many cold blocks (holes.c) */
  uint32_t    capacity;         /* blocks carved so far */
  uint32_t    reserved;         /* blocks that fit */
  /* Frees from other threads: a list head, below 2^48, and in the top 16
   * bits how many blocks the list holds, so the owner takes the list
   * without walking it (a walk is a cache miss per block, each written by
   * another core). Bit 0 set: the owner parked this page in its full list
   * and wants to hear of the next remote free (see free.c). */
  _Atomic(uintptr_t) xthread_free;
  kl_page_t  *next, *prev;      /* in a heap queue */
  union {
    uint64_t  purge_at;         /* not in use, dirty: give back to the OS at (ms); 0 = clean.
                                 * In use, blocks up to 4 KiB: holes.c's idle signature,
                                 * the time the page's holes were made while it has some, or 0 */
    kl_block_t *cold;           /* in use, medium page: its cold blocks (holes.c), whose
                                 * count is `holes`; NULL (purge_at 0) when handed out */
  };
};
_Static_assert(sizeof(struct kl_page_s) == 128, "a page is two cache lines");

typedef enum { KL_SEG_SMALL = 0, KL_SEG_MEDIUM = 1, KL_SEG_HUGE = 2 } kl_segkind_t;
/* No segment: not NULL, which a pointer below 4 MiB (NULL itself) masks to. */
#define KL_SEG_NONE ((kl_segment_t *)(uintptr_t)1)

/* A segment header sits at the start of its 4 MiB-aligned region. */
struct kl_segment_s {
  /* Owner: the owning thread's kl_prim_thread_id(), 0 when abandoned or huge.
   * Written by the owner (release) when it adopts; read relaxed by free: a
   * thread only ever sees its own id there after it stored it itself. */
  _Atomic(uintptr_t) thread_id;
  uint32_t     kind;
  uint32_t     page_shift;
  uint32_t     page_count;
  uint32_t     used_pages;
  uint32_t     dirty_pages;     /* free pages not yet purged (purge_at set), so a page
                                 * allocation need not scan for one (segment.c) */
  size_t       mapped_size;     /* bytes mapped from the OS */
  /* Bytes from the segment's start that may have been written since it was
   * mapped or last purged: a huge block's segment wrote only its block.
   * A cached segment reused for a huge block, and the cache's purge, need
   * give back only this much (segment.c: fewer and smaller madvise calls,
   * each of which interrupts every core running the process). */
  size_t       dirty_end;
  size_t       block_offset;    /* huge: block start - segment start */
  kl_heap_t   *heap;            /* owner heap (owner only) */
  kl_segment_t *next, *prev;    /* heap->segments: all it owns */
  kl_segment_t *fnext, *fprev;  /* heap->free_segs[kind]: has a free page */
  kl_segment_t *abandoned_next; /* on the global abandoned stack */
  bool         in_free_list;
  bool         is_zero;         /* fresh from the OS, never written */
  bool         is_purged;       /* in the cache, pages given back to the OS */
  uint64_t     purge_at;        /* in the cache: when to give its pages back (ms) */
  /* Huge blocks of a first-class heap (keel_heap_*) stay on that heap's
   * `huge` list (next/prev) so keel_heap_destroy can free them. State:
   * 0 owned by huge_heap, 1 freed by some thread (the owner unlinks and
   * unmaps it), 2 plain (no heap: whoever frees it unmaps it).
   * huge_heap is a relaxed atomic: a free from another thread reads it
   * (kl_segment_huge_release) while the owner may clear it (delete). */
  _Atomic(kl_heap_t *) huge_heap;
  _Atomic(int) huge_state;
  /* The page of each 64 KiB unit (KL_MAX_PAGES units): free finds a
   * block's page with a shift, a mask and one load, for every kind (a
   * medium page fills 4 entries, a huge block all of them). Addresses, so
   * a huge segment that mremap moves sets them again (segment.c). */
  kl_page_t   *page_map[KL_MAX_PAGES];
  kl_page_t    pages[KL_MAX_PAGES];
};
_Static_assert(sizeof(kl_segment_t) <= KL_SEGMENT_HEADER, "segment header too big");

typedef struct kl_page_queue_s { kl_page_t *first, *last; } kl_page_queue_t;

/* Per-heap counters. Only the heap's thread writes them, with plain
 * increments (one instruction on the fast paths); keel_stats_get reads them
 * from any thread with relaxed atomic loads (stats.c), which sees the old or
 * the new value of each word: all statistics need. They are cumulative over
 * every thread that used this heap struct (heaps are recycled, never freed),
 * so a process total is the sum over all heap structs ever made. */
/* The family members counted on their own (malloc and free are not: their
 * counts derive from the per-class counters, so the fast paths stay as they
 * are). Allocating ones count calls that returned a block (those blocks are
 * also in `allocs`); free_sized counts calls with a block (also in `frees`);
 * realloc, reallocarray and malloc_usable_size count every call. */
typedef enum {
  KL_CALL_CALLOC, KL_CALL_REALLOC, KL_CALL_REALLOCARRAY, KL_CALL_FREE_SIZED,
  KL_CALL_ALIGNED_ALLOC, KL_CALL_POSIX_MEMALIGN, KL_CALL_MEMALIGN, KL_CALL_VALLOC, KL_CALL_PVALLOC,
  KL_CALL_USABLE_SIZE, KL_CALL_COUNT
} kl_call_t;

typedef struct kl_counters_s {
  size_t allocs[KL_CLASS_COUNT];   /* blocks handed out, by class, except: */
  /* the fast path's, by (size + 15) >> 4, the index it already holds, so
   * it loads no class (stats.c maps an index to its class, kl_direct_class) */
  size_t direct_allocs[KL_DIRECT_COUNT];
  size_t frees[KL_CLASS_COUNT];    /* blocks freed by this thread, by class */
  size_t calls[KL_CALL_COUNT];     /* by kl_call_t */
  size_t realloc_allocs, realloc_frees;  /* blocks realloc took and gave back */
  size_t pages_purged, segments_reclaimed, segments_abandoned;
  size_t holes_purged;             /* OS pages given back inside pages in use (holes.c) */
  size_t slow_calls;               /* kl_malloc_generic entries */
  size_t remote_frees;             /* frees of other threads' blocks not kept (stats.c samples) */
  ptrdiff_t in_use_published;      /* this heap's share of kl_os_stats.in_use_sampled */
} kl_counters_t;

/* A heap: one per thread. Only its thread touches anything here except
 * has_delayed, which other threads set. Heap structs are recycled, never
 * unmapped, so a stale pointer to one is always safe to write through. */
struct kl_heap_s {
  kl_page_t      *pages_direct[KL_DIRECT_COUNT];  /* (size+15)>>4 -> page */
  /* The segment of this thread's last free into its own default heap, or
   * KL_SEG_NONE: free's fast path (free.c) takes a pointer into it for a
   * local free without the segment map and the owner test. Only a default
   * heap's own small or medium segments go here, and segment_free and
   * abandonment clear it, so a hit is always a live segment this thread
   * owns. seg_cache_map is its page map, or kl_page_map_empty (whose pages
   * hold no block) for KL_SEG_NONE: set both with kl_heap_set_seg_cache. */
  kl_segment_t   *seg_cache;
  kl_page_t     *const *seg_cache_map;
  kl_page_queue_t queues[KL_CLASS_COUNT];
  kl_page_queue_t full;
  uintptr_t       thread_id;
  kl_segment_t   *segments;        /* every small/medium segment owned */
  kl_segment_t   *free_segs[2];    /* small, medium: those with a free page */
  uint64_t        purge_next;      /* no dirty free page is due before this (ms) */
  uint64_t        holes_next;      /* holes.c's next sweep is due then (ms) */
  uint64_t        cold_next;       /* holes.c's next sweep of medium pages is due then (ms) */
  uint32_t        cold_epoch;      /* that sweep's count: free blocks are stamped with it */
  /* First-class heaps (keel_heap_new): is_user, the thread's default heap as
   * parent, linked on the parent's `users`; `huge` lists their huge blocks. */
  bool            is_user;
  kl_heap_t      *parent, *users, *user_next, *user_prev;
  kl_segment_t   *huge;
  /* Foreign caches, by class: blocks of other threads' pages that this
   * thread freed, linked through `next` (plain pointers: the list spans
   * pages). Still counted in their pages' `used`, so their pages stay.
   * Each is a page descriptor that no segment holds, so that malloc's fast
   * path can pop it as a page (kl_malloc_foreign installs it in
   * pages_direct): its `free` is the list, and its `used` is the room,
   * how many more blocks it takes before they go back to the owners,
   * which a pop counts up as it counts a page's used (0 in a new heap:
   * the first free finds the cache full, and the flush of an empty list
   * sets the room). No other field is used, except in a heap that only
   * frees, where each holds one run of one page instead (free.c's
   * foreign_run_add) and its room stays 0. */
  kl_page_t       foreign[KL_FOREIGN_CLASSES];
  /* Made by a free (free.c): until this thread's first pop, its caches
   * only batch frees (page.c's foreign_pop says why). */
  bool            frees_only;
  /* A realloc is moving a block to a bigger class: a fresh page may be
   * another class's empty one (page.c's page_steal). */
  bool            growing;
  uint32_t        seg_depth;       /* the owner's nesting of kl_segment_lock (segment.c) */
  /* Kept across recycling (kl_heap_init_thread clears only what is above,
   * and has_delayed with an atomic store). */
  kl_heap_t      *all_next;        /* every heap struct ever made (stats.c) */
  kl_heap_t      *pool_next;       /* on the recycled-heap stack; a stale popper may
                                    * read it at any time: relaxed atomics (heap.c) */
  /* The purger thread gives an idle heap's free pages back (segment.c,
   * heaps_purge_idle). seg_lock guards the heap's segment list and the
   * state of their free pages: the owner holds it (1) across every change
   * to them (kl_segment_lock), the purger (2) while it looks. Kept across
   * recycling: the purger may hold it while a new owner clears the heap;
   * seg_live (under the lock) says whether there is anything to look at. */
  _Atomic(int)    seg_lock;
  _Atomic(int)    seg_busy;        /* the owner took seg_lock since the purger last looked */
  bool            seg_live;        /* a live thread's default heap */
  /* A parked full page got a remote free. Other threads set it through a
   * page's heap pointer, which may be stale (the struct recycled), so it is
   * never cleared with the memset above: only with atomic stores. */
  _Atomic(uintptr_t) has_delayed;
  kl_counters_t   counters;
};
#endif
