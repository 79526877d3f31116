/* override.c — the whole C allocation family under its standard names, in
 * one object file: a static link pulls all of them or none, so a block from
 * the C library's malloc can never reach keel's free or the reverse.
 *
 * This covers what glibc documents a replacement must provide (malloc, free,
 * calloc, realloc, plus aligned_alloc, malloc_usable_size, memalign,
 * posix_memalign, pvalloc, valloc, cfree), glibc's internal `__libc_*`
 * entries and `__posix_memalign`, the BSD/C23 extras (reallocarray,
 * free_sized, free_aligned_sized) and glibc's introspection calls
 * (mallinfo, mallinfo2, malloc_stats, malloc_info, malloc_trim, mallopt),
 * so that nothing in a program or in libc.a needs glibc's malloc.o.
 *
 * malloc and free are the fast paths themselves: this object compiles
 * alloc.c and free.c in (CMakeLists.txt builds them on their own only
 * without the override), so the two expand them inline rather than jump
 * to kl_malloc and kl_free (one instruction less per call; the debug
 * build wraps them instead). Not aliases: a tool that replaces malloc and
 * free by address (valgrind) would then also take over keel's own calls
 * to kl_malloc and kl_free, and hand keel blocks that are not its own. */
#include "alloc.c"
#include "free.c"
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include "internal/internal.h"
#include "keel.h"

#define KL_API kl_public

/* Statistics (stats.c): malloc and free are counted by the fast paths'
 * per-class counters; every other member here counts itself, with one plain
 * increment of the thread's heap counters (KL_COUNT_CALL): an allocating
 * member when it returns a block, the others on every call, after it (the
 * call sets up the thread's heap if it is the thread's first). */

static void *memalign_any(size_t align, size_t size) {
  /* glibc's memalign rounds an alignment that is not a power of two up to
   * the next one instead of failing. */
  if (align > ((size_t)1 << 62)) { errno = EINVAL; return NULL; }
  if (!kl_is_pow2(align)) align = (size_t)1 << (kl_bsr(align) + 1);
  void *p = KL_ALIGNED(align, size);
  if (p != NULL) KL_COUNT_CALL(KL_CALL_MEMALIGN);
  return p;
}

static void *realloc_counted(void *p, size_t size, kl_call_t which, const char *who) {
  void *q = KL_REALLOC(p, size, who);
  KL_COUNT_CALL(which);
  return q;
}

/* free_sized and free_aligned_sized: the block is counted with the frees
 * too; stats.c takes these out of the free count. */
static void free_sized_counted(void *p, const char *who) {
  if (p != NULL) KL_COUNT_CALL(KL_CALL_FREE_SIZED);
  KL_FREE(p, who);
}

#if KL_DEBUG
KL_API void *malloc(size_t size) { return KL_MALLOC(size); }
KL_API void  free(void *p) { KL_FREE(p, "free"); }
#else
/* On a 64-byte boundary (KL_HOT), so that how the fast paths sit in the
 * instruction cache does not move with every unrelated change: an edit of
 * a slow path in segment.c shifted them by 96 bytes and kbench
 * false-sharing 1 600 ran 11% slower (9 alternating rounds). */
KL_API KL_HOT void *malloc(size_t size) { return heap_malloc(kl_heap_get(), size); }
KL_API KL_HOT void  free(void *p) { free_fast(p); }
#endif
KL_API void *calloc(size_t n, size_t size) { return KL_CALLOC(n, size); }
KL_API void *realloc(void *p, size_t size) { return realloc_counted(p, size, KL_CALL_REALLOC, "realloc"); }
KL_API void  cfree(void *p) { KL_FREE(p, "cfree"); }
KL_API void  free_sized(void *p, size_t size) { (void)size; free_sized_counted(p, "free_sized"); }
KL_API void  free_aligned_sized(void *p, size_t align, size_t size) { (void)align; (void)size; free_sized_counted(p, "free_aligned_sized"); }

KL_API void *reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (kl_mul_overflow(n, size, &total)) { KL_COUNT_CALL(KL_CALL_REALLOCARRAY); errno = ENOMEM; return NULL; }
  return realloc_counted(p, total, KL_CALL_REALLOCARRAY, "reallocarray");
}

KL_API void *aligned_alloc(size_t align, size_t size) { return kl_aligned_alloc(align, size); }

KL_API int posix_memalign(void **out, size_t align, size_t size) { return kl_posix_memalign(out, align, size); }

KL_API void *memalign(size_t align, size_t size) { return memalign_any(align, size); }
KL_API void *valloc(size_t size) {
  void *p = KL_ALIGNED(kl_os.page_size, size);
  if (p != NULL) KL_COUNT_CALL(KL_CALL_VALLOC);
  return p;
}
KL_API void *pvalloc(size_t size) {
  size_t ps = kl_os.page_size, rounded;
  if (kl_add_overflow(size, ps - 1, &rounded)) { errno = ENOMEM; return NULL; }
  rounded &= ~(ps - 1);
  void *p = KL_ALIGNED(ps, rounded ? rounded : ps);
  if (p != NULL) KL_COUNT_CALL(KL_CALL_PVALLOC);
  return p;
}
KL_API size_t malloc_usable_size(void *p) {
  size_t n = KL_USABLE(p, "malloc_usable_size");
  KL_COUNT_CALL(KL_CALL_USABLE_SIZE);
  return n;
}

/* glibc's internal names: libc itself and some libraries call these. */
KL_API void *__libc_malloc(size_t size) { return KL_MALLOC(size); }
KL_API void  __libc_free(void *p) { KL_FREE(p, "free"); }
KL_API void *__libc_calloc(size_t n, size_t size) { return KL_CALLOC(n, size); }
KL_API void *__libc_realloc(void *p, size_t size) { return realloc_counted(p, size, KL_CALL_REALLOC, "realloc"); }
KL_API void *__libc_memalign(size_t align, size_t size) { return memalign_any(align, size); }
KL_API void *__libc_valloc(size_t size) { return valloc(size); }
KL_API void *__libc_pvalloc(size_t size) { return pvalloc(size); }
KL_API int   __posix_memalign(void **out, size_t align, size_t size) { return kl_posix_memalign(out, align, size); }

/* ---- glibc introspection. Figures describe keel's own heap. */
KL_API int mallopt(int param, int value) { (void)param; (void)value; return 1; }
KL_API int malloc_trim(size_t pad) {
  (void)pad;
  kl_heap_t *heap = kl_heap_get();
  if (heap != &kl_heap_empty) { kl_foreign_flush_all(heap); kl_segment_purge(heap, true); kl_holes_sweep(heap, true); kl_holes_cold_sweep(heap, true); }
  kl_segment_cache_purge();
  return 1;
}

/* mallinfo2: arena = memory committed from the OS, uordblks = bytes in
 * live blocks, fordblks = committed but free, hblks/hblkhd = huge blocks
 * (keel's own mappings), usmblks = peak bytes in use. */
KL_API struct mallinfo2 mallinfo2(void) {
  keel_stats_t s;
  keel_stats_get(&s);
  struct mallinfo2 mi = { 0 };
  size_t huge = kl_load_relaxed(&kl_os_stats.huge_bytes_live);
  mi.arena = s.committed_bytes;
  mi.uordblks = s.in_use_bytes;
  mi.fordblks = s.committed_bytes > s.in_use_bytes ? s.committed_bytes - s.in_use_bytes : 0;
  mi.hblks = s.huge_blocks;
  mi.hblkhd = huge;
  mi.usmblks = s.in_use_bytes_peak;
  return mi;
}
KL_API struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi = { 0 };   /* glibc's old struct: int fields, values clipped */
#define CLIP(x) ((x) > (size_t)INT32_MAX ? INT32_MAX : (int)(x))
  mi.arena = CLIP(m2.arena); mi.uordblks = CLIP(m2.uordblks); mi.fordblks = CLIP(m2.fordblks);
  mi.hblks = CLIP(m2.hblks); mi.hblkhd = CLIP(m2.hblkhd); mi.usmblks = CLIP(m2.usmblks);
#undef CLIP
  return mi;
}

/* glibc prints per-arena "system bytes" / "in use bytes" to stderr; keel
 * has one logical arena. */
KL_API void malloc_stats(void) {
  keel_stats_t s;
  keel_stats_get(&s);
  kl_message("Arena 0:\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
             "Total (incl. mmap):\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
             "max mmap regions = %10zu\nmax mmap bytes   = %10zu\n",
             s.committed_bytes, s.in_use_bytes, s.committed_bytes, s.in_use_bytes,
             s.huge_blocks, (size_t)kl_load_relaxed(&kl_os_stats.huge_bytes_live));
}

/* XML in glibc's shape: one <heap> with a <size> line per size class in use. */
KL_API int malloc_info(int options, FILE *fp) {
  if (options != 0 || fp == NULL) { errno = EINVAL; return -1; }
  keel_stats_t s;
  keel_stats_get(&s);
  size_t count = 0;
  fprintf(fp, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
  for (unsigned i = 0; i < KEEL_STATS_CLASSES_ALL; i++) {
    const keel_class_stats_t *c = KEEL_STATS_CLASS(&s, i);
    if (c->blocks_in_use == 0) continue;
    size_t from = i == 0 ? 1 : KEEL_STATS_CLASS(&s, i - 1)->block_size + 1;
    fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
            from, c->block_size, c->blocks_in_use * c->block_size, c->blocks_in_use);
    count += c->blocks_in_use;
  }
  size_t huge = kl_load_relaxed(&kl_os_stats.huge_bytes_live);
  fprintf(fp, "</sizes>\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
              "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
              "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
              "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n</heap>\n"
              "<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
              "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
              "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
              "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n</malloc>\n",
          count, s.in_use_bytes - huge, s.committed_bytes, s.committed_bytes_peak, s.reserved_bytes, s.reserved_bytes,
          count, s.in_use_bytes - huge, s.huge_blocks, huge,
          s.committed_bytes, s.committed_bytes_peak, s.reserved_bytes, s.reserved_bytes);
  return 0;
}
