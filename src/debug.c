/* debug.c — the debug build's checks (libkeel-debug.so; compiled only with
 * KL_DEBUG). They wrap the API entry points, so the allocator underneath is
 * the ordinary one.
 *
 * Block layout in the debug build, for a request of n bytes:
 *   [0, n)            the program's bytes, filled with 0xA5 when handed out
 *                     (exposes reads of uninitialized memory), zero for calloc
 *   [n, end - 8)      canary bytes 0xAB, at least 8 of them
 *   [end - 8, end)    n, so free can find the canary
 * On free the canary is checked (a write past the end is reported with the
 * block's address and size), then everything after the first 16 bytes (the
 * free-list link and the double-free mark) is filled with 0xDF. When a block
 * filled so is handed out again, the fill is checked: a write after free is
 * reported. */
#include <errno.h>
#include <string.h>
#include "internal/internal.h"

#if KL_DEBUG
#define FRESH  0xA5
#define CANARY 0xAB
#define FREED  0xDF
#define TAIL   8                      /* the size slot */
#define MIN_BLOCK 32                  /* keeps the slot clear of the first 16 bytes */

size_t kl_dbg_size(size_t n) {
  size_t r;
  if (kl_add_overflow(n, 8 + TAIL, &r)) return SIZE_MAX;
  return r < MIN_BLOCK ? MIN_BLOCK : r;
}

static size_t block_size(const void *p) {
  kl_segment_t *seg = kl_segmap_lookup(p);
  return seg ? kl_segment_page_of(seg, p)->block_size : 0;
}

static bool all(const uint8_t *p, size_t n, uint8_t v, size_t *bad) {
  for (size_t i = 0; i < n; i++) if (p[i] != v) { *bad = i; return false; }
  return true;
}

void *kl_dbg_finish(void *p, size_t n, bool zero) {
  if (p == NULL) return NULL;
  uint8_t *b = p;
  size_t bs = block_size(p), bad;
  /* A block freed before carries FREED from byte 16 to its end. */
  if (bs >= MIN_BLOCK && all(b + bs - TAIL, TAIL, FREED, &bad) && !all(b + 16, bs - 16 - TAIL, FREED, &bad)) {
    kl_message("keel: write after free: block %p (%zu bytes) was modified after it was freed, at offset %zu\n",
               p, bs, 16 + bad);
    if (!kl_option(KL_OPT_ON_ERROR_WARN)) kl_prim_abort();
  }
  memset(b, zero ? 0 : FRESH, n);
  memset(b + n, CANARY, bs - TAIL - n);
  memcpy(b + bs - TAIL, &n, TAIL);
  return p;
}

/* The size the program asked for; 0 after reporting a bad pointer. */
static size_t requested(const void *p, const char *who) {
  kl_segment_t *seg;
  kl_page_t *page = kl_checked_page(p, &seg, who);
  if (page == NULL) return 0;
  size_t n, bs = page->block_size;
  memcpy(&n, (const uint8_t *)p + bs - TAIL, TAIL);
  if (n > bs - TAIL) {
    kl_message("keel: heap overflow: block %p (%zu bytes) has a destroyed size field\n", p, bs);
    if (!kl_option(KL_OPT_ON_ERROR_WARN)) kl_prim_abort();
    return 0;
  }
  return n;
}

void kl_dbg_free(void *p, const char *who) {
  if (p == NULL) return;
  kl_segment_t *seg;
  if (kl_checked_page(p, &seg, who) == NULL) return;
  size_t n = requested(p, who), bs = block_size(p), bad;
  uint8_t *b = p;
  if (!all(b + n, bs - TAIL - n, CANARY, &bad)) {
    kl_message("keel: heap overflow: block %p of %zu bytes was written past its end (at offset %zu)\n", p, n, n + bad);
    if (!kl_option(KL_OPT_ON_ERROR_WARN)) kl_prim_abort();
  }
  memset(b + 16, FREED, bs - 16);
  kl_free(p);
}

size_t kl_dbg_usable(const void *p, const char *who) { return p ? requested(p, who) : 0; }

void *kl_dbg_malloc(size_t n) { return kl_dbg_finish(kl_malloc(kl_dbg_size(n)), n, false); }

void *kl_dbg_aligned(size_t align, size_t n) { return kl_dbg_finish(kl_aligned(align, kl_dbg_size(n)), n, false); }

void *kl_dbg_calloc(size_t count, size_t size) {
  size_t total;
  if (kl_mul_overflow(count, size, &total)) { errno = ENOMEM; return NULL; }
  void *p = kl_dbg_finish(kl_malloc(kl_dbg_size(total)), total, true);
  if (p != NULL) KL_COUNT_CALL(KL_CALL_CALLOC);   /* as kl_calloc: stats.c subtracts it from malloc */
  return p;
}

/* Always moves, so every realloc runs the canary and fill checks. Counts
 * the blocks it takes and gives back as realloc_in does (alloc.c). */
void *kl_dbg_realloc(void *p, size_t n, const char *who) {
  if (p == NULL) { void *q = kl_dbg_malloc(n); if (q != NULL) KL_COUNT(realloc_allocs); return q; }
  kl_segment_t *seg;
  if (kl_checked_page(p, &seg, who) == NULL) { errno = EINVAL; return NULL; }
  size_t old = requested(p, who);
  if (n == 0) { kl_dbg_free(p, who); KL_COUNT(realloc_frees); return NULL; }
  void *q = kl_dbg_malloc(n);
  if (q == NULL) return NULL;
  memcpy(q, p, old < n ? old : n);
  kl_dbg_free(p, who);
  KL_COUNT(realloc_allocs);
  KL_COUNT(realloc_frees);
  return q;
}
#endif
