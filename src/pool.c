/* pool.c — the dirty pages of freed huge blocks, kept to build new ones.
 *
 * A huge block (one per mapping, segment.c) used to fault in every page
 * when it was made and unmap them all when freed, so a program that keeps
 * replacing large blocks paid a page fault, and the kernel's zeroing, per
 * 4 KiB of every block. Here a freed huge block's mapping stays resident as
 * a run of dirty pages. A new huge block still gets a fresh 4 MiB-aligned
 * reservation, but kl_pool_fill then moves runs onto its start with mremap:
 * page-table entries move, no page faults and nothing is copied, and only
 * what the pool cannot cover is fresh memory. On bench large/1t
 * (malloc-large) that took page faults from ~135,000 to ~35,000 (tcmalloc:
 * ~43,000), at the same peak memory.
 *
 * Bounds, so that the pool never makes keel fat:
 *  - pooled bytes <= KL_POOL_KEEP while the program holds a huge block, and
 *    none once it holds none: freeing the last one empties the pool at once.
 *    A new huge block takes pool pages before any fresh page faults in, so
 *    the pool lowers faults without raising peak memory (bench large/1t);
 *  - runs unused for KL_POOL_IDLE x KEEL_PURGE_DELAY are unmapped (by the
 *    purger thread when the program makes no calls): a pool is worth its
 *    memory only while huge blocks keep coming and going;
 *  - at most KL_POOL_RUNS runs (each is a kernel mapping);
 *  - KEEL_PURGE_DELAY=0 (purge at once) means no pool.
 * Runs leave oldest first. One spin lock guards the runs, held across the
 * mremap and munmap calls (the kernel serializes those on the address
 * space anyway); fork takes it first so the child never inherits it held.
 * The secure build has no pool: every huge block gets fresh memory at a
 * random address (segment.c). */
#include <string.h>
#include "internal/internal.h"

#if !KL_SECURE
typedef struct { uint8_t *addr; size_t size; } run_t;

static _Atomic(int) pool_lock;
static run_t runs[KL_POOL_RUNS];          /* under the lock; oldest first */
static unsigned run_count;                /* under the lock */
static uint64_t last_use;                 /* ms of the last fill or give; under the lock */
/* Bytes in runs. Written under the lock; read relaxed without it as a hint
 * (a stale value only skips or takes the lock once more). */
static _Atomic(size_t) pooled;

static void run_remove(unsigned i) {
  memmove(&runs[i], &runs[i + 1], (run_count - i - 1) * sizeof runs[0]);
  run_count--;
}

/* Unmap run i (under the lock). */
static void run_drop(unsigned i) {
  kl_prim_free(runs[i].addr, runs[i].size);
  kl_stats_mapped(-(ptrdiff_t)runs[i].size);
  kl_store_relaxed(&pooled, kl_load_relaxed(&pooled) - runs[i].size);
  run_remove(i);
}

/* What the pool may hold: nothing once the program holds no huge block
 * (it is done with them), else KL_POOL_KEEP. A cap proportional to the
 * live huge bytes instead kept half as many pages on bench large/1t (a few
 * big blocks next to many small ones), for no less peak memory. */
static size_t budget(void) {
  return kl_load_relaxed(&kl_os_stats.huge_bytes_live) == 0 ? 0 : KL_POOL_KEEP;   /* relaxed: a statistic */
}

void kl_pool_give(void *addr, size_t size) {
  if (kl_option(KL_OPT_PURGE_DELAY) == 0 || size > KL_POOL_KEEP) {
    kl_prim_free(addr, size);
    kl_stats_mapped(-(ptrdiff_t)size);
    return;
  }
  kl_lock(&pool_lock);
  last_use = kl_prim_clock_ms();
  if (run_count == KL_POOL_RUNS) run_drop(0);
  runs[run_count++] = (run_t){ (uint8_t *)addr, size };
  kl_store_relaxed(&pooled, kl_load_relaxed(&pooled) + size);
  /* Older runs leave to fit the budget, but the run just given stays: the
   * program that freed a huge block likely makes the next one soon, and
   * fill trims after taking. The block just freed no longer counts as
   * live, so freeing the last huge block empties the pool here. */
  size_t keep = budget();
  while (kl_load_relaxed(&pooled) > keep && (keep == 0 || run_count > 1)) run_drop(0);
  kl_unlock(&pool_lock);
}

/* Moves pooled pages onto the start of the fresh mapping [target, target +
 * size) and returns how many bytes they cover: those hold old contents, the
 * rest is still untouched zero memory. Picks the smallest run that covers
 * the rest of the need (one move), else the largest (fewest moves); a run
 * is split by moving only its front. */
size_t kl_pool_fill(uint8_t *target, size_t size) {
  if (kl_load_relaxed(&pooled) == 0) return 0;
  size_t done = 0;
  kl_lock(&pool_lock);
  while (done < size && run_count > 0) {
    size_t need = size - done;
    unsigned pick = 0;
    for (unsigned i = 1; i < run_count; i++) {
      bool covers = runs[i].size >= need, best_covers = runs[pick].size >= need;
      if (covers ? !best_covers || runs[i].size < runs[pick].size
                 : !best_covers && runs[i].size > runs[pick].size) pick = i;
    }
    size_t n = runs[pick].size < need ? runs[pick].size : need;
    /* A run that will not move (it spans two kernel mappings, or the
     * kernel is out of map entries) is given back rather than retried. */
    if (!kl_prim_move(runs[pick].addr, n, target + done, n)) { run_drop(pick); continue; }
    /* Those pages now belong to the target's mapping, counted by its maker. */
    kl_stats_mapped(-(ptrdiff_t)n);
    kl_store_relaxed(&pooled, kl_load_relaxed(&pooled) - n);
    runs[pick].addr += n;
    runs[pick].size -= n;
    if (runs[pick].size == 0) run_remove(pick);
    done += n;
  }
  if (done != 0) last_use = kl_prim_clock_ms();
  for (size_t keep = budget(); kl_load_relaxed(&pooled) > keep; ) run_drop(0);
  kl_unlock(&pool_lock);
  return done;
}

/* Unmap every run if `all` (malloc_trim, the OS refusing memory) or if the
 * pool sat unused for KL_POOL_IDLE purge delays. */
bool kl_pool_purge(bool all) {
  if (kl_load_relaxed(&pooled) == 0) return false;
  bool any = false;
  kl_lock(&pool_lock);
  if (all || kl_prim_clock_ms() - last_use >= (uint64_t)kl_option(KL_OPT_PURGE_DELAY) * KL_POOL_IDLE) {
    any = run_count != 0;
    while (run_count != 0) run_drop(run_count - 1);
  }
  kl_unlock(&pool_lock);
  return any;
}

static void pool_acquire(void) { kl_lock(&pool_lock); }
static void pool_release(void) { kl_unlock(&pool_lock); }
void kl_pool_atfork_init(void) { kl_prim_atfork(pool_acquire, pool_release, pool_release); }

#else
size_t kl_pool_fill(uint8_t *target, size_t size) { (void)target; (void)size; return 0; }
void kl_pool_give(void *addr, size_t size) { kl_prim_free(addr, size); kl_stats_mapped(-(ptrdiff_t)size); }
bool kl_pool_purge(bool all) { (void)all; return false; }
void kl_pool_atfork_init(void) {}
#endif
