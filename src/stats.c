/* stats.c — counters. OS-level figures are process-wide atomics touched only
 * on the slow paths (map, unmap); per-heap counters live in the heap (no
 * atomics on the fast path) and are folded into `dead` when a thread exits. */
#include "internal/internal.h"

kl_os_stats_t kl_os_stats;
static struct { _Atomic(size_t) malloc_calls, pages_fresh, pages_retired,
                segments_reclaimed, segments_abandoned, threads; } dead;

void kl_stats_mapped(ptrdiff_t delta) {
  /* Relaxed: statistics, no other memory depends on them. */
  size_t now = atomic_fetch_add_explicit(&kl_os_stats.mapped, (size_t)delta, memory_order_relaxed) + (size_t)delta;
  atomic_fetch_add_explicit(&kl_os_stats.os_calls, 1, memory_order_relaxed);
  size_t peak = kl_load_relaxed(&kl_os_stats.mapped_peak);
  while (delta > 0 && now > peak &&
         !kl_cas_weak(&kl_os_stats.mapped_peak, &peak, now, memory_order_relaxed)) {}
}

void kl_stats_merge_dead(const kl_heap_t *heap) {
  const kl_counters_t *c = &heap->counters;
  atomic_fetch_add_explicit(&dead.malloc_calls, c->malloc_calls, memory_order_relaxed);
  atomic_fetch_add_explicit(&dead.pages_fresh, c->pages_fresh, memory_order_relaxed);
  atomic_fetch_add_explicit(&dead.pages_retired, c->pages_retired, memory_order_relaxed);
  atomic_fetch_add_explicit(&dead.segments_reclaimed, c->segments_reclaimed, memory_order_relaxed);
  atomic_fetch_add_explicit(&dead.segments_abandoned, c->segments_abandoned, memory_order_relaxed);
  atomic_fetch_add_explicit(&dead.threads, 1, memory_order_relaxed);
}
