/* segmap.c — which 4 MiB units of the address space hold keel segments.
 *
 * 2 bits per unit of the 48-bit address space: 2^26 units, 16 MiB of .bss
 * that the OS backs with zero pages until a segment lives in that range (a
 * 4 MiB segment touches one 8-byte word). Values:
 *   0  not keel's: free() of such a pointer is a bad free
 *   1  a segment starts at this unit
 *   2  the segment started one unit earlier (a huge block aligned to 4 MiB
 *      or more sits at unit 1 of its segment)
 * Only segment starts and 4 MiB-aligned huge blocks are marked, so an
 * interior pointer of a huge block reads 0 and is reported. */
#include "internal/internal.h"

_Atomic(uint64_t) kl_segmap[KL_MAP_UNITS / 32];

static void set_unit(uintptr_t unit, uint64_t value) {
  if (unit >= KL_MAP_UNITS) return;
  _Atomic(uint64_t) *w = &kl_segmap[unit >> 5];
  unsigned shift = (unsigned)(unit & 31) * 2;
  uint64_t old = kl_load_relaxed(w), upd;
  /* Release: a thread that later reads this bit through a pointer it got
   * from us must also see the initialized segment header. */
  do {
    upd = (old & ~((uint64_t)3 << shift)) | (value << shift);
  } while (!kl_cas_weak(w, &old, upd, memory_order_release));
}

void kl_segmap_set(const kl_segment_t *seg, uintptr_t block_unit_back) {
  uintptr_t unit = (uintptr_t)seg >> KL_SEGMENT_SHIFT;
  set_unit(unit, 1);
  if (block_unit_back) set_unit(unit + 1, 2);
}

void kl_segmap_clear(const kl_segment_t *seg, uintptr_t block_unit_back) {
  uintptr_t unit = (uintptr_t)seg >> KL_SEGMENT_SHIFT;
  set_unit(unit, 0);
  if (block_unit_back) set_unit(unit + 1, 0);
}
