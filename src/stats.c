/* stats.c — statistics: keel_stats_get, keel_stats_print, KEEL_SHOW_STATS.
 *
 * Where the numbers come from:
 *  - per-heap counters (types.h): blocks handed out and freed by class and
 *    the family members other than malloc and free (kl_call_t), plain
 *    increments by the owner, summed here over every heap struct ever made
 *    (the list never shrinks). malloc and free have no counter of their own,
 *    so their fast paths stay as they are: their counts are the blocks
 *    handed out and freed less those the other members account for;
 *  - process-wide atomics (kl_os_stats), touched only on slow paths:
 *    mapped and purged bytes, huge blocks, pages per class, threads;
 *  - bytes in use at peak: each heap publishes its net bytes in use every
 *    64 slow-path calls, every 256 frees of other threads' blocks that it
 *    does not keep, whenever its foreign cache sends blocks back (free.c)
 *    and at thread exit, and every read publishes the reader's; a thread
 *    without a heap (past its exit hook, or out of memory: free.c) takes
 *    its frees out of the sum every 256 of them. The peak is the highest
 *    published sum: it can miss a short spike between two samples, and
 *    overstate one by the frees of blocks made elsewhere that a thread has
 *    not published yet (at most 255, plus what its foreign caches hold). */
#include <stdio.h>
#include <string.h>
#include "internal/internal.h"
#include "keel.h"

kl_os_stats_t kl_os_stats;
static _Atomic(kl_heap_t *) all_heaps;

static void max_update(_Atomic(size_t) *peak, size_t now) {
  size_t p = kl_load_relaxed(peak);
  while (now > p && !kl_cas_weak(peak, &p, now, memory_order_relaxed)) {}
}
static size_t committed_now(void) {
  size_t m = kl_load_relaxed(&kl_os_stats.mapped), p = kl_load_relaxed(&kl_os_stats.purged);
  return m > p ? m - p : 0;
}

/* Relaxed everywhere in this file: statistics order nothing else. */
void kl_stats_mapped(ptrdiff_t delta) {
  atomic_fetch_add_explicit(&kl_os_stats.mapped, (size_t)delta, memory_order_relaxed);
  atomic_fetch_add_explicit(&kl_os_stats.os_calls, 1, memory_order_relaxed);
  if (delta > 0) max_update(&kl_os_stats.committed_peak, committed_now());
}
void kl_stats_purged(ptrdiff_t delta) {
  atomic_fetch_add_explicit(&kl_os_stats.purged, (size_t)delta, memory_order_relaxed);
  if (delta > 0) atomic_fetch_add_explicit(&kl_os_stats.os_calls, 1, memory_order_relaxed);
  else max_update(&kl_os_stats.committed_peak, committed_now());
}

void kl_stats_heap_made(kl_heap_t *heap) {
  kl_heap_t *head = kl_load_relaxed(&all_heaps);
  /* Release: a reader walking the list sees the link we wrote. */
  do { heap->all_next = head; } while (!kl_cas_weak(&all_heaps, &head, heap, memory_order_release));
}

/* Acquire pairs with the release push above: the structs' links are set. */
kl_heap_t *kl_stats_heaps(void) { return kl_load_acquire(&all_heaps); }

/* A thread that frees what others made may never take a malloc slow path,
 * so it publishes its (negative) net bytes on such frees too (see the top
 * of this file); without that, the sum held the makers' allocations but
 * not these frees, and the peak grew with the total ever allocated
 * (producer/consumer). A thread without a heap (free_remote_other says
 * when) keeps here the bytes it freed and has not yet taken out of the
 * published sum: one shared atomic per 256 frees rather than one per free. */
static __thread struct { size_t bytes; unsigned n; } orphan_pending __attribute__((tls_model("initial-exec")));

void kl_stats_count_orphan_free(unsigned c) {
  atomic_fetch_add_explicit(&kl_os_stats.orphan_frees[c], 1, memory_order_relaxed);
  orphan_pending.bytes += kl_class_size[c];
  if ((++orphan_pending.n & 255) == 0) {
    atomic_fetch_sub_explicit(&kl_os_stats.in_use_sampled, (ptrdiff_t)orphan_pending.bytes, memory_order_relaxed);
    orphan_pending.bytes = 0;
  }
}

/* Another thread's plain counter: a relaxed atomic load of a word it writes
 * with plain stores. Not instrumented for ThreadSanitizer on purpose: the
 * race is the design (see types.h). */
#define PEEK(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static ptrdiff_t heap_net_bytes(const kl_heap_t *h) {
  ptrdiff_t net = 0;
  for (unsigned c = 0; c < KL_CLASS_COUNT; c++)
    net += ((ptrdiff_t)PEEK(h->counters.allocs[c]) - (ptrdiff_t)PEEK(h->counters.frees[c])) * kl_class_size[c];
  for (unsigned i = 0; i < KL_DIRECT_COUNT; i++)
    net += (ptrdiff_t)PEEK(h->counters.direct_allocs[i]) * kl_class_size[kl_direct_class[i]];
  return net;
}

__attribute__((no_sanitize("thread")))
void kl_stats_sample(kl_heap_t *heap) {
  ptrdiff_t net = heap_net_bytes(heap);
  ptrdiff_t delta = net - heap->counters.in_use_published;
  heap->counters.in_use_published = net;
  ptrdiff_t sum = atomic_fetch_add_explicit(&kl_os_stats.in_use_sampled, delta, memory_order_relaxed) + delta;
  sum += (ptrdiff_t)kl_load_relaxed(&kl_os_stats.huge_bytes_live);
  if (sum > 0) max_update(&kl_os_stats.in_use_peak, (size_t)sum);
}

__attribute__((no_sanitize("thread")))
static void stats_get(keel_stats_t *out) {
  memset(out, 0, sizeof *out);
  kl_heap_t *self = kl_heap_get();
  if (self != &kl_heap_empty) kl_stats_sample(self);
  size_t allocs[KL_CLASS_COUNT] = { 0 }, frees[KL_CLASS_COUNT] = { 0 };
  size_t calls[KL_CALL_COUNT] = { 0 }, r_allocs = 0, r_frees = 0;
  for (kl_heap_t *h = kl_stats_heaps(); h != NULL; h = h->all_next) {
    const kl_counters_t *c = &h->counters;
    for (unsigned i = 0; i < KL_CLASS_COUNT; i++) { allocs[i] += PEEK(c->allocs[i]); frees[i] += PEEK(c->frees[i]); }
    for (unsigned i = 0; i < KL_DIRECT_COUNT; i++) allocs[kl_direct_class[i]] += PEEK(c->direct_allocs[i]);
    for (unsigned i = 0; i < KL_CALL_COUNT; i++) calls[i] += PEEK(c->calls[i]);
    r_allocs += PEEK(c->realloc_allocs); r_frees += PEEK(c->realloc_frees);
    out->pages_purged += PEEK(c->pages_purged);
    out->holes_purged += PEEK(c->holes_purged);
    out->segments_reclaimed += PEEK(c->segments_reclaimed);
    out->segments_abandoned += PEEK(c->segments_abandoned);
  }
  size_t total_allocs = 0, total_frees = 0;
  _Static_assert(KL_LARGE_CLASS <= KEEL_STATS_CLASSES_ALL && KL_LARGE_CLASS == KL_CLASS_COUNT - 1,
                 "every class but the large one has an entry in the public table");
  for (unsigned i = 0; i < KL_CLASS_COUNT; i++) {
    frees[i] += kl_load_relaxed(&kl_os_stats.orphan_frees[i]);
    size_t live = allocs[i] > frees[i] ? allocs[i] - frees[i] : 0;
    if (i < KL_LARGE_CLASS) {
      keel_class_stats_t *e = KEEL_STATS_CLASS(out, i);
      e->block_size = kl_class_size[i];
      e->blocks_in_use = live;
      e->pages = kl_load_relaxed(&kl_os_stats.pages[i]);
    } else {
      /* The public table stops at 128 KiB, as in 1.0.0: a large-class
       * block counts as the huge block it was then. */
      out->huge_blocks += live;
    }
    out->in_use_bytes += live * kl_class_size[i];
    out->allocated_bytes_total += allocs[i] * kl_class_size[i];
    out->freed_bytes_total += frees[i] * kl_class_size[i];
    total_allocs += allocs[i]; total_frees += frees[i];
  }
  size_t huge_allocs = kl_load_relaxed(&kl_os_stats.huge_allocs), huge_frees = kl_load_relaxed(&kl_os_stats.huge_frees);
  out->huge_blocks += kl_load_relaxed(&kl_os_stats.huge_live);
  out->in_use_bytes += kl_load_relaxed(&kl_os_stats.huge_bytes_live);
  out->allocated_bytes_total += kl_load_relaxed(&kl_os_stats.huge_bytes_total);
  out->freed_bytes_total += kl_load_relaxed(&kl_os_stats.huge_bytes_freed);
  total_allocs += huge_allocs; total_frees += huge_frees;
  max_update(&kl_os_stats.in_use_peak, out->in_use_bytes);
  out->in_use_bytes_peak = kl_load_relaxed(&kl_os_stats.in_use_peak);
  out->committed_bytes = committed_now();
  out->committed_bytes_peak = kl_load_relaxed(&kl_os_stats.committed_peak);
  if (out->committed_bytes_peak < out->committed_bytes) out->committed_bytes_peak = out->committed_bytes;
  out->reserved_bytes = kl_load_relaxed(&kl_os_stats.mapped);
  out->calls_calloc = calls[KL_CALL_CALLOC];
  out->calls_realloc = calls[KL_CALL_REALLOC];
  out->calls_reallocarray = calls[KL_CALL_REALLOCARRAY];
  out->calls_free_sized = calls[KL_CALL_FREE_SIZED];
  out->calls_aligned_alloc = calls[KL_CALL_ALIGNED_ALLOC];
  out->calls_posix_memalign = calls[KL_CALL_POSIX_MEMALIGN];
  out->calls_memalign = calls[KL_CALL_MEMALIGN];
  out->calls_valloc = calls[KL_CALL_VALLOC];
  out->calls_pvalloc = calls[KL_CALL_PVALLOC];
  out->calls_usable_size = calls[KL_CALL_USABLE_SIZE];
  out->calls_aligned = out->calls_aligned_alloc + out->calls_posix_memalign + out->calls_memalign +
                       out->calls_valloc + out->calls_pvalloc;
  /* Each block is counted once: by the member that handed it out, or else
   * by malloc; by free_sized or realloc that gave it back, or else by free. */
  size_t others = out->calls_calloc + out->calls_aligned + r_allocs;
  out->calls_malloc = total_allocs > others ? total_allocs - others : 0;
  others = out->calls_free_sized + r_frees;
  out->calls_free = total_frees > others ? total_frees - others : 0;
  out->threads_seen = kl_load_relaxed(&kl_os_stats.threads);
  out->os_calls = kl_load_relaxed(&kl_os_stats.os_calls);
}

kl_public void keel_stats_get_sized(keel_stats_t *out, size_t size) {
  if (size >= sizeof *out) {
    stats_get(out);
    memset((char *)out + sizeof *out, 0, size - sizeof *out);
  } else {
    keel_stats_t all;
    stats_get(&all);
    memcpy(out, &all, size);
  }
}

/* The 1.0.0 entry: its keel_stats_t ended with classes[]. Parenthesized so
 * that keel.h's macro of the same name does not expand here. */
kl_public void (keel_stats_get)(keel_stats_t *out) {
  keel_stats_get_sized(out, offsetof(keel_stats_t, calls_reallocarray));
}

/* "12.3 MiB": scaled with one decimal; buf holds at least 16 bytes. */
static const char *human(size_t n, char *buf) {
  static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  double v = (double)n;
  int u = 0;
  while (v >= 1024 && u < 4) { v /= 1024; u++; }
  if (u == 0) snprintf(buf, 16, "%zu B", n);
  else snprintf(buf, 16, "%.1f %s", v, unit[u]);
  return buf;
}

kl_public void keel_stats_print(FILE *out) {
  if (out == NULL) out = stderr;
  keel_stats_t s;
  keel_stats_get(&s);
  char a[16], b[16];
  fprintf(out, "keel statistics\n");
  fprintf(out, "  in use      %12s   peak %12s\n", human(s.in_use_bytes, a), human(s.in_use_bytes_peak, b));
  fprintf(out, "  committed   %12s   peak %12s\n", human(s.committed_bytes, a), human(s.committed_bytes_peak, b));
  fprintf(out, "  reserved    %12s\n", human(s.reserved_bytes, a));
  fprintf(out, "  allocated   %12s   freed %11s   (totals)\n", human(s.allocated_bytes_total, a), human(s.freed_bytes_total, b));
  fprintf(out, "  calls       malloc %zu, calloc %zu, realloc %zu, reallocarray %zu, free %zu, free_sized %zu\n",
          s.calls_malloc, s.calls_calloc, s.calls_realloc, s.calls_reallocarray, s.calls_free, s.calls_free_sized);
  fprintf(out, "              aligned_alloc %zu, posix_memalign %zu, memalign %zu, valloc %zu, pvalloc %zu, "
               "malloc_usable_size %zu\n", s.calls_aligned_alloc, s.calls_posix_memalign, s.calls_memalign,
          s.calls_valloc, s.calls_pvalloc, s.calls_usable_size);
  fprintf(out, "  threads %zu, segments abandoned %zu / reclaimed %zu, pages purged %zu, holes purged %zu, OS calls %zu, huge blocks %zu\n",
          s.threads_seen, s.segments_abandoned, s.segments_reclaimed, s.pages_purged, s.holes_purged, s.os_calls, s.huge_blocks);
  fprintf(out, "  %10s %12s %12s %8s\n", "class", "blocks", "bytes", "pages");
  for (unsigned i = 0; i < KEEL_STATS_CLASSES_ALL; i++) {
    const keel_class_stats_t *c = KEEL_STATS_CLASS(&s, i);
    if (c->blocks_in_use == 0 && c->pages == 0) continue;
    fprintf(out, "  %10s %12zu %12s %8zu\n", human(c->block_size, a), c->blocks_in_use,
            human(c->blocks_in_use * c->block_size, b), c->pages);
  }
  fflush(out);
}

/* KEEL_SHOW_STATS=1: the table at exit. A destructor, not atexit: it needs
 * no registration (which could allocate during keel's own start-up). */
__attribute__((destructor)) static void show_stats_at_exit(void) {
  if (kl_option(KL_OPT_SHOW_STATS)) keel_stats_print(NULL);
}
