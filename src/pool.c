/* pool.c — the dirty pages of freed huge blocks, kept to build new ones.
 *
 * A huge block (one per mapping, segment.c) faults in every page when it is
 * made, and on the VMs we measure on a page fault costs ~20 us, more than a
 * malloc-large loop spends on anything else. So a freed huge mapping stays
 * resident here as a run, and a new huge block is made from a run:
 *  - huge mappings are whole segments (4 MiB multiples, on a segment
 *    boundary), so every run is too and any run covering a request is split
 *    in place: the block is the run's front, and no system call is made;
 *  - a run too small for the request is moved onto a fresh reservation and
 *    grown to size there by kl_prim_move (one mremap: page tables move,
 *    nothing faults or is copied; only the growth is fresh memory). Both
 *    ends sit on segment boundaries, so the kernel moves whole page tables;
 *    a move between unequal offsets costs a third of a fault per page here.
 *  - a huge block that realloc grows takes the front of the run right
 *    after it (kl_pool_take_at), in place: no system call, no fault.
 * Runs that touch merge, so a mapping carved into blocks and freed block by
 * block becomes one run again. A move needs its source within one kernel
 * mapping; kl_prim_move checks that and refuses before changing anything
 * (merged runs of separate mappings, or a block a program split with
 * mprotect), and the run is then unmapped.
 *
 * Bounds, so that the pool never makes keel fat:
 *  - pooled bytes <= KL_POOL_KEEP; a new run pushes the oldest out;
 *  - at most KL_POOL_RUNS runs;
 *  - unused for KEEL_PURGE_DELAY (KL_POOL_IDLE times that while the program
 *    holds a huge block: it is likely to make more) -> unmapped, by the
 *    purger thread when the program makes no calls; KEEL_PURGE_DELAY=0
 *    means no pool;
 *  - malloc_trim, and the OS refusing memory, empty it.
 * Measured on bench large/1t (`kbench large 1 2`, 8 live blocks of 64 KiB to
 * 32 MiB): page faults 134,865 -> 51,500 (tcmalloc 42,700), user+sys time
 * 2.2 s -> 1.0 s (tcmalloc 0.7), peak RSS 139.6 -> 142 MB (mimalloc 143.7).
 * One spin lock guards the table; the system calls run outside it, on
 * pieces already taken out. Fork takes it first so the child never
 * inherits it held. The secure build has no pool: every huge block gets
 * fresh memory at a random address. */
#include <string.h>
#include "internal/internal.h"

#if !KL_SECURE
typedef struct { uint8_t *addr; size_t size; } run_t;

static _Atomic(int) pool_lock;
static run_t runs[KL_POOL_RUNS];          /* under the lock; oldest first */
static unsigned run_count;                /* under the lock */
static uint64_t last_use;                 /* ms of the last take or give; under the lock */
/* Bytes in runs. Written under the lock; read relaxed without it as a hint
 * (a stale value only skips the pool once, or takes the lock for nothing). */
static _Atomic(size_t) pooled;

static void run_remove(unsigned i) {
  memmove(&runs[i], &runs[i + 1], (run_count - i - 1) * sizeof runs[0]);
  run_count--;
}

/* Take run i out of the table (under the lock); the caller unmaps it. */
static run_t run_detach(unsigned i) {
  run_t r = runs[i];
  kl_store_relaxed(&pooled, kl_load_relaxed(&pooled) - r.size);
  run_remove(i);
  return r;
}

static void unmap(run_t r) {
  kl_prim_free(r.addr, r.size);
  kl_stats_mapped(-(ptrdiff_t)r.size);
}

/* Adds a run, merging it with runs that touch it, so blocks carved from
 * one mapping and freed one by one become one run again (under the lock;
 * `out` collects runs pushed out to make room, for the caller to unmap). */
static void run_add(uint8_t *addr, size_t size, run_t *out, unsigned *n) {
  for (unsigned i = 0; i < run_count; ) {
    if (runs[i].addr + runs[i].size == addr || addr + size == runs[i].addr) {
      run_t r = run_detach(i);
      if (r.addr < addr) addr = r.addr;
      size += r.size;
    } else {
      i++;
    }
  }
  if (size > KL_POOL_KEEP) { out[(*n)++] = (run_t){ addr, size }; return; }
  /* Older runs leave to make room; the run just given stays, since the
   * program that freed a huge block likely makes the next one soon. */
  while (run_count > 0 && (run_count == KL_POOL_RUNS || kl_load_relaxed(&pooled) + size > KL_POOL_KEEP))
    out[(*n)++] = run_detach(0);
  runs[run_count++] = (run_t){ addr, size };
  kl_store_relaxed(&pooled, kl_load_relaxed(&pooled) + size);
}

void kl_pool_give(void *addr, size_t size) {
  if (kl_option(KL_OPT_PURGE_DELAY) == 0) { unmap((run_t){ addr, size }); return; }
  run_t out[KL_POOL_RUNS + 1];
  unsigned n = 0;
  kl_lock(&pool_lock);
  last_use = kl_prim_clock_ms();
  run_add(addr, size, out, &n);
  kl_unlock(&pool_lock);
  while (n > 0) unmap(out[--n]);
}

/* Take the first n bytes of run i out of the pool (under the lock). */
static uint8_t *run_take_front(unsigned i, size_t n) {
  uint8_t *addr = runs[i].addr;
  runs[i].addr += n;
  runs[i].size -= n;
  kl_store_relaxed(&pooled, kl_load_relaxed(&pooled) - n);
  if (runs[i].size == 0) run_remove(i);
  last_use = kl_prim_clock_ms();
  return addr;
}

/* The smallest run of at least `size` bytes, else the largest; under the
 * lock, run_count > 0. */
static unsigned pick(size_t size) {
  unsigned best = 0;
  for (unsigned i = 1; i < run_count; i++) {
    bool covers = runs[i].size >= size, best_covers = runs[best].size >= size;
    if (covers ? !best_covers || runs[i].size < runs[best].size
               : !best_covers && runs[i].size > runs[best].size) best = i;
  }
  return best;
}

void *kl_pool_take(size_t size, size_t *dirty) {
  *dirty = 0;
  if (kl_load_relaxed(&pooled) == 0) return NULL;
  kl_lock(&pool_lock);
  if (run_count == 0) { kl_unlock(&pool_lock); return NULL; }
  unsigned i = pick(size);
  /* Take the run's front out: all of the block if it covers it (no system
   * call at all, the pages stay where they are), else the whole run. */
  size_t n = runs[i].size < size ? runs[i].size : size;
  run_t src = { run_take_front(i, n), n };
  kl_unlock(&pool_lock);
  *dirty = n;
  if (n == size) return src.addr;
  /* Too small: move it onto a fresh reservation and grow it there. Source
   * and target both sit on segment boundaries, so the kernel can move
   * whole page tables rather than one entry per page. */
  uint8_t *target = kl_prim_alloc_aligned(size, KL_SEGMENT_SIZE, 0);
  if (target == NULL) { unmap(src); *dirty = 0; return NULL; }
  kl_stats_mapped((ptrdiff_t)(size - n));   /* the source's bytes were counted already */
  if (!kl_prim_move(src.addr, n, target, size)) { unmap(src); *dirty = 0; kl_stats_mapped((ptrdiff_t)n); }
  return target;
}

/* The first `size` bytes of the run that starts at addr, if there is one
 * that long: a huge block growing by realloc takes the pooled pages right
 * after it (what its own earlier shrink, or a block freed next to it, left
 * there) with no system call and no fault, where a move would map the
 * growth fresh. The bytes stay counted as mapped. */
bool kl_pool_take_at(void *addr, size_t size) {
  if (kl_load_relaxed(&pooled) == 0) return false;
  bool taken = false;
  kl_lock(&pool_lock);
  for (unsigned i = 0; i < run_count; i++) {
    if (runs[i].addr != addr) continue;
    if (runs[i].size >= size) { run_take_front(i, size); taken = true; }
    break;
  }
  kl_unlock(&pool_lock);
  return taken;
}

/* Unmap every run if `all` (malloc_trim, the OS refusing memory) or if the
 * pool sat unused for KEEL_PURGE_DELAY. */
bool kl_pool_purge(bool all) {
  if (kl_load_relaxed(&pooled) == 0) return false;
  run_t out[KL_POOL_RUNS];
  unsigned n = 0;
  kl_lock(&pool_lock);
  uint64_t idle = (uint64_t)kl_option(KL_OPT_PURGE_DELAY);
  if (kl_load_relaxed(&kl_os_stats.huge_live) != 0) idle *= KL_POOL_IDLE;   /* relaxed: a statistic */
  if (all || kl_prim_clock_ms() - last_use >= idle)
    while (run_count != 0) out[n++] = run_detach(run_count - 1);
  kl_unlock(&pool_lock);
  for (unsigned k = 0; k < n; k++) unmap(out[k]);
  return n != 0;
}

static void pool_acquire(void) { kl_lock(&pool_lock); }
static void pool_release(void) { kl_unlock(&pool_lock); }
void kl_pool_atfork_init(void) { kl_prim_atfork(pool_acquire, pool_release, pool_release); }

#else
void *kl_pool_take(size_t size, size_t *dirty) { (void)size; *dirty = 0; return NULL; }
void kl_pool_give(void *addr, size_t size) { kl_prim_free(addr, size); kl_stats_mapped(-(ptrdiff_t)size); }
bool kl_pool_take_at(void *addr, size_t size) { (void)addr; (void)size; return false; }
bool kl_pool_purge(bool all) { (void)all; return false; }
void kl_pool_atfork_init(void) {}
#endif
